import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { compareRuns, findPreviousRun, latencySpec, ratio, renderChart, renderMarkdown, runName, writeReport } from "../src/Report.js"
import { checkResult } from "../src/Smoke.js"
import type { SeriesPoint } from "../src/Timeline.js"

const series: Array<SeriesPoint> = [0, 1, 2, 3].map((t) => ({ t, hb_per_s: 100 + t, p50_ms: 1, p95_ms: 2 + t, p99_ms: 5, online: 100 }))

const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-report-test-"))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("compareRuns", () => {
  it("gives the change of each key figure both runs have, and says whether it is better", () => {
    const deltas = compareRuns({ ack_p95_ms: 4, hb_per_s: 1000, missing: 0, recovery_s: null }, { ack_p95_ms: 5, hb_per_s: 1200, missing: 0, recovery_s: 3 })
    expect(deltas).toEqual([
      { figure: "ack_p95_ms", previous: 4, current: 5, change: 1, changePct: 25, better: false },
      { figure: "hb_per_s", previous: 1000, current: 1200, change: 200, changePct: 20, better: true },
      { figure: "missing", previous: 0, current: 0, change: 0, changePct: null, better: null }
    ])
  })
})

describe("findPreviousRun", () => {
  it("finds the latest earlier run of the same scenario and target, not another scenario's", () => {
    const dir = tempDir()
    const write = (name: string, result: Record<string, unknown>) => writeFileSync(join(dir, `${name}.json`), JSON.stringify({ result, series: [] }))
    write(runName("steady", new Date("2026-01-01T10:00:00Z")), { target: "engine", ack_p95_ms: 1 })
    write(runName("steady", new Date("2026-01-02T10:00:00Z")), { target: "engine", ack_p95_ms: 2 })
    write(runName("steady", new Date("2026-01-03T10:00:00Z")), { target: "naive", ack_p95_ms: 30 })
    write(runName("max", new Date("2026-01-04T10:00:00Z")), { target: "engine", ack_p95_ms: 9 })
    const current = runName("steady", new Date("2026-01-05T10:00:00Z"))
    write(current, { target: "engine", ack_p95_ms: 3 })
    const previous = findPreviousRun(dir, "steady", current, (r) => r["target"] === "engine")
    expect(previous?.result["ack_p95_ms"]).toBe(2)
    expect(findPreviousRun(dir, "steady", current, (r) => r["target"] === "naive")?.result["ack_p95_ms"]).toBe(30)
    expect(findPreviousRun(dir, "crash", null, () => true)).toBeNull()
    expect(findPreviousRun(join(dir, "absent"), "steady", null, () => true)).toBeNull()
  })
})

describe("renderMarkdown", () => {
  it("shows the figures, the ratios to the references and the deltas against the previous run", () => {
    const markdown = renderMarkdown({
      name: "steady-x",
      scenario: "steady",
      result: { ok: true, target: "engine", devices: 100, ack_p95_ms: 5, hb_per_s: 100, problems: ["machine busy"] },
      series,
      events: [{ t: 2, label: "kill -9" }],
      previous: { file: "steady-old.json", result: { devices: 100, ack_p95_ms: 4, hb_per_s: 100 } },
      ratios: [ratio("ack p95 (ms) vs naive", 5, 50, "run now")],
      scenarioFigures: []
    })
    expect(markdown).toContain("| ack_p95_ms | 5 |")
    expect(markdown).toContain("| ack p95 (ms) vs naive | 5 | 50 | 0.10x | run now |")
    expect(markdown).toContain("| ack_p95_ms | 4 | 5 | +1 (+25.0 %) | worse |")
    expect(markdown).toContain("![ack latency percentiles per second](steady-x-latency.svg)")
    expect(markdown).toContain("kill -9 at 2 s")
    expect(markdown).toContain("- machine busy")
  })
})

describe("charts", () => {
  it("renders the latency chart as SVG with vega-lite, one line per percentile", async () => {
    const svg = await renderChart(latencySpec(series, [{ t: 1, label: "PostgreSQL stopped" }]))
    expect(svg.startsWith("<svg")).toBe(true)
    for (const label of ["p50", "p95", "p99", "PostgreSQL stopped"]) expect(svg).toContain(label)
  })

  it("writes the JSON, both charts and the Markdown of a run", async () => {
    const dir = tempDir()
    const written = await writeReport(
      dir,
      { name: "max-x", scenario: "max", result: { ok: true, hb_per_s: 5000 }, series, events: [], previous: null, ratios: [], scenarioFigures: [] },
      { result: { ok: true, hb_per_s: 5000 }, series }
    )
    expect(written.map((f) => f.slice(dir.length + 1)).sort()).toEqual(["max-x-latency.svg", "max-x-throughput.svg", "max-x.json", "max-x.md"])
    expect(JSON.parse(readFileSync(join(dir, "max-x.json"), "utf8")).series).toHaveLength(4)
  })
})

describe("smoke result check", () => {
  it("accepts a complete, lossless result and names what is wrong otherwise", () => {
    expect(checkResult({ ok: true, missing: 0, duplicated: 0, recovery_s: 2 }, ["recovery_s"])).toEqual([])
    expect(checkResult({ ok: true, missing: 3, duplicated: 0, recovery_s: null }, ["recovery_s"])).toEqual(["recovery_s is missing", "3 heartbeat(s) missing"])
    expect(checkResult(null, [])).toEqual(["no JSON result line"])
  })
})
