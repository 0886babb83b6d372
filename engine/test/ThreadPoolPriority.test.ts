/**
 * libuv's pool at a lower priority (Linux; nice 19 here, 10 by default): checked in a fresh Node process, so that nothing else keeps the
 * pool or V8's threads busy meanwhile.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { poolThreads } from "../src/internal/ThreadPoolPriority.js"

const modulePath = fileURLToPath(new URL("../src/internal/ThreadPoolPriority.ts", import.meta.url))

const script = `
import { readdirSync, readFileSync } from "node:fs"
import { scryptSync, scrypt } from "node:crypto"
const { poolPriority } = await import(${JSON.stringify(modulePath)})
const outcome = await poolPriority
// The pool still works, at its new priority.
const hashed = await new Promise((resolve, reject) => scrypt("secret", "salt", 16, (e, key) => (e ? reject(e) : resolve(key.toString("hex")))))
const nice = (tid) => Number(readFileSync("/proc/self/task/" + tid + "/stat", "utf8").split(") ")[1].split(" ")[16])
const byNice = {}
for (const tid of readdirSync("/proc/self/task")) byNice[nice(tid)] = (byNice[nice(tid)] ?? 0) + 1
console.log(JSON.stringify({ outcome, byNice, hashed: hashed === scryptSync("secret", "salt", 16).toString("hex") }))
`

describe.runIf(process.platform === "linux")("thread pool priority", () => {
  // Retried: on a loaded machine another thread can be busy during the probe, and the module then
  // (rightly) changes nothing.
  it("lowers exactly libuv's pool threads to nice 19 and leaves the main thread alone", { retry: 2 }, () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, UV_THREADPOOL_SIZE: "4", NEXMDM_POOL_NICE: "19" }
    })
    expect(result.status, result.stderr).toBe(0)
    const { outcome, byNice, hashed } = JSON.parse(result.stdout.trim().split("\n").pop()!)
    expect(outcome).toEqual({ nice: 19, threads: 4 })
    expect(byNice["19"]).toBe(4)
    // The main thread and V8's own threads keep the process's priority.
    expect(Object.keys(byNice).length).toBe(2)
    expect(hashed).toBe(true)
  })

  it("leaves the pool alone with NEXMDM_POOL_NICE=0", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, NEXMDM_POOL_NICE: "0" }
    })
    expect(result.status, result.stderr).toBe(0)
    const { outcome, byNice } = JSON.parse(result.stdout.trim().split("\n").pop()!)
    expect(outcome).toEqual({ nice: 0, threads: 0 })
    expect(Object.keys(byNice)).toHaveLength(1)
  })
})

describe("telling the pool's threads apart", () => {
  const times = (entries: Record<number, number>) => new Map(Object.entries(entries).map(([tid, ticks]) => [tid, ticks]))
  const before = times({ 100: 50, 101: 10, 102: 10, 103: 10, 104: 0, 105: 0, 106: 0, 107: 0 })

  it("picks the consecutive threads that grew most, while V8's threads were busy too (a pinned process)", () => {
    const after = times({ 100: 90, 101: 13, 102: 13, 103: 12, 104: 9, 105: 10, 106: 9, 107: 10 })
    expect(poolThreads(before, after, 4, 100)).toEqual([104, 105, 106, 107])
  })

  it("gives up when it is not clear-cut: a tie with another thread, too little work, ids not consecutive", () => {
    expect(poolThreads(before, times({ 100: 50, 101: 19, 102: 10, 103: 10, 104: 9, 105: 9, 106: 9, 107: 9 }), 4, 100)).toBeUndefined()
    expect(poolThreads(before, times({ 100: 50, 101: 10, 102: 10, 103: 10, 104: 2, 105: 2, 106: 2, 107: 2 }), 4, 100)).toBeUndefined()
    expect(poolThreads(before, times({ 100: 50, 101: 19, 102: 10, 103: 10, 104: 0, 105: 9, 106: 9, 107: 9 }), 4, 100)).toBeUndefined()
  })
})

