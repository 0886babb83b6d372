/**
 * Applies the SQL files in sql/ (named NNNN_name.sql) in order, once each, through the
 * @effect/sql Migrator (it records applied ids in effect_sql_migrations and takes a lock,
 * so two engines starting together do not race).
 */
import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { readdir, readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

export const sqlDirectory = fileURLToPath(new URL("../../sql/", import.meta.url))

const migrationFile = /^(\d{4})_([a-z0-9_]+)\.sql$/

/** Loads every NNNN_name.sql file as one migration; the file may hold several statements. */
export const loadSqlFiles = (directory: string): Migrator.Loader =>
  Effect.tryPromise({
    try: () => readdir(directory),
    catch: (cause) =>
      new Migrator.MigrationError({ reason: "import-error", message: `cannot read ${directory}`, cause })
  }).pipe(
    Effect.map((names) =>
      names.flatMap((name): ReadonlyArray<Migrator.ResolvedMigration> => {
        const match = migrationFile.exec(name)
        if (match === null) return []
        const run = Effect.flatMap(
          Effect.promise(() => readFile(`${directory}/${name}`, "utf8")),
          // No parameters: node-postgres then uses the simple protocol, which allows several statements.
          (text) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(text))
        )
        return [[Number(match[1]), match[2]!, Effect.succeed(run)]]
      }).sort(([a], [b]) => a - b)
    )
  )

export const runMigrations = Migrator.make({})({ loader: loadSqlFiles(sqlDirectory) }).pipe(
  Effect.tap((applied) =>
    applied.length === 0
      ? Effect.logDebug("database schema is up to date")
      : Effect.logInfo("applied migrations").pipe(Effect.annotateLogs("migrations", applied.map(([id, name]) => `${id}_${name}`)))
  ),
  Effect.withSpan("Migrations.run")
)
