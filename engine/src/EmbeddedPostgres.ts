/**
 * The embedded database used when no DATABASE_URL is configured: PGlite (PostgreSQL 18 in WASM)
 * kept in a data directory and served on 127.0.0.1 by a child process (internal/pgliteServer.ts).
 *
 * Why a child process: PGlite runs PostgreSQL on the JavaScript thread, and in the engine's
 * process it would stall the event loop 10-200 ms per write batch. Why a TCP socket: the engine
 * then reaches it through the same node-postgres driver (PgClient) as a real server, so there is
 * one SQL path to test.
 *
 * Things to know about the database behind the url (measured with PGlite 0.5.14 and
 * pglite-socket 0.2.17):
 * - Every connection shares ONE PostgreSQL session. The user and database in the start-up
 *   packet are ignored (it is always `postgres`/`postgres`), and session state leaks between
 *   connections: a `SET` on one is seen by all, as are temporary tables and named prepared
 *   statements.
 * - Statements run one at a time. While one connection is inside a transaction the others
 *   wait for it to end, so never await another connection from inside a transaction.
 * - The socket server refuses connections beyond `maxConnections` (its own default is 1).
 * - PGlite never fsyncs: a killed child loses nothing (its writes are in the OS page cache and
 *   WAL is replayed on the next start) but a power cut can.
 */
import { Context, Data, Deferred, Duration, Effect, Exit, Layer, Option, Queue, Schema } from "effect"
import { fork, type ChildProcess } from "node:child_process"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type { ParentMessage } from "./internal/pgliteServer.js"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A running embedded PostgreSQL. `url` is a `postgres://` url for node-postgres on 127.0.0.1;
 * `dataDir` is the absolute path of the data directory.
 */
export class EmbeddedPostgres extends Context.Tag("@nexmdm/engine/EmbeddedPostgres")<
  EmbeddedPostgres,
  { readonly url: string; readonly dataDir: string }
>() {}

export interface Options {
  /** Where the database lives; created if missing. Only one process may use it at a time. */
  readonly dataDir: string
  /**
   * Connections the server accepts at once; must be at least the client pool size (extra
   * connections are refused, not queued). Extra headroom costs nothing. Default 10.
   */
  readonly maxConnections?: number
  /** How long to wait for the server to be ready. A first start runs initdb (~5 s). Default 60 s. */
  readonly startTimeout?: Duration.DurationInput
  /** How long a clean stop may take before the child is killed. Default 10 s. */
  readonly stopTimeout?: Duration.DurationInput
}

/** The child's messages (see internal/pgliteServer.ts), decoded because they cross a process boundary. */
const ChildMessage = Schema.Union(
  Schema.Struct({ type: Schema.Literal("ready"), port: Schema.Int.pipe(Schema.between(1, 65535)) }),
  Schema.Struct({ type: Schema.Literal("error"), message: Schema.String })
)
const decodeChildMessage = Schema.decodeUnknownOption(ChildMessage)

interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const describeExit = ({ code, signal }: ChildExit): string =>
  signal !== null ? `was killed by ${signal}` : `exited with code ${code}`

/** Lines of the child's stderr kept for start-up error messages. */
const STDERR_TAIL_LINES = 20

/**
 * The entry point next to this module, with the same extension: `.ts` when run through tsx
 * (development, tests), `.js` if the engine is ever compiled. A `.ts` entry needs tsx's loader,
 * resolved to a file url so the child does not depend on its working directory.
 */
const childEntry = (): { readonly file: string; readonly execArgv: Array<string> } => {
  const self = fileURLToPath(import.meta.url)
  const extension = path.extname(self)
  const file = path.join(path.dirname(self), "internal", `pgliteServer${extension}`)
  if (extension !== ".ts") return { file, execArgv: [] }
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
  return { file, execArgv: ["--import", tsx] }
}

