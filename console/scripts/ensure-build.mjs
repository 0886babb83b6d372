#!/usr/bin/env node
// Builds the console (vinxi build -> console/.output/public) when its output is missing or older
// than any of its sources; otherwise does nothing. Used by `npm start` and the console test suite.
// `--force` always builds. Exits non-zero when the build fails.
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), "..")
const rootDir = join(consoleDir, "..")
const marker = join(consoleDir, ".output", "public", "index.html")

/** Newest modification time under `path` (files only), skipping build output and dependencies. */
const newest = (path) => {
  const info = statSync(path, { throwIfNoEntry: false })
  if (info === undefined) return 0
  if (!info.isDirectory()) return info.mtimeMs
  let latest = 0
  for (const entry of readdirSync(path)) {
    if (entry === "node_modules" || entry === ".output" || entry === ".vinxi" || entry === "test-artifacts") continue
    latest = Math.max(latest, newest(join(path, entry)))
  }
  return latest
}

const sources = ["src", "public", "app.config.ts", "package.json", "tsconfig.json"].map((name) => join(consoleDir, name))
// The console imports the live RPC contract from protocol/.
sources.push(join(rootDir, "protocol", "src"))

const force = process.argv.includes("--force")
const builtAt = existsSync(marker) ? statSync(marker).mtimeMs : 0
const sourcesAt = Math.max(...sources.map(newest))
if (!force && builtAt > sourcesAt) {
  console.log("console: build is up to date")
  process.exit(0)
}
console.log(builtAt === 0 ? "console: not built yet, building (about 30 s)" : "console: sources changed, rebuilding")
const status = spawnSync("npx", ["vinxi", "build"], { cwd: consoleDir, stdio: ["ignore", "ignore", "inherit"], env: process.env }).status
if (status !== 0) {
  console.error("console: build failed (run `npm run build --workspace console` to see why)")
  process.exit(status ?? 1)
}
console.log("console: built into console/.output/public")
