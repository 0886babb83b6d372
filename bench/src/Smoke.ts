/**
 * `npm run bench:smoke`: every scenario at a tiny size (50 devices, a few seconds), so that the
 * harness never rots. It checks that each run completes, loses nothing, prints its JSON line with
 * the scenario's own figures, and writes its report (JSON, Markdown, two SVG charts). It does not
 * judge latency: a shared CI machine says nothing about p95 (`--no-thresholds`).
 *
 *   npm run bench:smoke [-- --only steady,crash] [--summary-json FILE]
 *
 * Runs one bench process after another (never in parallel: they would measure each other).
 */
import { execFile, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { repoRoot } from "./EngineProcess.js"
import { postgresBinDir } from "./ThrowawayPostgres.js"

export interface SmokeCase {
  readonly name: string
  readonly args: ReadonlyArray<string>
  /** Keys that must be present and not null in the result line. */
  readonly expect: ReadonlyArray<string>
  /** Why the case cannot run here (null: it can). */
  readonly unavailable?: () => string | null
}

// The engine is bundled once by runSmoke, not by each run.
const SMALL = ["--devices", "50", "--warmup", "1", "--no-thresholds", "--no-build"]
const COMMON = ["scenario", "devices", "sent", "acked", "ack_p50_ms", "ack_p95_ms", "ack_p99_ms", "sim_cpu_pct"]
const PERSISTED = ["persisted", "missing", "duplicated"]

export const SMOKE_CASES: ReadonlyArray<SmokeCase> = [
  { name: "steady", args: ["steady", ...SMALL, "--duration", "5", "--http-share", "0.1"], expect: [...COMMON, ...PERSISTED, "http_ack_p95_ms"] },
  { name: "steady (naive baseline)", args: ["steady", ...SMALL, "--duration", "4", "--target", "naive"], expect: [...COMMON, ...PERSISTED] },
  { name: "max", args: ["max", ...SMALL, "--duration", "4"], expect: [...COMMON, ...PERSISTED, "hb_per_s", "persisted_hb_per_s"] },
  { name: "max (ceiling baseline)", args: ["max", ...SMALL, "--duration", "4", "--target", "ceiling"], expect: [...COMMON, "hb_per_s"] },
  { name: "reconnect-storm", args: ["reconnect-storm", ...SMALL, "--duration", "6", "--disrupt-at", "2"], expect: [...COMMON, ...PERSISTED, "recovery_s", "restart_s"] },
  // A fifth of the devices on the HTTP fallback: they must resend acked-but-not-durable heartbeats
  // after the kill too (PROTOCOL.md 12.2), which this scenario found missing once.
  { name: "crash", args: ["crash", ...SMALL, "--duration", "6", "--disrupt-at", "2", "--http-share", "0.2"], expect: [...COMMON, ...PERSISTED, "recovery_s", "restart_s"] },
  {
    name: "db-outage",
    args: ["db-outage", ...SMALL, "--duration", "8", "--disrupt-at", "2", "--outage", "3"],
    expect: [...COMMON, ...PERSISTED, "outage_s", "outage_ack_p95_ms"],
    // CI (NEXMDM_TEST_REQUIRE_SERVER=1) must run it: there a missing initdb fails the case instead.
    unavailable: () => (postgresBinDir() === null && process.env["NEXMDM_TEST_REQUIRE_SERVER"] !== "1" ? "no initdb (a local PostgreSQL installation)" : null)
  },
  { name: "fan-out", args: ["fan-out", ...SMALL, "--duration", "4"], expect: [...COMMON, ...PERSISTED, "fanout_p95_ms", "fanout_all_ms"] },
  { name: "console", args: ["console", ...SMALL, "--duration", "5", "--subscribers", "3"], expect: [...COMMON, ...PERSISTED, "subscriber_p95_ms"] },
  { name: "abuse", args: ["abuse", ...SMALL, "--duration", "6", "--abuse-rate", "30"], expect: [...COMMON, ...PERSISTED, "steady_ratio", "abuse_attempts", "engine_up"] }
]

export interface SmokeOutcome {
  readonly name: string
  readonly status: "passed" | "failed" | "skipped"
  readonly seconds: number
  readonly note: string
}

/** What is wrong with a result line, given the keys the case expects (empty: nothing). */
export const checkResult = (result: Readonly<Record<string, unknown>> | null, expect: ReadonlyArray<string>): Array<string> => {
  if (result === null) return ["no JSON result line"]
  const wrong: Array<string> = []
  if (result["ok"] !== true) wrong.push(`ok is ${JSON.stringify(result["ok"])}: ${JSON.stringify(result["problems"] ?? result["error"] ?? null)}`)
  for (const key of expect) if (result[key] === null || result[key] === undefined) wrong.push(`${key} is missing`)
  if (typeof result["missing"] === "number" && result["missing"] > 0) wrong.push(`${result["missing"]} heartbeat(s) missing`)
  if (typeof result["duplicated"] === "number" && result["duplicated"] > 0) wrong.push(`${result["duplicated"]} duplicated`)
  return wrong
}

const mainPath = fileURLToPath(new URL("./main.ts", import.meta.url))

const runCase = (smoke: SmokeCase, resultsDir: string): Promise<{ result: Record<string, unknown> | null; code: number | null }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", mainPath, ...smoke.args, "--results-dir", resultsDir], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let last = ""
    const tail: Array<string> = []
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.trim().startsWith("{")) last = line
      else process.stdout.write(`  ${line}\n`)
    })
    // The engine's and workers' logs: kept for a failure, not printed (they drown the summary).
    createInterface({ input: child.stderr! }).on("line", (line) => {
      tail.push(line)
      if (tail.length > 30) tail.shift()
    })
    child.once("exit", (code) => {
      let result: Record<string, unknown> | null = null
      try {
        result = JSON.parse(last) as Record<string, unknown>
      } catch {
        result = null
      }
      if (code !== 0) process.stdout.write(`  last stderr lines:\n${tail.map((l) => `    ${l}`).join("\n")}\n`)
      resolve({ result, code })
    })
  })