/** Splits a stream's text into lines, handing each complete non-empty line to `onLine`. */
const onLines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void): void => {
  let partial = ""
  stream.setEncoding("utf8")
  stream.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n")
    partial = lines.pop() ?? ""
    for (const line of lines) if (line.trim() !== "") onLine(line.trimEnd())
  })
  stream.on("end", () => {
    if (partial.trim() !== "") onLine(partial.trimEnd())
    partial = ""
  })
}

interface Child {
  readonly process: ChildProcess
  /** Completes with the port, or fails if the child reports an error or dies before it is ready. */
  readonly ready: Deferred.Deferred<number, EmbeddedPostgresError>
  /** Completes when the child has exited and its pipes are closed. */
  readonly exited: Deferred.Deferred<ChildExit>
  readonly stderrTail: ReadonlyArray<string>
  /** Set once it reported ready: a child that failed to start exits 1 by design. */
  started: boolean
  /** Set before we stop it, so its exit is not reported as a crash. */
  stopping: boolean
}

const spawnChild = (
  dataDir: string,
  maxConnections: number,
  logLines: Queue.Enqueue<{ readonly level: "debug" | "warning"; readonly line: string }>
) =>
  Effect.gen(function* () {
    const ready = yield* Deferred.make<number, EmbeddedPostgresError>()
    const exited = yield* Deferred.make<ChildExit>()
    const { execArgv, file } = childEntry()
    const stderrTail: Array<string> = []
    const child = yield* Effect.try({
      try: () =>
        fork(
          file,
          ["--data-dir", dataDir, "--host", "127.0.0.1", "--port", "0", "--max-connections", String(maxConnections)],
          {
            execArgv,
            stdio: ["ignore", "pipe", "pipe", "ipc"]
          }
        ),
      catch: (cause) => new EmbeddedPostgresError({ message: `cannot start the embedded PostgreSQL: ${cause}`, cause })
    })
    const failStart = (reason: string, cause?: unknown) =>
      Deferred.unsafeDone(
        ready,
        Exit.fail(
          new EmbeddedPostgresError({
            message: `embedded PostgreSQL on ${dataDir} failed to start: ${reason}`,
            ...(cause === undefined ? {} : { cause })
          })
        )
      )

    const result: Child = { process: child, ready, exited, stderrTail, started: false, stopping: false }
    // Listeners are attached in the same tick as fork(), so no event can be missed.
    child.on("message", (raw: unknown) => {
      const message = decodeChildMessage(raw)
      if (Option.isNone(message)) return
      if (message.value.type === "ready") {
        result.started = true
        Deferred.unsafeDone(ready, Exit.succeed(message.value.port))
      } else {
        failStart(message.value.message)
      }
    })
    child.on("error", (cause) => {
      failStart(cause.message, cause)
      // A process that never spawned emits no "close": without this, stopping it would wait out the timeouts.
      if (child.pid === undefined) Deferred.unsafeDone(exited, Exit.succeed({ code: null, signal: null }))
    })
    // "close" rather than "exit": it comes after the pipes are drained, so stderrTail is complete.
    child.on("close", (code, signal) => {
      const exit = { code, signal }
      const tail = stderrTail.length > 0 ? `; its last output: ${stderrTail.join(" | ")}` : ""
      failStart(`the child process ${describeExit(exit)} before it was ready${tail}`)
      Deferred.unsafeDone(exited, Exit.succeed(exit))
    })
    if (child.stderr) {
      onLines(child.stderr, (line) => {
        stderrTail.push(line)
        if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift()
        logLines.unsafeOffer({ level: "warning", line })
      })
    }
    if (child.stdout) onLines(child.stdout, (line) => logLines.unsafeOffer({ level: "debug", line }))
    return result
  })

