/**
 * The files a run leaves behind in bench/results/ (or --results-dir):
 *
 *   <scenario>-<stamp>.json      the result line's object plus the per-second series and events
 *   <scenario>-<stamp>.md        a summary: key figures, ratios to the baselines, deltas against the
 *                                previous run of the same scenario and target, the two charts
 *   <scenario>-<stamp>-latency.svg, -throughput.svg   drawn by vega-lite (rendered headless by vega)
 *
 * Everything here but `renderChart` and `writeReport` is pure, so the unit tests cover it.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as vega from "vega"
import * as vegaLite from "vega-lite"
import type { SeriesPoint, TimelineEvent } from "./Timeline.js"

/** Figures compared with the previous run (when both have them), in this order. */
export const KEY_FIGURES = [
  "ack_p50_ms",
  "ack_p95_ms",
  "ack_p99_ms",
  "hb_per_s",
  "missing",
  "duplicated",
  "sim_cpu_pct",
  "engine_cpu_pct",
  "engine_rss_mb",
  "write_lag_ms",
  "recovery_s",
  "recovery_ack_p95_ms",
  "outage_ack_p95_ms",
  "fanout_p95_ms",
  "fanout_all_ms",
  "fanout_ack_p95_ms",
  "subscriber_p95_ms",
  "steady_ratio",
  "persisted_hb_per_s"
] as const

/** Lower is better for every key figure but these. */
const HIGHER_IS_BETTER = new Set(["hb_per_s", "persisted_hb_per_s"])

export interface Delta {
  readonly figure: string
  readonly previous: number
  readonly current: number
  readonly change: number
  /** Relative change in % (null when the previous value is 0). */
  readonly changePct: number | null
  readonly better: boolean | null
}

const numberOf = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null)

/** Key figures present in both runs, with their change. */
export const compareRuns = (previous: Readonly<Record<string, unknown>>, current: Readonly<Record<string, unknown>>): Array<Delta> => {
  const deltas: Array<Delta> = []
  for (const figure of KEY_FIGURES) {
    const before = numberOf(previous[figure])
    const now = numberOf(current[figure])
    if (before === null || now === null) continue
    const change = now - before
    deltas.push({
      figure,
      previous: before,
      current: now,
      change,
      changePct: before === 0 ? null : (change / Math.abs(before)) * 100,
      better: change === 0 ? null : HIGHER_IS_BETTER.has(figure) ? change > 0 : change < 0
    })
  }
  return deltas
}

/** `<scenario>-<stamp>` for a run started at `date` (sortable: names compare like times). */
export const runName = (scenario: string, date: Date): string => `${scenario}-${date.toISOString().replace(/[:.]/g, "-")}`

export interface StoredRun {
  readonly file: string
  readonly result: Record<string, unknown>
}

/**
 * The latest earlier run in `dir` of `scenario` whose result matches `filter` (same target, by
 * default), or null. Files are `<scenario>-<stamp>.json`; a scenario name that prefixes another
 * ("steady" vs "steady-x") is told apart by the stamp's leading digit.
 */
export const findPreviousRun = (
  dir: string,
  scenario: string,
  exceptName: string | null,
  filter: (result: Readonly<Record<string, unknown>>) => boolean
): StoredRun | null => {
  let names: Array<string>
  try {
    names = readdirSync(dir)
  } catch {
    return null
  }
  const pattern = new RegExp(`^${scenario.replace(/[-]/g, "\\-")}-\\d{4}-.*\\.json$`)
  const candidates = names.filter((n) => pattern.test(n) && !n.endsWith(".metrics.json") && n !== `${exceptName}.json`).sort().reverse()
  for (const name of candidates) {
    try {
      const parsed = JSON.parse(readFileSync(join(dir, name), "utf8")) as { result?: Record<string, unknown> } & Record<string, unknown>
      const result = parsed.result ?? parsed
      if (filter(result)) return { file: name, result }
    } catch {
      // a truncated or foreign file: skip it
    }
  }
  return null
}

