/**
 * The agent's own cost on the device page (PROTOCOL.md 9.6, "battery budget"): the interval it
 * reports, its wake-ups, bytes sent and reconnects over the chart's range, and wake-ups and
 * kilobytes per bucket. Older agents report none of it: the card says so instead.
 */
import { Show } from "solid-js"
import type { AgentCost, AgentCostFields, HeartbeatSeries } from "../lib/model"
import { Chart } from "./Chart"
import { Card, Stat } from "./ui/Bits"

export interface CostColumns {
  readonly time: Array<number>
  readonly wakeups: Array<number | null>
  readonly kilobytes: Array<number | null>
}

/** Wake-ups and kilobytes per bucket (or point) as uPlot columns; null where the agent sent none. */
export const costColumns = (series: HeartbeatSeries | undefined): CostColumns => {
  const columns: CostColumns = { time: [], wakeups: [], kilobytes: [] }
  if (series === undefined) return columns
  const rows: ReadonlyArray<AgentCostFields & { readonly at: string }> =
    series.bucketSeconds === null ? series.points.map((p) => ({ ...p, at: p.recordedAt })) : series.buckets.map((b) => ({ ...b, at: b.bucketStart }))
  for (const row of rows) {
    columns.time.push(Date.parse(row.at) / 1000)
    columns.wakeups.push(row.wakeups ?? null)
    columns.kilobytes.push(row.txBytes === undefined ? null : Math.round((row.txBytes / 1024) * 10) / 10)
  }
  return columns
}

export const intervalLabel = (seconds: number | null): string =>
  seconds === null ? "not reported" : seconds >= 120 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`

const perHour = (value: number | null, unit: string): string => {
  if (value === null) return "—"
  return `${value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString("en")}${unit}/h`
}

const kilobytesPerHour = (bytes: number | null): string => {
  if (bytes === null) return "—"
  const kb = bytes / 1024
  return kb >= 1024 ? perHour(kb / 1024, " MB") : perHour(kb, " KB")
}

export function AgentCostCard(props: {
  /** The series' summary; undefined when the agent reports no cost. */
  readonly cost: AgentCost | undefined
  readonly columns: CostColumns
  /** The range the figures are over, e.g. "1 hour". */
  readonly rangeLabel: string
  readonly class?: string
}) {
  const hasChart = () => props.columns.wakeups.some((v) => v !== null) || props.columns.kilobytes.some((v) => v !== null)
  return (
    <Card title="Battery budget" {...(props.class === undefined ? {} : { class: props.class })}>
      <div data-testid="agent-cost">
        <Show
          when={props.cost}
          fallback={
            <p class="text-sm text-slate-500 dark:text-slate-400" data-testid="agent-cost-none">
              This agent does not report its cost (an agent older than the battery budget).
            </p>
          }
        >
          {(cost) => (
            <div class="grid gap-4 md:grid-cols-3">
              <div>
                <dl class="grid grid-cols-2 gap-3 text-sm">
                  <Stat label="Heartbeat interval" value={intervalLabel(cost().intervalS)} testid="agent-cost-interval" />
                  <Stat label="Wake-ups" value={perHour(cost().wakeupsPerHour, "")} testid="agent-cost-wakeups" />
                  <Stat label="Sent" value={kilobytesPerHour(cost().txBytesPerHour)} testid="agent-cost-sent" />
                  <Stat label="Reconnects" value={cost().reconnects === null ? "—" : String(cost().reconnects)} testid="agent-cost-reconnects" />
                </dl>
                <p class="mt-2 text-xs text-slate-500 dark:text-slate-400">
                  {cost().samples === 0
                    ? `No cost reported in the last ${props.rangeLabel}.`
                    : `Over the last ${props.rangeLabel}: ${cost().samples} ${cost().samples === 1 ? "report" : "reports"} covering ${cost().hours < 1 ? `${Math.round(cost().hours * 60)} min` : `${cost().hours.toFixed(1)} h`}.`}
                </p>
              </div>
              <Show when={hasChart()}>
                <Chart title="Wake-ups" testid="chart-wakeups" height={120} series={[{ label: "Wake-ups", color: "#0891b2", unit: "" }]} data={[props.columns.time, props.columns.wakeups]} />
                <Chart title="Sent (KB)" testid="chart-sent" height={120} series={[{ label: "Sent", color: "#7c3aed", unit: "" }]} data={[props.columns.time, props.columns.kilobytes]} />
              </Show>
            </div>
          )}
        </Show>
      </div>
    </Card>
  )
}