const stopChild = (child: Child, stopTimeout: Duration.Duration) =>
  Effect.gen(function* () {
    child.stopping = true
    if (yield* Deferred.isDone(child.exited)) return
    // Asked over IPC, not with SIGTERM: the child ignores signals while it has a parent, since a
    // service manager's SIGTERM reaches it at the same time as the engine, whose last writes still
    // need the database. It then stops the socket server and closes PGlite (a checkpoint). If the
    // channel is already gone the child is stopping by itself (it treats disconnect as stop).
    if (child.process.connected) {
      const stop: ParentMessage = { type: "stop" }
      // A failed send means the channel just closed, which the child also treats as stop.
      child.process.send(stop, () => undefined)
    }
    const stopped = yield* Deferred.await(child.exited).pipe(Effect.timeout(stopTimeout), Effect.option)
    if (Option.isSome(stopped)) {
      const { code, signal } = stopped.value
      if (code !== 0 && child.started) {
        yield* Effect.logWarning(`embedded PostgreSQL ${describeExit({ code, signal })} while stopping`)
      }
      return
    }
    yield* Effect.logWarning(
      `embedded PostgreSQL did not stop within ${Duration.format(stopTimeout)}; ` +
        "killing it (the next start replays its WAL)"
    )
    child.process.kill("SIGKILL")
    yield* Deferred.await(child.exited).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
  }).pipe(Effect.withSpan("EmbeddedPostgres.stop"))

const make = (options: Options) =>
  Effect.gen(function* () {
    const dataDir = path.resolve(options.dataDir)
    const maxConnections = options.maxConnections ?? 10
    const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(60))
    const stopTimeout = Duration.decode(options.stopTimeout ?? Duration.seconds(10))
    if (!Number.isInteger(maxConnections) || maxConnections < 1) {
      return yield* new EmbeddedPostgresError({
        message: `maxConnections must be a positive integer, got ${maxConnections}`
      })
    }

    // The child's output becomes log lines through a queue drained by one fiber, so node's
    // stream callbacks never run effects. Sliding: a chatty child loses old lines, never memory.
    const logLines = yield* Queue.sliding<{ readonly level: "debug" | "warning"; readonly line: string }>(1_000)
    yield* Queue.take(logLines).pipe(
      Effect.flatMap(({ level, line }) =>
        level === "warning" ? Effect.logWarning(`pglite: ${line}`) : Effect.logDebug(`pglite: ${line}`)
      ),
      Effect.forever,
      Effect.forkScoped
    )

    const child = yield* Effect.acquireRelease(spawnChild(dataDir, maxConnections, logLines), (child) =>
      stopChild(child, stopTimeout)
    )

    const [elapsed, port] = yield* Deferred.await(child.ready).pipe(
      Effect.timeoutFail({
        duration: startTimeout,
        onTimeout: () =>
          new EmbeddedPostgresError({
            message: `embedded PostgreSQL on ${dataDir} was not ready within ${Duration.format(startTimeout)}`
          })
      }),
      Effect.timed
    )

    // After start-up the child should live as long as this scope; if it dies, say so loudly
    // (the pool's errors alone would not name the cause).
    yield* Deferred.await(child.exited).pipe(
      Effect.flatMap((exit) =>
        child.stopping
          ? Effect.void
          : Effect.logError(`embedded PostgreSQL ${describeExit(exit)} unexpectedly; the database is unavailable`)
      ),
      Effect.forkScoped
    )

    yield* Effect.logInfo("embedded PostgreSQL ready").pipe(
      Effect.annotateLogs({ port, startupMs: Math.round(Duration.toMillis(elapsed)) })
    )
    // The user and database are not checked by pglite-socket; these are the names it reports.
    return EmbeddedPostgres.of({ url: `postgres://postgres@127.0.0.1:${port}/postgres`, dataDir })
  }).pipe(
    Effect.annotateLogs({ module: "EmbeddedPostgres", dataDir: options.dataDir }),
    Effect.withSpan("EmbeddedPostgres.start")
  )

/**
 * Starts the embedded PostgreSQL for the lifetime of the layer and stops it cleanly (server,
 * then PGlite, which checkpoints) when the layer's scope closes.
 */
export const layer = (options: Options): Layer.Layer<EmbeddedPostgres, EmbeddedPostgresError> =>
  Layer.scoped(EmbeddedPostgres, make(options))
