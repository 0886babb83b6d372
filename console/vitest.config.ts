// The console's component and unit tests (jsdom + Solid's compiler). Not part of the root vitest
// config: `npm test` runs this project through scripts/suites/20-console.mjs.
import solid from "vite-plugin-solid"
import { defineConfig } from "vitest/config"

export default defineConfig({
  plugins: [solid()],
  root: import.meta.dirname,
  resolve: { conditions: ["development", "browser"] },
  test: {
    environment: "jsdom",
    include: ["test/unit/**/*.test.{ts,tsx}"],
    testTimeout: 20_000
  }
})
