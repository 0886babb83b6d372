/**
 * Prometheus text exposition format 0.0.4: renders Effect's global metric registry, the
 * scrape-time collectors of Metrics.ts and the process metrics.
 *
 * Effect counters declared without `incremental: true` may decrease, so they are exposed as gauges.
 * Families are sorted by name and series by labels, so the output is stable. A family's lines
 * are contiguous even when its series come from several sources (an Effect metric and collectors
 * of the same name). Series that cannot be rendered (type clash, duplicate labels, a collector
 * that threw) are not dropped silently: they are reported in `# nexmdm:` comment lines.
 */
import { Effect, Metric, MetricKeyType, MetricState, Option } from "effect"
import type { MetricPair, Scope } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { registerCollectorScoped, registeredCollectors } from "../Metrics.js"
import type { Collector } from "../Metrics.js"

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

export type FamilyType = "counter" | "gauge" | "histogram" | "summary" | "untyped"

export type LabelPairs = ReadonlyArray<readonly [name: string, value: string]>

/** One exposition line: `<family name><suffix>{labels} value`. */
export interface Sample {
  readonly suffix: "" | "_bucket" | "_sum" | "_count"
  readonly labels: LabelPairs
  readonly value: number | bigint
}

/** The lines of one labelled child: one for counters and gauges, several for histograms. */
export interface Series {
  readonly labels: LabelPairs
  readonly samples: ReadonlyArray<Sample>
}

export interface Family {
  readonly name: string
  readonly help: string | undefined
  readonly type: FamilyType
  readonly series: ReadonlyArray<Series>
}

// ---------------------------------------------------------------------------------------------
// Escaping and formatting

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const sanitize = (valid: RegExp, invalid: RegExp) => (name: string): string => {
  if (valid.test(name)) return name
  const replaced = name.replace(invalid, "_")
  return replaced === "" || /^[0-9]/.test(replaced) ? `_${replaced}` : replaced
}

/** Replaces characters a metric name may not contain with `_` (and prefixes one to a leading digit). */
export const sanitizeMetricName = sanitize(METRIC_NAME, /[^a-zA-Z0-9_:]/g)

export const sanitizeLabelName = sanitize(LABEL_NAME, /[^a-zA-Z0-9_]/g)

/** Label values escape backslash, double quote and line feed. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

/** HELP text escapes backslash and line feed. */
export const escapeHelp = (help: string): string => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const formatLabels = (labels: LabelPairs): string =>
  labels.length === 0 ? "" : `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`

/** Identity of a series within its family: its labels, order-independent. */
const signature = (labels: LabelPairs): string =>
  labels
    .map(([name, value]) => `${name}\u0000${value}`)
    .sort()
    .join("\u0001")

// ---------------------------------------------------------------------------------------------
// Sources

const histogramSamples = (
  labels: LabelPairs,
  buckets: ReadonlyArray<readonly [number, number]>,
  count: number,
  sum: number
): ReadonlyArray<Sample> => {
  const samples: Array<Sample> = []
  for (const [boundary, cumulative] of buckets) {
    // Effect's boundaries end with +Inf; the +Inf bucket is always written from `count` below.
    if (boundary === Number.POSITIVE_INFINITY) continue
    samples.push({ suffix: "_bucket", labels: [...labels, ["le", formatValue(boundary)]], value: cumulative })
  }
  samples.push({ suffix: "_bucket", labels: [...labels, ["le", "+Inf"]], value: count })
  samples.push({ suffix: "_sum", labels, value: sum })
  samples.push({ suffix: "_count", labels, value: count })
  return samples
}

