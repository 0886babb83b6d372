/**
 * The SQL client every other service uses: the PostgreSQL server in DATABASE_URL, or, when none
 * is configured, an embedded PGlite served over a local socket by a child process (so both
 * paths use the same node-postgres driver). Migrations are applied before the layer is ready.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { join } from "node:path"
import * as EmbeddedPostgres from "./EmbeddedPostgres.js"
import { EngineConfig } from "./EngineConfig.js"
import { runMigrations } from "./Migrations.js"

export interface DatabaseInfo {
  readonly kind: "server" | "embedded"
  /** Where the data lives, without credentials. */
  readonly location: string
}

export class DatabaseInfoTag extends Effect.Tag("@nexmdm/engine/DatabaseInfo")<DatabaseInfoTag, DatabaseInfo>() {}

const clientLayer = (url: Redacted.Redacted, maxConnections: number) =>
  PgClient.layer({
    url,
    maxConnections,
    connectTimeout: Duration.seconds(5),
    idleTimeout: Duration.seconds(60),
    applicationName: "nexmdm-engine"
  })

const describeUrl = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`
  } catch {
    return "(unparseable DATABASE_URL)"
  }
}

/** SqlClient + PgClient for the configured database, migrated. */
export const layer = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const migrated = <E, R>(client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>) =>
      Layer.effectDiscard(runMigrations).pipe(Layer.provideMerge(client))
    if (Option.isSome(config.databaseUrl)) {
      const url = config.databaseUrl.value
      return migrated(clientLayer(url, config.dbPoolSize)).pipe(
        Layer.merge(Layer.succeed(DatabaseInfoTag, { kind: "server", location: describeUrl(Redacted.value(url)) }))
      )
    }
    const dataDir = join(config.dataDir, "pglite")
    // PGlite is one PostgreSQL session: pglite-socket interleaves the protocol messages of
    // concurrent connections, which loses unnamed prepared statements under load. One connection
    // serialises every statement; the embedded default is for trying NexMDM, not for throughput.
    // (The socket server refuses connections beyond its limit; leave headroom for PgClient's own.)
    const embedded = EmbeddedPostgres.layer({ dataDir, maxConnections: 3 })
    const client = Layer.unwrapEffect(
      Effect.map(EmbeddedPostgres.EmbeddedPostgres, ({ url }) => clientLayer(Redacted.make(url), 1))
    )
    return migrated(client).pipe(
      Layer.provide(embedded),
      Layer.merge(Layer.succeed(DatabaseInfoTag, { kind: "embedded", location: dataDir }))
    )
  })
)