const fmtNumber = (value: number): string => {
  if (Number.isInteger(value)) return String(value)
  const abs = Math.abs(value)
  if (abs !== 0 && abs < 10) return value.toFixed(abs < 1 ? 3 : 2)
  if (abs < 100) return value.toFixed(1)
  return Math.round(value).toString()
}

const cell = (value: unknown): string =>
  value === null || value === undefined ? "n/a" : typeof value === "number" ? fmtNumber(value) : typeof value === "object" ? JSON.stringify(value) : String(value)

export interface Ratio {
  readonly label: string
  readonly engine: number | null
  readonly reference: number | null
  /** engine / reference (null when either is missing or the reference is 0). */
  readonly ratio: number | null
  readonly source: string
}

export const ratio = (label: string, engine: unknown, reference: unknown, source: string): Ratio => {
  const a = numberOf(engine)
  const b = numberOf(reference)
  return { label, engine: a, reference: b, ratio: a === null || b === null || b === 0 ? null : a / b, source }
}

export interface ReportInput {
  readonly name: string
  readonly scenario: string
  readonly result: Readonly<Record<string, unknown>>
  readonly series: ReadonlyArray<SeriesPoint>
  readonly events: ReadonlyArray<TimelineEvent>
  readonly previous: StoredRun | null
  readonly ratios: ReadonlyArray<Ratio>
  /** Figures of the scenario worth a line of their own (besides the common ones). */
  readonly scenarioFigures: ReadonlyArray<string>
}

/** The Markdown summary (chart files are referenced by name, next to it). */
export const renderMarkdown = (input: ReportInput): string => {
  const r = input.result
  const lines: Array<string> = []
  lines.push(`# ${input.scenario}: ${input.name}`)
  lines.push("")
  lines.push(`${r["ok"] === true ? "**OK**" : "**FAILED**"} · target ${cell(r["target"])} · ${cell(r["devices"])} devices · ${cell(r["duration_s"])} s · ${cell(r["workers"])} worker(s) · pinned ${cell(r["pinned"])}`)
  lines.push("")
  lines.push("| figure | value |")
  lines.push("|---|---|")
  const common = ["sent", "acked", "persisted", "missing", "duplicated", "ack_p50_ms", "ack_p95_ms", "ack_p99_ms", "ack_max_ms", "hb_per_s", "sim_cpu_pct", "engine_cpu_pct", "postgres_cpu_pct", "other_cpu_pct", "engine_rss_mb", "write_lag_ms"]
  for (const key of [...common, ...input.scenarioFigures]) if (key in r) lines.push(`| ${key} | ${cell(r[key])} |`)
  lines.push("")
  if (input.ratios.length > 0) {
    lines.push("## Next to the references")
    lines.push("")
    lines.push("| figure | NexMDM | reference | ratio | reference run |")
    lines.push("|---|---|---|---|---|")
    for (const x of input.ratios) lines.push(`| ${x.label} | ${cell(x.engine)} | ${cell(x.reference)} | ${x.ratio === null ? "n/a" : `${x.ratio.toFixed(2)}x`} | ${x.source} |`)
    lines.push("")
  }
  lines.push("## Against the previous run")
  lines.push("")
  if (input.previous === null) lines.push("No earlier run of this scenario and target in this directory.")
  else {
    const deltas = compareRuns(input.previous.result, r)
    lines.push(`Previous: \`${input.previous.file}\` (${cell(input.previous.result["devices"])} devices, ${cell(input.previous.result["duration_s"])} s).`)
    lines.push("")
    lines.push("| figure | previous | now | change | |")
    lines.push("|---|---|---|---|---|")
    for (const d of deltas) {
      const pct = d.changePct === null ? "" : ` (${d.changePct >= 0 ? "+" : ""}${d.changePct.toFixed(1)} %)`
      lines.push(`| ${d.figure} | ${fmtNumber(d.previous)} | ${fmtNumber(d.current)} | ${d.change >= 0 ? "+" : ""}${fmtNumber(d.change)}${pct} | ${d.better === null ? "=" : d.better ? "better" : "worse"} |`)
    }
  }
  lines.push("")
  lines.push("## Over time")
  lines.push("")
  lines.push(`![ack latency percentiles per second](${input.name}-latency.svg)`)
  lines.push("")
  lines.push(`![acks per second and devices online](${input.name}-throughput.svg)`)
  lines.push("")
  if (input.events.length > 0) {
    lines.push("Events: " + input.events.map((e) => `${e.label} at ${e.t} s`).join(", ") + ".")
    lines.push("")
  }
  const problems = r["problems"]
  if (Array.isArray(problems) && problems.length > 0) {
    lines.push("## Problems")
    lines.push("")
    for (const p of problems) lines.push(`- ${String(p)}`)
    lines.push("")
  }
  return lines.join("\n")
}