/** Families for a snapshot of Effect metrics (`Metric.unsafeSnapshot()`), one per metric key. */
export const familiesFromSnapshot = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): ReadonlyArray<Family> => {
  const families: Array<Family> = []
  for (const { metricKey: key, metricState: state } of pairs) {
    const name = sanitizeMetricName(key.name)
    const help = Option.getOrUndefined(key.description)
    const labels: LabelPairs = key.tags.map((tag) => [sanitizeLabelName(tag.key), tag.value] as const)
    const single = (type: FamilyType, value: number | bigint): Family => ({
      name,
      help,
      type,
      series: [{ labels, samples: [{ suffix: "", labels, value }] }]
    })
    if (MetricState.isCounterState(state)) {
      // Only an incremental counter is monotonic; one that may go down (effect_fiber_active) is a gauge.
      const incremental = MetricKeyType.isCounterKey(key.keyType) && key.keyType.incremental
      families.push(single(incremental ? "counter" : "gauge", state.count))
    } else if (MetricState.isGaugeState(state)) {
      families.push(single("gauge", state.value))
    } else if (MetricState.isHistogramState(state)) {
      families.push({
        name,
        help,
        type: "histogram",
        series: [{ labels, samples: histogramSamples(labels, state.buckets, state.count, state.sum) }]
      })
    } else if (MetricState.isSummaryState(state)) {
      const samples: Array<Sample> = state.quantiles.map(([quantile, value]) => ({
        suffix: "",
        labels: [...labels, ["quantile", formatValue(quantile)]],
        value: Option.getOrElse(value, () => Number.NaN)
      }))
      samples.push({ suffix: "_sum", labels, value: state.sum }, { suffix: "_count", labels, value: state.count })
      families.push({ name, help, type: "summary", series: [{ labels, samples }] })
    } else if (MetricState.isFrequencyState(state)) {
      // A frequency counts occurrences per word: one counter child per word.
      const series: Array<Series> = []
      for (const [word, count] of state.occurrences) {
        const wordLabels: LabelPairs = [...labels, ["value", word]]
        series.push({ labels: wordLabels, samples: [{ suffix: "", labels: wordLabels, value: count }] })
      }
      families.push({ name, help, type: "counter", series })
    }
  }
  return families
}

/** Families read from scrape-time collectors; a collector that throws becomes a comment. */
export const familiesFromCollectors = (
  collectors: ReadonlyArray<Collector>
): { readonly families: ReadonlyArray<Family>; readonly problems: ReadonlyArray<string> } => {
  const families: Array<Family> = []
  const problems: Array<string> = []
  for (const collector of collectors) {
    const name = sanitizeMetricName(collector.name)
    let collected
    try {
      collected = collector.collect()
    } catch (error) {
      problems.push(`collector ${name} failed: ${error instanceof Error ? error.message : String(error)}`)
      continue
    }
    const series = collected.map(({ labels, value }): Series => {
      const pairs: LabelPairs = Object.entries(labels).map(([label, v]) => [sanitizeLabelName(label), v] as const)
      return { labels: pairs, samples: [{ suffix: "", labels: pairs, value }] }
    })
    families.push({ name, help: collector.help, type: collector.type, series })
  }
  return { families, problems }
}

// ---------------------------------------------------------------------------------------------
// Rendering

interface MergedFamily {
  help: string | undefined
  readonly type: FamilyType
  readonly series: Map<string, Series>
}

/**
 * Renders families (merging those of the same name) in the text format 0.0.4. `problems` are
 * appended as comments.
 */
