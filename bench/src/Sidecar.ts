/**
 * A helper process of the bench that is not a device simulator: the console scenario's live
 * subscribers (LiveSubscribers.ts) and the abuse scenario's attacker (Attacker.ts). Each runs in its
 * own process so that its CPU (parsing fleet updates, opening hostile sockets) neither delays the
 * simulator's timestamps nor hides in its figures.
 *
 * Protocol over the IPC channel: parent -> {type: "start", config}; child -> {type: "log"} lines;
 * parent -> {type: "stop"}; child -> {type: "result", result}, then exits.
 */
import { fork } from "node:child_process"
import { repoRoot } from "./EngineProcess.js"

export interface Sidecar<R> {
  readonly pid: number
  /** Asks for the result and waits for the process to exit (killed after the timeout). */
  readonly stop: (timeoutMs?: number) => Promise<R>
  readonly alive: () => boolean
}

export const forkSidecar = <C, R>(
  modulePath: string,
  config: C,
  options: { readonly taskset: string | null; readonly core: number | null; readonly log: (text: string) => void }
): Sidecar<R> => {
  const pinned = options.taskset !== null && options.core !== null
  const child = fork(modulePath, [], {
    cwd: repoRoot,
    execPath: pinned ? options.taskset! : process.execPath,
    execArgv: [...(pinned ? ["-c", String(options.core), process.execPath] : []), "--import", "tsx"],
    stdio: ["ignore", 2, "inherit", "ipc"]
  })
  let exited = false
  let result: R | null = null
  const waiters: Array<(r: R | null) => void> = []
  child.on("message", (raw) => {
    const message = raw as { type: string; text?: string; result?: R }
    if (message.type === "log") options.log(message.text ?? "")
    if (message.type === "result") {
      result = message.result ?? null
      for (const w of waiters.splice(0)) w(result)
    }
  })
  child.on("exit", () => {
    exited = true
    for (const w of waiters.splice(0)) w(result)
  })
  child.send({ type: "start", config })
  return {
    pid: child.pid ?? 0,
    alive: () => !exited,
    stop: async (timeoutMs = 30_000) => {
      if (!exited && result === null) {
        const answered = new Promise<R | null>((resolve) => waiters.push(resolve))
        if (child.connected) child.send({ type: "stop" })
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
        await answered
        clearTimeout(timer)
      }
      if (result === null) throw new Error(`${modulePath} exited without a result`)
      return result
    }
  }
}

/** Child side: runs `start(config)` and answers `stop` with what `finish()` returns. */
export const runSidecar = <C, R>(start: (config: C, log: (text: string) => void) => { readonly finish: () => Promise<R> }): void => {
  if (process.send === undefined) {
    console.error("this module is a bench sidecar: it is forked by bench/src/main.ts")
    process.exit(2)
  }
  const log = (text: string) => process.send?.({ type: "log", text })
  let running: { readonly finish: () => Promise<R> } | null = null
  process.on("message", (raw) => {
    const message = raw as { type: string; config?: C }
    if (message.type === "start") running = start(message.config as C, log)
    if (message.type === "stop" && running !== null) {
      void running.finish().then(
        (result) => process.send?.({ type: "result", result }, () => process.exit(0)),
        (error: unknown) => {
          log(`sidecar failed: ${String(error)}`)
          process.exit(1)
        }
      )
    }
  })
  process.on("disconnect", () => setTimeout(() => process.exit(0), 200).unref())
}
