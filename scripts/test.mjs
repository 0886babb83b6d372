#!/usr/bin/env node
// `npm test`: typecheck every workspace, then run every test suite, then print one plain
// summary line ("N passed, N failed, N skipped") that CI and people can read at a glance.
//
// Suites live in scripts/suites/*.mjs (run in name order). Each default-exports
// `async (args) => ({ name, passed, failed, skipped, note? })`, so a suite in another language
// (the Kotlin agent core) or another runner (the console's vitest project) adds its counts to the total
// without this file knowing about it.
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const suitesDir = join(dirname(fileURLToPath(import.meta.url)), "suites")
const only = process.env.NEXMDM_TEST_SUITES?.split(",").filter(Boolean)
const files = readdirSync(suitesDir).filter((name) => name.endsWith(".mjs")).sort()

const totals = { passed: 0, failed: 0, skipped: 0 }
const lines = []
for (const file of files) {
  const label = file.replace(/^\d+-/, "").replace(/\.mjs$/, "")
  if (only && !only.includes(label)) continue
  const suite = (await import(pathToFileURL(join(suitesDir, file)).href)).default
  let result
  try {
    result = await suite(process.argv.slice(2))
  } catch (error) {
    result = { name: label, passed: 0, failed: 1, skipped: 0, note: String(error?.stack ?? error) }
  }
  totals.passed += result.passed
  totals.failed += result.failed
  totals.skipped += result.skipped
  lines.push(`  ${result.name}: ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped${result.note ? ` (${result.note})` : ""}`)
  // Typecheck failing makes every later figure meaningless: stop early with a clear line.
  if (label === "typecheck" && result.failed > 0) break
}
console.log("== summary")
for (const line of lines) console.log(line)
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`)
process.exit(totals.failed === 0 ? 0 : 1)
