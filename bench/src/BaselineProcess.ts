/**
 * The two reference servers of bench/baselines/ as child processes: `ceiling` (bare uWS, parse and
 * ack) and `naive` (Node `ws` + one INSERT per heartbeat through a pg pool). The bench drives them
 * with the same simulator and the same scenario code as the engine.
 */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { findTaskset, readRssMb, repoRoot } from "./EngineProcess.js"

export type BaselineKind = "ceiling" | "naive"

/** What the bench needs of any server process it runs: the engine or a baseline. */
export interface ServerProcess {
  readonly pid: number
  readonly deviceUrl: string
  readonly rssMb: () => number | null
  readonly alive: () => boolean
  readonly stop: (timeoutMs?: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }>
  readonly kill: () => Promise<void>
}

export const startBaseline = async (options: {
  readonly kind: BaselineKind
  /** naive only: the database its heartbeats table lives in. */
  readonly databaseUrl: string | null
  readonly pinCore: number | null
  readonly port?: number
}): Promise<ServerProcess> => {
  const args = ["--import", "tsx", `bench/baselines/${options.kind}.ts`, "--port", String(options.port ?? 0)]
  if (options.kind === "naive") {
    if (options.databaseUrl === null) throw new Error("the naive baseline needs a database")
    args.push("--database-url", options.databaseUrl)
  }
  const taskset = options.pinCore === null ? null : findTaskset()
  const child = taskset === null
    ? spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(taskset, ["-c", String(options.pinCore), process.execPath, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start the ${options.kind} baseline`)
  child.stderr?.on("data", (chunk: Buffer) => process.stderr.write(`[${options.kind}] ${chunk.toString("utf8")}`))
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = { code, signal }
      resolve(exited)
    })
  )
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${options.kind} baseline did not start within 30 s`)), 30_000)
    const lines = createInterface({ input: child.stdout! })
    lines.on("line", (line) => {
      const match = /^listening (\d+)$/.exec(line.trim())
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    void exit.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`the ${options.kind} baseline exited before listening (code ${code}, signal ${signal})`))
    })
  })
  return {
    pid,
    deviceUrl: `http://127.0.0.1:${port}`,
    rssMb: () => readRssMb(pid),
    alive: () => exited === null,
    stop: async (timeoutMs = 10_000) => {
      if (exited !== null) return { ...(exited as { code: number | null; signal: NodeJS.Signals | null }), killed: false }
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
      const result = await exit
      clearTimeout(timer)
      return { ...result, killed: result.signal === "SIGKILL" }
    },
    kill: async () => {
      if (exited !== null) return
      child.kill("SIGKILL")
      await exit
    }
  }
}
