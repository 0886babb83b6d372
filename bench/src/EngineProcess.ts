/**
 * Everything the bench does to the engine from the outside: a fresh database, the engine as a
 * child process (optionally pinned to a core), its memory, and the CLI for enrollment tokens.
 *
 * The engine is started with `node --import tsx` directly, not through npx: killing npx leaves its
 * node child listening (STACK.md), and we need the real pid for /proc/<pid>/status.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import pg from "pg"

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"

/** Absolute path of taskset, or null when the machine has none. */
export const findTaskset = (): string | null =>
  ["/usr/bin/taskset", "/bin/taskset", "/usr/local/bin/taskset"].find((path) => existsSync(path)) ?? null

/** A port that was free a moment ago (bound to 0 on 127.0.0.1, then released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not pick a free port"))))
    })
  })

export interface FreshDatabase {
  readonly name: string
  readonly url: string
  readonly drop: () => Promise<void>
}

const withDatabase = (url: string, name: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

/** Creates `nexmdm_bench_<timestamp>` on the server of `serverUrl`. */
export const createFreshDatabase = async (serverUrl: string): Promise<FreshDatabase> => {
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").replace(/\..*$/, "")
  const name = `nexmdm_bench_${stamp}_${process.pid}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  return {
    name,
    url: withDatabase(serverUrl, name),
    drop: async () => {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      try {
        // WITH (FORCE) (PostgreSQL 13+) ends sessions a crashed engine may have left behind.
        await client.query(`drop database if exists "${name}" with (force)`)
      } finally {
        await client.end()
      }
    }
  }
}

/** Resident set size of a local process in MiB, from /proc (null when unavailable). */
export const readRssMb = (pid: number): number | null => {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? null : Number(match[1]) / 1024
  } catch {
    return null
  }
}

// Linux reports CPU times in clock ticks; USER_HZ is 100 on every mainstream kernel.
const TICK_MS = 10

/** CPU time (user + system) a local process has used, in ms (null when unavailable). */
export const readProcessCpuMs = (pid: number): number | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return null
  }
}

/** CPU time used by every process whose command is `name` (e.g. all PostgreSQL backends), in ms. */
export const readCommandCpuMs = (name: string): number => {
  let total = 0
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      if (stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) !== name) continue
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      total += (Number(fields[11]) + Number(fields[12])) * TICK_MS
    } catch {
      // the process ended meanwhile
    }
  }
  return total
}

/** Machine-wide busy CPU time (all cores, everything but idle and iowait), in ms. */
export const readMachineBusyMs = (): number | null => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
    const total = ticks.reduce((a, b) => a + b, 0)
    return (total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) * TICK_MS
  } catch {
    return null
  }
}

/** A numeric sample from a Prometheus text exposition (first series of that name), or null. */
export const metricValue = (text: string | null, name: string): number | null => {
  if (text === null) return null
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)`, "m").exec(text)
  return match === null ? null : Number(match[1])
}

/** `process_resident_memory_bytes` from a Prometheus /metrics endpoint, in MiB (null when absent). */
export const metricsRssMb = async (adminUrl: string): Promise<number | null> => {
  try {
    const response = await fetch(new URL("/metrics", adminUrl), { signal: AbortSignal.timeout(3000) })
    if (!response.ok) return null
    const match = /^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)/m.exec(await response.text())
    return match === null ? null : Number(match[1]) / (1024 * 1024)
  } catch {
    return null
  }
}

/** The admin plane's /metrics text (null when unavailable). */
export const fetchMetrics = async (adminUrl: string): Promise<string | null> => {
  try {
    const response = await fetch(new URL("/metrics", adminUrl), { signal: AbortSignal.timeout(3000) })
    return response.ok ? await response.text() : null
  } catch {
    return null
  }
}

export interface EngineOptions {
  readonly databaseUrl: string
  /** Pin the engine to this core with taskset (null = not pinned). */
  readonly pinCore: number | null
  readonly env?: Readonly<Record<string, string>>
  readonly readyTimeoutMs?: number
  /** Listen on these ports (a restart keeps the devices' URL); default: free ports. */
  readonly ports?: { readonly device: number; readonly admin: number }
  /** Build the bundle first (default true; a restart reuses the bundle). */
  readonly build?: boolean
}

export interface RunningEngine {
  readonly pid: number
  readonly deviceUrl: string
  readonly adminUrl: string
  readonly rssMb: () => number | null
  /** True while the process runs. */
  readonly alive: () => boolean
  /** SIGTERM, then wait for the exit (the engine flushes its write-behind first); SIGKILL after the timeout. */
  readonly stop: (timeoutMs?: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }>
  /** `kill -9`: no flush, no goodbye; resolves once the process is gone. */
  readonly kill: () => Promise<void>
  readonly ports: { readonly device: number; readonly admin: number }
}

/**
 * argon2 at its cheapest (1 MiB, 1 pass): enrolling 10,000 simulated devices takes seconds instead
 * of minutes. Production hashing costs ~40 ms a device; the bench does not measure enrollment.
 */
export const CHEAP_ARGON2_ENV: Readonly<Record<string, string>> = {
  NEXMDM_ARGON2_DEVICE_MEMORY_KIB: "1024",
  NEXMDM_ARGON2_DEVICE_TIME_COST: "1"
}

