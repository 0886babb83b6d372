/**
 * A PostgreSQL cluster of the bench's own, for the db-outage scenario: it is stopped and started
 * mid-run, which must never happen to the machine's shared server on 5432 (other tests use it).
 *
 * initdb into a temporary directory, trust authentication, a free port below 32768, the socket in
 * the data directory. PostgreSQL refuses to run as root, so as root everything runs as `postgres`
 * through runuser.
 */
import { execFile } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"

const BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/14/bin"]

export const postgresBinDir = (): string | null => BIN_DIRS.find((dir) => existsSync(join(dir, "initdb"))) ?? null

/** A port in 20000..32767 nobody listens on right now (below the ephemeral range, see STACK.md). */
export const freeLowPort = async (): Promise<number> => {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once("error", () => resolve(false))
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error("no free port below 32768")
}

export interface ThrowawayPostgres {
  /** Server URL (database `postgres`). */
  readonly url: string
  readonly port: number
  readonly dataDir: string
  /** pg_ctl stop -m immediate: like a crash or a pulled cable, no checkpoint. */
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  /** Stops the server and removes the directory. */
  readonly destroy: () => Promise<void>
}

const run = (command: string, args: ReadonlyArray<string>, asPostgres: boolean): Promise<string> =>
  new Promise((resolve, reject) => {
    const [file, argv] = asPostgres ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, [...args]]
    execFile(file, argv, { timeout: 120_000 }, (error, stdout, stderr) =>
      error !== null ? reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stderr}`)) : resolve(stdout)
    )
  })

export const createThrowawayPostgres = async (): Promise<ThrowawayPostgres> => {
  const bin = postgresBinDir()
  if (bin === null) throw new Error(`no initdb in ${BIN_DIRS.join(", ")}: the db-outage scenario needs a local PostgreSQL installation`)
  const asPostgres = userInfo().uid === 0
  const root = mkdtempSync(join(tmpdir(), "nexmdm-bench-pg-"))
  const dataDir = join(root, "data")
  if (asPostgres) {
    const pgUser = await run("id", ["-u", "postgres"], false).then((s) => Number(s.trim()))
    const pgGroup = await run("id", ["-g", "postgres"], false).then((s) => Number(s.trim()))
    chownSync(root, pgUser, pgGroup)
  }
  const port = await freeLowPort()
  await run(join(bin, "initdb"), ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], asPostgres)
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=64MB`
  const logFile = join(root, "server.log")
  const start = () => run(join(bin, "pg_ctl"), ["-D", dataDir, "-o", options, "-l", logFile, "-w", "-t", "60", "start"], asPostgres).then(() => undefined)
  const stop = () => run(join(bin, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "-t", "60", "stop"], asPostgres).then(() => undefined)
  await start()
  let destroyed = false
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
    start,
    destroy: async () => {
      if (destroyed) return
      destroyed = true
      await stop().catch(() => undefined)
      rmSync(root, { recursive: true, force: true })
    }
  }
}
