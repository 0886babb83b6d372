import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["protocol/test/**/*.test.ts", "engine/test/**/*.test.ts", "bench/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
