#!/usr/bin/env node
// `npm test`: typecheck every workspace, then run every test suite, then print one plain
// summary line ("N passed, N failed, N skipped") that CI and people can read at a glance.
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const run = (command, args) => spawnSync(command, args, { stdio: "inherit", env: process.env }).status ?? 1

console.log("== typecheck")
if (run("npm", ["run", "--silent", "typecheck"]) !== 0) {
  console.log("0 passed, 1 failed (typecheck)")
  process.exit(1)
}

console.log("== vitest (protocol, engine, bench)")
const dir = mkdtempSync(join(tmpdir(), "nexmdm-vitest-"))
const report = join(dir, "report.json")
const status = run("npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)])
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
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(status === 0 && failed === 0 ? 0 : 1)
