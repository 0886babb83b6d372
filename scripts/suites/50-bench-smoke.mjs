// The bench's smoke run (`npm run bench:smoke`): every scenario at 50 devices for a few seconds,
// against the local PostgreSQL, so that the harness never rots. Counts one test per scenario.
// Without a PostgreSQL server on 127.0.0.1:5432 it skips (CI sets NEXMDM_TEST_REQUIRE_SERVER=1: then it fails).
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { run } from "../lib/run.mjs"

export default async () => {
  console.log("== bench smoke (every scenario, 50 devices)")
  const ready = spawnSync("pg_isready", ["-h", "127.0.0.1", "-p", "5432", "-q"]).status === 0
  if (!ready) {
    if (process.env.NEXMDM_TEST_REQUIRE_SERVER === "1") {
      return { name: "bench-smoke", passed: 0, failed: 1, skipped: 0, note: "no PostgreSQL on 127.0.0.1:5432" }
    }
    return { name: "bench-smoke", passed: 0, failed: 0, skipped: 1, note: "no PostgreSQL on 127.0.0.1:5432" }
  }
  const dir = mkdtempSync(join(tmpdir(), "nexmdm-bench-smoke-summary-"))
  const summary = join(dir, "summary.json")
  const status = run(process.execPath, ["--import", "tsx", "bench/src/Smoke.ts", "--summary-json", summary])
  let outcomes = []
  try {
    outcomes = JSON.parse(readFileSync(summary, "utf8"))
  } catch {
    outcomes = []
  }
  rmSync(dir, { recursive: true, force: true })
  const count = (s) => outcomes.filter((o) => o.status === s).length
  let failed = count("failed")
  if (status !== 0 && failed === 0) failed = 1
  const notes = outcomes.filter((o) => o.status !== "passed").map((o) => `${o.name}: ${o.status}${o.note ? ` (${o.note})` : ""}`)
  return { name: "bench-smoke", passed: count("passed"), failed, skipped: count("skipped"), ...(notes.length > 0 ? { note: notes.join("; ") } : {}) }
}
