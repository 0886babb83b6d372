import { Reactivity } from "@effect/experimental"
import { SqlClient, Statement } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted, SubscriptionRef } from "effect"
import { execFileSync } from "node:child_process"
import { AdminServer } from "../src/AdminServer.js"
import { EngineConfig } from "../src/EngineConfig.js"
import { EngineStatus } from "../src/EngineStatus.js"
import type { EnginePhase } from "../src/EngineStatus.js"

const PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"

const pgAvailable = (() => {
  try {
    execFileSync("pg_isready", ["-h", "127.0.0.1", "-p", "5432"], { stdio: "ignore", timeout: 5000 })
    return true
  } catch {
    return false
  }
})()
if (!pgAvailable) {
  console.warn(`AdminServer.test: PostgreSQL at 127.0.0.1:5432 is not reachable (pg_isready failed): the readyz-ready case is skipped`)
}

/** A SqlClient whose connections never arrive: a database that does not answer. */
const StalledSql = Layer.effect(
  SqlClient.SqlClient,
  SqlClient.make({ acquirer: Effect.never, compiler: Statement.makeCompilerSqlite(), spanAttributes: [] })
).pipe(Layer.provide(Reactivity.layer))

const serverWith = <E>(sql: Layer.Layer<SqlClient.SqlClient, E>) =>
  AdminServer.layer.pipe(
    Layer.provideMerge(EngineStatus.layer),
    Layer.provideMerge(EngineConfig.layerWith({ host: "127.0.0.1", adminPort: 0 })),
    Layer.provideMerge(sql)
  )

const request = (path: string) =>
  Effect.gen(function* () {
    const { url } = yield* AdminServer
    return yield* Effect.promise(async () => {
      const response = await fetch(`${url}${path}`)
      return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() }
    })
  })

const setPhase = (phase: EnginePhase) => Effect.flatMap(EngineStatus, (status) => SubscriptionRef.set(status.phase, phase))

describe("AdminServer", () => {
  layer(serverWith(pgAvailable ? PgClient.layer({ url: Redacted.make(PG_URL) }) : StalledSql), { excludeTestServices: true })(
    "ops routes",
    (it) => {
      it.effect("listens on the port the system chose", () =>
        Effect.gen(function* () {
          const { address, url } = yield* AdminServer
          expect(address.port).toBeGreaterThan(0)
          expect(url).toBe(`http://127.0.0.1:${address.port}`)
        })
      )

      it.effect("healthz answers 200 while the process runs, whatever the phase", () =>
        Effect.gen(function* () {
          yield* setPhase("starting")
          expect(yield* request("/healthz")).toMatchObject({ status: 200, body: '{"status":"ok"}' })
        })
      )

      it.effect("readyz is 503 with the phase while starting and while draining", () =>
        Effect.gen(function* () {
          yield* setPhase("starting")
          expect(yield* request("/readyz")).toMatchObject({ status: 503, body: '{"status":"starting"}' })
          yield* setPhase("draining")
          expect(yield* request("/readyz")).toMatchObject({ status: 503, body: '{"status":"draining"}' })
        })
      )

      it.effect.skipIf(!pgAvailable)(
        pgAvailable
          ? "readyz is 200 once ready and the database answers, 503 again when draining"
          : "readyz-ready case SKIPPED: PostgreSQL at 127.0.0.1:5432 not reachable (pg_isready failed)",
        () =>
          Effect.gen(function* () {
            yield* setPhase("ready")
            expect(yield* request("/readyz")).toMatchObject({ status: 200, body: '{"status":"ready"}' })
            yield* setPhase("draining")
            expect(yield* request("/readyz")).toMatchObject({ status: 503, body: '{"status":"draining"}' })
          })
      )

      it.effect("metrics are Prometheus text 0.0.4 with the engine's histograms and the admin requests", () =>
        Effect.gen(function* () {
          yield* request("/healthz")
          const metrics = yield* request("/metrics")
          expect(metrics.status).toBe(200)
          expect(metrics.contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
          expect(metrics.body).toContain('engine_hb_ack_seconds_bucket{le="+Inf"}')
          expect(metrics.body).toMatch(/^engine_http_requests_total\{route="\/healthz",status="200"\} [1-9]\d*$/m)
          expect(metrics.body).toMatch(/^process_resident_memory_bytes \d+$/m)
        })
      )

      it.effect("unknown API paths get a JSON 404 (other GETs are the console's)", () =>
        Effect.gen(function* () {
          const response = yield* request("/api/nope?x=1")
          expect(response.status).toBe(404)
          expect(response.contentType).toContain("application/json")
          expect(JSON.parse(response.body)).toEqual({ error: { code: "NOT_FOUND", message: "no route for GET /api/nope" } })
        })
      )
    }
  )

  layer(serverWith(StalledSql), { excludeTestServices: true })("database that does not answer", (it) => {
    it.effect("readyz answers 503 database-unavailable within about a second", () =>
      Effect.gen(function* () {
        yield* setPhase("ready")
        const start = Date.now()
        const response = yield* request("/readyz")
        const elapsed = Date.now() - start
        expect(response).toMatchObject({ status: 503, body: '{"status":"database-unavailable"}' })
        expect(elapsed).toBeGreaterThanOrEqual(900)
        expect(elapsed).toBeLessThan(3000)
      })
    )
  })
})
