/**
 * Child-process entry point of the embedded database: opens PGlite on a data directory and serves
 * it over TCP with PGLiteSocketServer, so the engine talks to it through the same node-postgres
 * driver it uses for a real server.
 *
 * It runs in its own process because PGlite executes PostgreSQL (WASM) on the JavaScript thread:
 * in the engine it would stall the event loop 10-200 ms per write batch.
 *
 * Usage (normally via EmbeddedPostgres.ts, which forks it with an IPC channel):
 *   node --import tsx engine/src/internal/pgliteServer.ts --data-dir ./data/pglite [--port 0]
 *     [--host 127.0.0.1] [--max-connections 10]
 * or the same options as PGLITE_DATA_DIR, PGLITE_PORT, PGLITE_HOST, PGLITE_MAX_CONNECTIONS.
 *
 * Protocol with the parent: the child sends exactly one of `{ type: "ready", port }` or
 * `{ type: "error", message }` over IPC; the parent sends `{ type: "stop" }` when it is done with
 * the database. The child then stops cleanly (server, then PGlite, then the lock) and exits 0; it
 * does the same when the parent goes away (IPC disconnect). A failed start exits 1.
 *
 * Signals: run standalone, SIGTERM and SIGINT stop it. Forked, it ignores them, because they
 * usually reach the whole process group or cgroup at once (Ctrl-C in a terminal, systemd's
 * default KillMode) while the engine still has writes to flush: the engine stops it afterwards.
 * A SIGKILL loses nothing committed (the next start replays the WAL).
 *
 * Plain Node on purpose: the process does one thing, and an Effect runtime would add start-up time
 * for no gain.
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

export interface ServerOptions {
  readonly dataDir: string
  readonly host: string
  /** 0 lets the OS pick a free port; the chosen one is reported in the ready message. */
  readonly port: number
  /** Sockets served at once. PGLiteSocketServer's own default is 1, which a pool cannot live with. */
  readonly maxConnections: number
}

/** What the child sends its parent over IPC. */
export type ChildMessage =
  | { readonly type: "ready"; readonly port: number }
  | { readonly type: "error"; readonly message: string }

/** What the parent sends the child over IPC. */
export type ParentMessage = { readonly type: "stop" }

/** Name of the lock file inside the data directory; PGlite does not lock its data directory itself. */
export const LOCK_FILE = "nexmdm-pglite.lock"

const DEFAULT_MAX_CONNECTIONS = 10