/** Environment that makes a bench engine cheap to enroll into and fast to observe. */
export const benchEngineEnv = (databaseUrl: string, devicePort: number, adminPort: number): Record<string, string> => ({
  DATABASE_URL: databaseUrl,
  NEXMDM_DEVICE_PORT: String(devicePort),
  NEXMDM_ADMIN_PORT: String(adminPort),
  NEXMDM_HOST: "127.0.0.1",
  NEXMDM_DEMO_DEVICES: "0",
  NEXMDM_LOG_LEVEL: "warn",
  NEXMDM_HEARTBEAT_INTERVAL_S: "1",
  ...CHEAP_ARGON2_ENV,
  NEXMDM_ENROLL_RATE_PER_MIN: "1000000",
  // What engine/launch.mjs (npm start) sets: the engine is measured as it runs in production.
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072"
})

/** Keeps the last lines of a stream (for error messages) and forwards it to stderr with a prefix. */
const forward = (child: ChildProcess, prefix: string, tail: Array<string>) => {
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.length === 0) continue
      tail.push(line)
      if (tail.length > 40) tail.shift()
      process.stderr.write(`${prefix}${line}\n`)
    }
  }
  child.stdout?.on("data", onData)
  child.stderr?.on("data", onData)
}

export const startEngine = async (options: EngineOptions): Promise<RunningEngine> => {
  const devicePort = options.ports?.device ?? (await freePort())
  let adminPort = options.ports?.admin ?? (await freePort())
  while (adminPort === devicePort) adminPort = await freePort()
  const env = { ...process.env, ...benchEngineEnv(options.databaseUrl, devicePort, adminPort), ...options.env }
  // The engine runs as it does in production: the esbuild bundle (`npm start` builds it too), not
  // through tsx, whose compiler costs ~80 MB of heap and would blur the memory figures.
  if (options.build !== false) {
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, ["engine/build.mjs"], { cwd: repoRoot }, (error) => (error ? reject(error) : resolve()))
    )
  }
  const nodeArgs = ["engine/build/main.mjs"]
  const taskset = options.pinCore === null ? null : findTaskset()
  const child = taskset === null
    ? spawn(process.execPath, nodeArgs, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] })
    // taskset execs node in place, so child.pid is the engine's pid and every thread is pinned.
    : spawn(taskset, ["-c", String(options.pinCore), process.execPath, ...nodeArgs], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] })
  const tail: Array<string> = []
  forward(child, "[engine] ", tail)
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = { code, signal }
      resolve(exited)
    })
  )
  const pid = child.pid
  if (pid === undefined) throw new Error("could not start the engine")
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const deviceUrl = `http://127.0.0.1:${devicePort}`

  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000)
  for (;;) {
    if (exited !== null) {
      const { code, signal } = exited
      throw new Error(`engine exited before it was ready (code ${code}, signal ${signal}); last output:\n${tail.join("\n")}`)
    }
    try {
      const response = await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      if (response.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`engine not ready after ${options.readyTimeoutMs ?? 120_000} ms; last output:\n${tail.join("\n")}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }

  return {
    pid,
    deviceUrl,
    adminUrl,
    rssMb: () => readRssMb(pid),
    alive: () => exited === null,
    ports: { device: devicePort, admin: adminPort },
    kill: async () => {
      if (exited !== null) return
      child.kill("SIGKILL")
      await exit
    },
    stop: async (timeoutMs = 60_000) => {
      if (exited !== null) return { ...(exited as { code: number | null; signal: NodeJS.Signals | null }), killed: false }
      child.kill("SIGTERM")
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs)
      })
      const result = await Promise.race([exit, timedOut])
      clearTimeout(timer)
      if (result !== null) return { ...result, killed: false }
      child.kill("SIGKILL")
      return { ...(await exit), killed: true }
    }
  }
}

export interface EnrollmentToken {
  readonly id: string
  readonly token: string
  readonly expiresAt: string | number
  readonly maxUses: number
}

/**
 * Creates an enrollment token with the engine CLI (it prints one JSON object on stdout). `env`
 * must carry the engine's argon2 settings: the token's hash is made here and verified on every
 * enrollment, so a token hashed at production cost makes each enrollment cost ~40 ms.
 */
export const createEnrollmentToken = (
  databaseUrl: string,
  maxUses: number,
  env: Readonly<Record<string, string>> = {}
): Promise<EnrollmentToken> =>
  new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [
        // The bundle built for the engine starts in a fraction of tsx's time (no compile of the sources).
        ...(existsSync(`${repoRoot}engine/build/cli.mjs`) ? ["engine/build/cli.mjs"] : ["--import", "tsx", "engine/src/cli.ts"]),
        "tokens", "create", "--expires", "2h", "--max-uses", String(maxUses), "--label", "bench", "--json"
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, ...env, DATABASE_URL: databaseUrl, NEXMDM_LOG_LEVEL: "warn" },
        timeout: 120_000,
        maxBuffer: 1024 * 1024
      },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(new Error(`engine CLI "tokens create" failed: ${error.message}\n${stderr}`))
          return
        }
        // The JSON object is the last non-empty line; anything before it is tolerated.
        const line = stdout.trim().split("\n").filter((l) => l.trim().startsWith("{")).pop()
        try {
          const parsed = JSON.parse(line ?? "") as Partial<EnrollmentToken>
          if (typeof parsed.token !== "string") throw new Error("no token field")
          resolve(parsed as EnrollmentToken)
        } catch (cause) {
          reject(new Error(`engine CLI "tokens create" printed no token JSON (${String(cause)}):\n${stdout}\n${stderr}`))
        }
      }
    )
  })
