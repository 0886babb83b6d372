/**
 * Runs libuv's thread pool at a low scheduling priority (Linux, best effort).
 *
 * Why: argon2 (password and device-secret checks, ~150 ms of CPU each) runs on libuv's pool. When
 * the engine shares a core with it (a small VM, or the bench's pinned engine) a burst of checks
 * took half of that core from the main thread for as long as it lasted, and heartbeat acks waited:
 * the abuse drill's latency spikes came with the login attempts. At nice 10 the pool gets the CPU
 * the main thread leaves and about a tenth of a contended core (CFS weight 110 against 1024): slow
 * checks wait instead of the fleet, yet still progress when the engine is saturated (at nice 19 a
 * saturated engine starved enrollment and admin logins). Nothing on the heartbeat path uses the
 * pool (sockets are uWS's and pg's; logs go to stdout).
 *
 * How: Linux's setpriority(PRIO_PROCESS, tid) sets one thread's nice value, but Node does not say
 * which threads are the pool's (they are all named "node", and the module loader has started
 * them before any of our code runs). So the pool is given one short CPU-bound job per thread
 * (pbkdf2, ~100 ms each), and the threads whose CPU time grew by it are lowered. When that is not
 * clear-cut (see `poolThreads`), nothing is changed. main.ts imports
 * this module second, so the probe runs while the process is still quiet.
 * NEXMDM_POOL_NICE: 0-19, default 10; 0 leaves the pool alone.
 */
import { pbkdf2 } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { setPriority } from "node:os"

export interface PoolPriority {
  readonly nice: number
  /** Pool threads lowered; 0 when not on Linux, turned off, or the pool's threads were not clear. */
  readonly threads: number
}

/** CPU time (user + system, clock ticks) of each thread of this process. */
const threadTimes = (): Map<string, number> => {
  const times = new Map<string, number>()
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      // Fields after the ") " closing the name: state is 0, utime 11, stime 12.
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")
      times.set(tid, Number(fields[11]) + Number(fields[12]))
    } catch {
      // The thread ended meanwhile.
    }
  }
  return times
}

const niceFromEnv = (): number => {
  const nice = Number(process.env["NEXMDM_POOL_NICE"] ?? "10")
  return Number.isInteger(nice) && nice >= 0 && nice <= 19 ? nice : 10
}

const poolSizeFromEnv = (): number => {
  const size = Number(process.env["UV_THREADPOOL_SIZE"] ?? "4")
  return Number.isInteger(size) && size >= 1 ? size : 4
}

/** Work that keeps one pool thread busy for ~100 ms (about ten clock ticks). */
const BUSY_ITERATIONS = 400_000
/** A pool thread's CPU time must grow by at least this many ticks. */
const MIN_BUSY_TICKS = 3

/**
 * The pool's threads, judged from each thread's CPU time before and after the probe: the
 * `poolSize` threads that grew most, if each grew at least MIN_BUSY_TICKS, more than any other
 * thread, and their ids are consecutive (libuv starts them one after another). Otherwise
 * undefined: V8's own threads (compilation, GC) can be busy at the same time, especially when the
 * process is pinned to one core, and a wrong guess would slow them down.
 */
export const poolThreads = (
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
  poolSize: number,
  mainThread = process.pid
): ReadonlyArray<number> | undefined => {
  const grown = [...after]
    .map(([tid, ticks]) => ({ tid: Number(tid), grown: ticks - (before.get(tid) ?? 0) }))
    .filter((thread) => thread.tid !== mainThread)
    .sort((a, b) => b.grown - a.grown)
  const pool = grown.slice(0, poolSize)
  if (pool.length !== poolSize || pool.some((thread) => thread.grown < MIN_BUSY_TICKS)) return undefined
  const next = grown[poolSize]
  if (next !== undefined && next.grown >= pool[poolSize - 1]!.grown) return undefined
  const ids = pool.map((thread) => thread.tid).sort((a, b) => a - b)
  return ids.every((tid, i) => tid === ids[0]! + i) ? ids : undefined
}

export const lowerThreadPoolPriority = (nice = niceFromEnv(), poolSize = poolSizeFromEnv()): Promise<PoolPriority> =>
  new Promise((resolve) => {
    const none = { nice, threads: 0 }
    // Large pools are rare and this costs ~100 ms of CPU per thread: not worth it beyond 16.
    if (process.platform !== "linux" || nice === 0 || poolSize > 16) return resolve(none)
    let before: Map<string, number>
    try {
      before = threadTimes()
    } catch {
      return resolve(none)
    }
    let running = poolSize
    const done = () => {
      if (--running > 0) return
      const pool = poolThreads(before, threadTimes(), poolSize)
      if (pool === undefined) return resolve(none)
      let threads = 0
      for (const tid of pool) {
        try {
          setPriority(tid, nice)
          threads++
        } catch {
          // A system that refuses: best effort.
        }
      }
      resolve({ nice, threads })
    }
    for (let i = 0; i < poolSize; i++) pbkdf2("nexmdm", "pool", BUSY_ITERATIONS, 32, "sha256", done)
  })

/**
 * Started when main.ts loads this module, before the engine's start-up work (compilation, GC,
 * enrollment hashing) keeps other threads busy and the probe could no longer tell the pool apart.
 */
export const poolPriority: Promise<PoolPriority> = lowerThreadPoolPriority()
