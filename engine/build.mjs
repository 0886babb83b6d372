#!/usr/bin/env node
// Bundles the engine for running without tsx: tsx's in-process compiler and source maps cost
// ~165 MB of RSS and ~80 MB of heap, a tax on every device's share of memory. Native addons and
// packages that locate files at run time stay external. Takes well under a second.
import { build } from "esbuild"
import { rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const outdir = join(here, "build")
rmSync(outdir, { recursive: true, force: true })

await build({
  entryPoints: {
    main: join(here, "src/main.ts"),
    cli: join(here, "src/cli.ts"),
    // EmbeddedPostgres forks this file next to itself, with the bundle's extension.
    "internal/pgliteServer": join(here, "src/internal/pgliteServer.ts")
  },
  outdir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  splitting: false,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
  external: ["uWebSockets.js", "argon2", "pg-native", "@electric-sql/pglite", "@electric-sql/pglite-socket", "ws", "nodemailer", "firebase-admin"],
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __nexmdmCreateRequire } from 'node:module'; const require = __nexmdmCreateRequire(import.meta.url);" }
})
console.log(`engine bundled into ${outdir}`)