export const runSmoke = async (only: ReadonlyArray<string> | null): Promise<Array<SmokeOutcome>> => {
  const resultsDir = mkdtempSync(join(tmpdir(), "nexmdm-bench-smoke-"))
  const outcomes: Array<SmokeOutcome> = []
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, ["engine/build.mjs"], { cwd: repoRoot }, (error) => (error ? reject(error) : resolve()))
  )
  try {
    for (const smoke of SMOKE_CASES) {
      if (only !== null && !only.includes(smoke.name) && !only.includes(smoke.args[0]!)) continue
      const reason = smoke.unavailable?.() ?? null
      if (reason !== null) {
        outcomes.push({ name: smoke.name, status: "skipped", seconds: 0, note: reason })
        process.stdout.write(`-- ${smoke.name}: skipped (${reason})\n`)
        continue
      }
      process.stdout.write(`-- ${smoke.name}: npm run bench -- ${smoke.args.join(" ")}\n`)
      const started = performance.now()
      const before = new Set(readdirSync(resultsDir))
      const { result, code } = await runCase(smoke, resultsDir)
      const wrong = checkResult(result, smoke.expect)
      if (code !== 0 && wrong.length === 0) wrong.push(`exit code ${code}`)
      // The report: JSON, Markdown and the two charts of this run.
      const added = readdirSync(resultsDir).filter((f) => !before.has(f))
      for (const suffix of [".json", ".md", "-latency.svg", "-throughput.svg"]) {
        if (!added.some((f) => f.endsWith(suffix) && !f.endsWith(".metrics.json"))) wrong.push(`no ${suffix} report file`)
      }
      const seconds = Math.round((performance.now() - started) / 100) / 10
      outcomes.push({ name: smoke.name, status: wrong.length === 0 ? "passed" : "failed", seconds, note: wrong.join("; ") })
      process.stdout.write(`-- ${smoke.name}: ${wrong.length === 0 ? "passed" : `FAILED: ${wrong.join("; ")}`} (${seconds} s)\n`)
    }
  } finally {
    if (existsSync(resultsDir)) rmSync(resultsDir, { recursive: true, force: true })
  }
  return outcomes
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { only: { type: "string" }, "summary-json": { type: "string" } }, strict: true })
  const only = values.only === undefined ? null : values.only.split(",").map((s) => s.trim())
  const outcomes = await runSmoke(only)
  const count = (status: SmokeOutcome["status"]) => outcomes.filter((o) => o.status === status).length
  process.stdout.write(`bench smoke: ${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped\n`)
  if (values["summary-json"] !== undefined) writeFileSync(values["summary-json"], JSON.stringify(outcomes))
  process.exit(count("failed") === 0 ? 0 : 1)
}