export const render = (families: ReadonlyArray<Family>, problems: ReadonlyArray<string> = []): string => {
  const merged = new Map<string, MergedFamily>()
  const notes = [...problems]
  for (const family of families) {
    let target = merged.get(family.name)
    if (target === undefined) {
      target = { help: family.help, type: family.type, series: new Map() }
      merged.set(family.name, target)
    } else if (target.type !== family.type) {
      notes.push(`skipped ${family.type} ${family.name}: already declared as ${target.type}`)
      continue
    }
    if (target.help === undefined || target.help === "") target.help = family.help
    for (const series of family.series) {
      const key = signature(series.labels)
      if (target.series.has(key)) {
        notes.push(`skipped duplicate series ${family.name}${formatLabels(series.labels)}`)
        continue
      }
      target.series.set(key, series)
    }
  }

  const lines: Array<string> = []
  for (const name of [...merged.keys()].sort()) {
    const family = merged.get(name)!
    if (family.help !== undefined && family.help !== "") lines.push(`# HELP ${name} ${escapeHelp(family.help)}`)
    lines.push(`# TYPE ${name} ${family.type}`)
    for (const key of [...family.series.keys()].sort()) {
      for (const sample of family.series.get(key)!.samples) {
        lines.push(`${name}${sample.suffix}${formatLabels(sample.labels)} ${formatValue(sample.value)}`)
      }
    }
  }
  for (const note of notes) lines.push(`# nexmdm: ${note.replace(/\n/g, " ")}`)
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`
}

/** The whole exposition: every Effect metric of the global registry and every registered collector. */
export const scrape = (): string => {
  const fromCollectors = familiesFromCollectors(registeredCollectors())
  return render([...familiesFromSnapshot(Metric.unsafeSnapshot()), ...fromCollectors.families], fromCollectors.problems)
}

// ---------------------------------------------------------------------------------------------
// Process metrics

const EVENT_LOOP_RESOLUTION_MS = 10

const readOpenFds = (): number | undefined => {
  try {
    // The listing itself holds one descriptor open while it runs.
    return readdirSync("/proc/self/fd").length - 1
  } catch {
    return undefined
  }
}

const readMaxFds = (): number | undefined => {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"))
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0]
    const value = soft === undefined ? Number.NaN : Number(soft)
    return Number.isFinite(value) ? value : undefined
  } catch {
    return undefined
  }
}

const one = (value: number) => [{ labels: {}, value }]

/**
 * Registers the process metrics as collectors for the lifetime of the scope, with the event-loop
 * delay monitor they read. Process metrics: resident memory, CPU seconds, open and maximum file
 * descriptors (when /proc is readable), start time, heap used, event-loop lag.
 */
export const processMetricsScoped: Effect.Effect<void, never, Scope.Scope> = Effect.gen(function* () {
  const delay = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )
  const startTime = Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000

  yield* registerCollectorScoped("process_resident_memory_bytes", "Resident memory size in bytes", "gauge", () =>
    one(process.memoryUsage.rss())
  )
  yield* registerCollectorScoped("process_cpu_seconds_total", "User and system CPU time spent in seconds", "counter", () => {
    const usage = process.cpuUsage()
    return one((usage.user + usage.system) / 1e6)
  })
  yield* registerCollectorScoped("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds", "gauge", () =>
    one(startTime)
  )
  if (readOpenFds() !== undefined) {
    yield* registerCollectorScoped("process_open_fds", "Open file descriptors", "gauge", () => {
      const fds = readOpenFds()
      return fds === undefined ? [] : one(fds)
    })
  }
  const maxFds = readMaxFds()
  if (maxFds !== undefined) {
    yield* registerCollectorScoped("process_max_fds", "Maximum number of open file descriptors", "gauge", () => one(maxFds))
  }
  yield* registerCollectorScoped("nodejs_heap_used_bytes", "V8 heap in use in bytes", "gauge", () =>
    one(process.memoryUsage().heapUsed)
  )
  // Where resident memory goes besides live objects: heap the V8 GC keeps committed, and native
  // memory held by JS objects (Buffers, ArrayBuffers).
  yield* registerCollectorScoped("nodejs_heap_total_bytes", "V8 heap committed in bytes", "gauge", () =>
    one(process.memoryUsage().heapTotal)
  )
  yield* registerCollectorScoped("nodejs_external_memory_bytes", "Native memory held by V8 objects in bytes", "gauge", () =>
    one(process.memoryUsage().external)
  )
  yield* registerCollectorScoped(
    "nodejs_eventloop_lag_seconds",
    "Event-loop lag, 99th percentile since the previous scrape (seconds)",
    "gauge",
    () => {
      // The monitor records the whole timer interval: the lag is what exceeds its resolution.
      const p99 = delay.count === 0 ? 0 : Math.max(0, delay.percentile(99) / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1000
      delay.reset()
      return one(p99)
    }
  )
})
