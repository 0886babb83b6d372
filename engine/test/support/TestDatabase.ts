/**
 * A fresh database for one test file: on the PostgreSQL server in NEXMDM_TEST_DATABASE_URL
 * (default: the local server on 127.0.0.1:5432) when it answers, else on an embedded PGlite in a
 * temporary folder, so `npm test` passes on a machine without a server. CI sets
 * NEXMDM_TEST_REQUIRE_SERVER=1 so a missing server fails instead of silently using PGlite.
 */
import { Context, Effect, Layer, Redacted, Scope } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import * as EmbeddedPostgres from "../../src/EmbeddedPostgres.js"

export const adminUrl = process.env["NEXMDM_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

let serverAvailable: Promise<boolean> | undefined

/** Whether the PostgreSQL server answers (checked once per test worker). */
export const hasServer = (): Promise<boolean> => {
  serverAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 })
    try {
      await client.connect()
      await client.query("select 1")
      return true
    } catch {
      if (process.env["NEXMDM_TEST_REQUIRE_SERVER"] === "1") {
        throw new Error(`NEXMDM_TEST_REQUIRE_SERVER=1 but no PostgreSQL answers at ${adminUrl}`)
      }
      return false
    } finally {
      await client.end().catch(() => {})
    }
  })()
  return serverAvailable
}

const withAdmin = async <A>(run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

export interface TestDatabase {
  readonly url: string
  readonly kind: "server" | "embedded"
  /** Database name on the server (for pg_terminate_backend and the like); "postgres" when embedded. */
  readonly name: string
}

/** Creates the database for the scope's lifetime and drops it after (terminating stray sessions). */
export const testDatabase: Effect.Effect<TestDatabase, unknown, Scope.Scope> = Effect.gen(function* () {
  if (yield* Effect.promise(hasServer)) {
    const name = `nexmdm_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
    yield* Effect.acquireRelease(
      Effect.promise(() => withAdmin((client) => client.query(`create database ${name}`))),
      () =>
        Effect.promise(() =>
          withAdmin(async (client) => {
            await client.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [name])
            await client.query(`drop database if exists ${name}`)
          })
        ).pipe(Effect.ignore)
    )
    const url = new URL(adminUrl)
    url.pathname = `/${name}`
    return { url: url.toString(), kind: "server", name }
  }
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "nexmdm-test-"))),
    (path) => Effect.promise(() => rm(path, { recursive: true, force: true }))
  )
  const context = yield* Layer.build(EmbeddedPostgres.layer({ dataDir: join(dir, "pglite"), maxConnections: 20 }))
  const embedded = Context.get(context, EmbeddedPostgres.EmbeddedPostgres)
  return { url: embedded.url, kind: "embedded", name: "postgres" }
})

export const redactedUrl = (database: TestDatabase) => Redacted.make(database.url)