const parseInteger = (name: string, text: string, min: number, max: number): number => {
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got "${text}"`)
  }
  return value
}

export const parseOptions = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): ServerOptions => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      "data-dir": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "max-connections": { type: "string" }
    },
    strict: true,
    allowPositionals: false
  })
  const dataDir = values["data-dir"] ?? env["PGLITE_DATA_DIR"]
  if (dataDir === undefined || dataDir === "") {
    throw new Error("a data directory is required (--data-dir or PGLITE_DATA_DIR)")
  }
  return {
    dataDir: path.resolve(dataDir),
    host: values.host ?? env["PGLITE_HOST"] ?? "127.0.0.1",
    port: parseInteger("port", values.port ?? env["PGLITE_PORT"] ?? "0", 0, 65535),
    maxConnections: parseInteger(
      "max-connections",
      values["max-connections"] ?? env["PGLITE_MAX_CONNECTIONS"] ?? String(DEFAULT_MAX_CONNECTIONS),
      1,
      10_000
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Data directory lock
// ---------------------------------------------------------------------------------------------

/**
 * A pid only counts as a live holder if it is still a pgliteServer: in containers pids restart
 * from 1 on every boot, so the pid in a stale lock is often reused by an unrelated process (even
 * by this one). Without /proc (macOS) we can only ask whether the pid exists.
 */
const isLiveHolder = (pid: number): boolean => {
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists but belongs to another user, so it is alive.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("pgliteServer")
  } catch {
    return true
  }
}

/**
 * Takes the data directory lock or throws naming the directory and the holder. A lock left by a
 * dead process is taken over. Two processes taking over the same stale lock at the same instant
 * can both win; that needs two engines started together on a crashed directory, which is accepted.
 */
const acquireLock = (dataDir: string): (() => void) => {
  const file = path.join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" })
      return () => {
        // Only remove it if it is still ours (it may have been taken over after a long stall).
        try {
          if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.unlinkSync(file)
        } catch {
          // already gone
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    let holder: number
    try {
      holder = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10)
    } catch {
      continue // removed between our attempt and the read: try again
    }
    if (Number.isInteger(holder) && isLiveHolder(holder)) {
      throw new Error(
        `data directory ${dataDir} is in use by another embedded PostgreSQL (pid ${holder}, lock file ${file})`
      )
    }
    fs.rmSync(file, { force: true })
  }
  throw new Error(`could not take the lock ${file}: it keeps changing`)
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/** Resolves once the message is handed to the channel, so exiting right after does not lose it. */
const report = (message: ChildMessage): Promise<void> =>
  new Promise((resolve) => {
    if (process.send) {
      process.send(message, undefined, undefined, () => resolve())
    } else {
      if (message.type === "ready") process.stdout.write(`pglite listening on port ${message.port}\n`)
      else process.stderr.write(`pglite failed to start: ${message.message}\n`)
      resolve()
    }
  })

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** PGLiteSocketServer.getServerConn() is "host:port" (the host may be IPv6, so split at the last colon). */
const portOf = (conn: string): number => Number(conn.slice(conn.lastIndexOf(":") + 1))

const main = (): void => {
  let db: PGlite | undefined
  let server: PGLiteSocketServer | undefined
  let releaseLock: (() => void) | undefined
  let stopping: Promise<void> | undefined

  const start = async (): Promise<number> => {
    const options = parseOptions(process.argv.slice(2), process.env)
    fs.mkdirSync(options.dataDir, { recursive: true })
    releaseLock = acquireLock(options.dataDir)
    db = await PGlite.create({ dataDir: options.dataDir })
    server = new PGLiteSocketServer({
      db,
      host: options.host,
      port: options.port,
      maxConnections: options.maxConnections
    })
    server.addEventListener("error", (event) => {
      process.stderr.write(`pglite: socket error: ${errorText((event as CustomEvent).detail)}\n`)
    })
    await server.start()
    return portOf(server.getServerConn())
  }
  const started = start()

  // Idempotent: a signal and the parent's disconnect can arrive together.
  const stop = (exitCode: number): Promise<void> =>
    (stopping ??= (async () => {
      // Let a start in progress finish first, so we never leave a half-written initdb behind.
      await started.catch(() => undefined)
      try {
        // The server first, so no query lands on a closing database; close() then checkpoints,
        // which is what puts the data on disk in a state that needs no recovery.
        await server?.stop()
        if (db !== undefined && !db.closed) await db.close()
      } catch (error) {
        process.stderr.write(`pglite: error while stopping: ${errorText(error)}\n`)
        exitCode = exitCode === 0 ? 1 : exitCode
      } finally {
        releaseLock?.()
      }
      process.exit(exitCode)
    })())

  const forked = process.send !== undefined
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (!forked) void stop(0)
      else process.stderr.write(`pglite: ignoring ${signal}; the engine stops this server once it is done with it\n`)
    })
  }
  process.on("message", (message: unknown) => {
    if (typeof message === "object" && message !== null && (message as ParentMessage).type === "stop") void stop(0)
  })
  // The parent died or closed the channel: nobody will use this database any more.
  process.once("disconnect", () => void stop(0))
  // Once the parent is gone our pipes are broken; a write must not crash us before close().
  process.stdout.on("error", () => undefined)
  process.stderr.on("error", () => undefined)

  started.then(
    (port) => (stopping === undefined ? report({ type: "ready", port }) : undefined),
    async (error: unknown) => {
      await report({ type: "error", message: errorText(error) })
      await stop(1)
    }
  )
}

/** Only when run as a program: tests import this module for its helpers and constants. */
const isEntryPoint = (): boolean => {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return fs.realpathSync(script) === fs.realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) main()
