import { defineConfig } from "@solidjs/start/config"
import tailwindcss from "@tailwindcss/vite"

// A client-rendered SPA: `vinxi build` writes static files to .output/public, which the engine's
// admin plane serves at / (same origin as /api and /api/live). `vinxi dev` proxies /api to an
// engine on NEXMDM_ADMIN_URL (default http://127.0.0.1:8081).
const engine = process.env["NEXMDM_ADMIN_URL"] ?? "http://127.0.0.1:8081"

export default defineConfig({
  ssr: false,
  server: {
    preset: "static",
    devProxy: {
      "/api/live": { target: engine.replace(/^http/, "ws"), ws: true },
      "/api": { target: `${engine}/api` }
    }
  },
  vite: {
    plugins: [tailwindcss()],
    // Pre-bundled up front so the first `vinxi dev` page load does not reload midway.
    optimizeDeps: { include: ["effect", "@effect/rpc", "@effect/platform", "@tanstack/solid-virtual", "uplot"] },
    build: { chunkSizeWarningLimit: 1500 }
  }
})
