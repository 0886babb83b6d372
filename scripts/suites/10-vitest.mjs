// protocol, engine and bench tests: one vitest run with a JSON report for the counts.
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { run } from "../lib/run.mjs"

export default async (args) => {
  console.log("== vitest (protocol, engine, bench)")
  const dir = mkdtempSync(join(tmpdir(), "nexmdm-vitest-"))
  const report = join(dir, "report.json")
  const status = run("npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...args])
  let passed = 0
  let failed = 0
  let skipped = 0
  try {
    const result = JSON.parse(readFileSync(report, "utf8"))
    passed = result.numPassedTests
    failed = result.numFailedTests
    skipped = result.numPendingTests + result.numTodoTests
  } catch {
    failed = Math.max(failed, 1)
  }
  rmSync(dir, { recursive: true, force: true })
  if (status !== 0 && failed === 0) failed = 1
  return { name: "vitest", passed, failed, skipped }
}
