// End-to-end tests: a real engine (admin + device planes) on a fresh PostgreSQL database, the built
// console served by it, and Debian's Chromium driven by playwright-core. Node environment.
import { defineConfig } from "vitest/config"

export default defineConfig({
  root: import.meta.dirname,
  test: {
    environment: "node",
    include: ["test/e2e/**/*.e2e.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false
  }
})
