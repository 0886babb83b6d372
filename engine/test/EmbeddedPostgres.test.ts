/**
 * The embedded PostgreSQL child process, exercised through the node-postgres driver the engine
 * uses. Live clock throughout: start-up is real time (a first start runs initdb, ~5 s).
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, ExecutionStrategy, Exit, Layer, Logger, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js"
import { LOCK_FILE } from "../src/internal/pgliteServer.js"

/** A temporary directory removed with the scope; `name` is the data directory inside it. */
const tempDir = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "nexmdm-pglite-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => path.join(dir, name)))

/** Builds the layer in `scope` and returns the service plus how long start-up took. */
const start = (scope: Scope.Scope, options: EmbeddedPostgres.Options) =>
  Layer.buildWithScope(EmbeddedPostgres.layer(options), scope).pipe(
    Effect.map(Context.get(EmbeddedPostgres.EmbeddedPostgres)),
    Effect.timed,
    Effect.map(([elapsed, db]) => ({ ...db, startupMs: Math.round(Duration.toMillis(elapsed)) }))
  )

const pool = (url: string, max: number) =>
  Effect.acquireRelease(
    Effect.sync(() => new pg.Pool({ connectionString: url, max })),
    (pool) => Effect.promise(() => pool.end())
  )

const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )

const query = <R extends pg.QueryResultRow = any>(
  client: pg.ClientBase | pg.Pool,
  text: string,
  values?: Array<unknown>
) => Effect.promise(() => client.query<R>(text, values))

describe("EmbeddedPostgres", () => {
  it.scopedLive(
    "rows written by a pool of 10 connections are read back after a restart",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* tempDir("pglite")

        // First life: fresh directory, so this start includes initdb.
        const first = yield* Effect.scoped(
          Effect.gen(function* () {
            const db = yield* start(yield* Effect.scope, { dataDir, maxConnections: 10 })
            expect(db.dataDir).toBe(dataDir)
            expect(db.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/)
            const clients = yield* pool(db.url, 10)

            // A multi-statement simple query, as migrations send them.
            yield* query(clients, "create table a(x int); create table b(y int); insert into a values (1);")
            yield* query(clients, "create table devices(id int primary key, worker int not null)")

            // Ten connections held at once (the socket server's default would refuse all but one),
            // each writing its own rows inside its own transaction; released before the count.
            yield* Effect.scoped(
              Effect.gen(function* () {
                const held = yield* Effect.all(
                  Array.from({ length: 10 }, () =>
                    Effect.acquireRelease(Effect.promise(() => clients.connect()), (client) =>
                      Effect.sync(() => client.release())
                    )
                  ),
                  { concurrency: "unbounded" }
                )
                expect(clients.totalCount).toBe(10)
                yield* Effect.forEach(
                  held,
                  (client, worker) =>
                    Effect.gen(function* () {
                      yield* query(client, "begin")
                      for (let i = 0; i < 20; i++) {
                        const id = worker * 100 + i
                        yield* query(client, "insert into devices(id, worker) values ($1, $2)", [id, worker])
                      }
                      yield* query(client, "commit")
                      // Half of the workers also write a row they roll back.
                      if (worker % 2 === 0) {
                        yield* query(client, "begin")
                        yield* query(client, "insert into devices(id, worker) values ($1, -1)", [10_000 + worker])
                        yield* query(client, "rollback")
                      }
                    }),
                  { concurrency: "unbounded", discard: true }
                )
              })
            )
            const { rows } = yield* query<{ n: number }>(clients, "select count(*)::int as n from devices")
            expect(rows[0]?.n).toBe(200)
            return db
          })
        )

        // Second life on the same directory, read through the engine's own client.
        const second = yield* start(yield* Effect.scope, { dataDir, maxConnections: 10 })
        const counts = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          return yield* sql<{ devices: number; rolledBack: number; workers: number; a: number; b: number }>`
            select (select count(*)::int from devices) as devices,
                   (select count(*)::int from devices where worker = -1) as "rolledBack",
                   (select count(distinct worker)::int from devices) as workers,
                   (select sum(x)::int from a) as a,
                   (select count(*)::int from b) as b`
        }).pipe(
          Effect.provide(PgClient.layer({ url: Redacted.make(second.url), maxConnections: 2 })),
          Effect.orDie
        )
        expect(counts[0]).toEqual({ devices: 200, rolledBack: 0, workers: 10, a: 1, b: 0 })

        yield* Effect.log(
          `embedded PostgreSQL start-up: ${first.startupMs} ms on an empty directory (initdb), ` +
            `${second.startupMs} ms on an existing one`
        )
      }),
    60_000
  )

  it.scopedLive(
    "a data directory in use is refused; after a crash the lock is taken over and no committed row is lost",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* tempDir("pglite")
        const lockFile = path.join(dataDir, LOCK_FILE)
        const logged: Array<string> = []
        const captureLogs = Logger.add(Logger.make(({ message }) => logged.push(String(message))))

        // Its own scope so the test can close it midway; forked from the test's so a failure still closes it.
        const holder = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
        const first = yield* start(holder, { dataDir }).pipe(Effect.provide(captureLogs))
        yield* Effect.scoped(
          Effect.flatMap(connect(first.url), (client) =>
            query(client, "create table survivors(x int); insert into survivors values (42)")
          )
        )

        const refused = yield* Effect.scoped(Effect.flatMap(Effect.scope, (scope) => start(scope, { dataDir }))).pipe(
          Effect.flip
        )
        expect(refused).toBeInstanceOf(EmbeddedPostgres.EmbeddedPostgresError)
        expect(refused.message).toContain(dataDir)
        expect(refused.message).toContain("in use")

        // Crash the server: no clean close, and its lock file stays behind with a dead pid.
        const crashedPid = Number(fs.readFileSync(lockFile, "utf8").trim())
        process.kill(crashedPid, "SIGKILL")
        yield* Effect.sleep(Duration.millis(50)).pipe(
          Effect.repeat({ until: () => logged.some((line) => line.includes("unexpectedly")) }),
          Effect.timeout(Duration.seconds(10))
        )
        expect(fs.readFileSync(lockFile, "utf8").trim()).toBe(String(crashedPid))

        const restarted = yield* start(yield* Effect.scope, { dataDir })
        expect(Number(fs.readFileSync(lockFile, "utf8").trim())).not.toBe(crashedPid)
        const { rows } = yield* Effect.scoped(
          Effect.flatMap(connect(restarted.url), (client) => query<{ x: number }>(client, "select x from survivors"))
        )
        expect(rows).toEqual([{ x: 42 }])
        // Closing the crashed server's scope is a no-op, not a hang.
        yield* Scope.close(holder, Exit.void)
      }),
    60_000
  )

  it.scopedLive("a data directory that is a file fails to start with EmbeddedPostgresError", () =>
    Effect.gen(function* () {
      const dataDir = yield* tempDir("not-a-directory")
      fs.mkdirSync(path.dirname(dataDir), { recursive: true })
      fs.writeFileSync(dataDir, "")
      const error = yield* Effect.scoped(
        Effect.flatMap(Effect.scope, (scope) => start(scope, { dataDir, startTimeout: Duration.seconds(20) }))
      ).pipe(Effect.flip)
      expect(error._tag).toBe("EmbeddedPostgresError")
      expect(error.message).toContain(dataDir)
      expect(error.message).toContain("EEXIST")
    })
  )
})