/** vega-lite spec of the latency chart: one line per percentile, a rule per event. */
export const latencySpec = (series: ReadonlyArray<SeriesPoint>, events: ReadonlyArray<TimelineEvent>): vegaLite.TopLevelSpec => {
  const values = series.flatMap((p) =>
    (["p50", "p95", "p99"] as const).flatMap((k) => {
      const ms = p[`${k}_ms`]
      return ms === null ? [] : [{ t: p.t, percentile: k, ms }]
    })
  )
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Heartbeat ack latency per second",
    width: 720,
    height: 260,
    layer: [
      {
        data: { values },
        mark: { type: "line", point: false },
        encoding: {
          x: { field: "t", type: "quantitative", title: "seconds into the run" },
          y: { field: "ms", type: "quantitative", title: "ms (log)", scale: { type: "log" } },
          color: { field: "percentile", type: "nominal", title: null }
        }
      },
      ...eventLayers(events)
    ]
  } as unknown as vegaLite.TopLevelSpec
}

/** vega-lite spec of the throughput chart: acks/s and devices online. */
export const throughputSpec = (series: ReadonlyArray<SeriesPoint>, events: ReadonlyArray<TimelineEvent>): vegaLite.TopLevelSpec => {
  const values = series.flatMap((p) => [
    { t: p.t, what: "acks/s", value: p.hb_per_s },
    { t: p.t, what: "devices online", value: p.online }
  ])
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Throughput and devices online",
    width: 720,
    height: 220,
    layer: [
      {
        data: { values },
        mark: { type: "line" },
        encoding: {
          x: { field: "t", type: "quantitative", title: "seconds into the run" },
          y: { field: "value", type: "quantitative", title: null },
          color: { field: "what", type: "nominal", title: null }
        }
      },
      ...eventLayers(events)
    ]
  } as unknown as vegaLite.TopLevelSpec
}

const eventLayers = (events: ReadonlyArray<TimelineEvent>): Array<Record<string, unknown>> =>
  events.length === 0
    ? []
    : [
      {
        data: { values: events.map((e) => ({ ...e })) },
        mark: { type: "rule", strokeDash: [4, 4], color: "#888" },
        encoding: { x: { field: "t", type: "quantitative" } }
      },
      {
        data: { values: events.map((e) => ({ ...e })) },
        mark: { type: "text", align: "left", dx: 3, dy: -4, baseline: "top", color: "#555", fontSize: 10 },
        encoding: { x: { field: "t", type: "quantitative" }, y: { value: 0 }, text: { field: "label" } }
      }
    ]

/** Renders a vega-lite spec to an SVG document, headless (no browser, no canvas). */
export const renderChart = async (spec: vegaLite.TopLevelSpec): Promise<string> => {
  const compiled = vegaLite.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: "none" })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Writes the JSON, the charts and the Markdown; returns the paths written. */
export const writeReport = async (dir: string, input: ReportInput, full: Readonly<Record<string, unknown>>): Promise<Array<string>> => {
  mkdirSync(dir, { recursive: true })
  const written: Array<string> = []
  const write = (name: string, content: string) => {
    const path = join(dir, name)
    writeFileSync(path, content)
    written.push(path)
  }
  write(`${input.name}.json`, `${JSON.stringify(full, null, 1)}\n`)
  write(`${input.name}-latency.svg`, await renderChart(latencySpec(input.series, input.events)))
  write(`${input.name}-throughput.svg`, await renderChart(throughputSpec(input.series, input.events)))
  write(`${input.name}.md`, renderMarkdown(input))
  return written
}
