import { cleanup, render, screen } from "@solidjs/testing-library"
import { afterEach, describe, expect, it, vi } from "vitest"
import { AgentCostCard, costColumns } from "../../src/components/AgentCostCard"
import type { HeartbeatSeries } from "../../src/lib/model"

// uPlot needs a canvas and ResizeObserver, which jsdom lacks: the chart is a figure with its columns here.
vi.mock("../../src/components/Chart", () => ({
  Chart: (props: { readonly testid?: string; readonly data: ReadonlyArray<ReadonlyArray<number | null>> }) => (
    <figure data-testid={props.testid} data-columns={JSON.stringify(props.data)} />
  )
}))

afterEach(cleanup)

const bucket = (minute: number, cost: Record<string, number>) => ({
  bucketStart: new Date(Date.UTC(2026, 10, 26, 10, minute)).toISOString(),
  samples: 2,
  batteryPct: 50,
  memFreeMb: 1000,
  storageFreeMb: 2000,
  signalDbm: null,
  ...cost
})

const series = (agentCost: HeartbeatSeries["agentCost"], buckets: HeartbeatSeries["buckets"]): HeartbeatSeries => ({
  from: new Date(Date.UTC(2026, 10, 26, 10, 0)).toISOString(),
  to: new Date(Date.UTC(2026, 10, 26, 11, 0)).toISOString(),
  bucketSeconds: 60,
  points: [],
  buckets,
  ...(agentCost === undefined ? {} : { agentCost })
})

describe("AgentCostCard", () => {
  it("shows the interval, the rates and the reconnects, and charts wake-ups and kilobytes per bucket with gaps where none was sent", () => {
    const loaded = series(
      { intervalS: 60, samples: 40, wakeups: 46, txBytes: 61_440, reconnects: 2, hours: 0.75, wakeupsPerHour: 61.33, txBytesPerHour: 81_920 },
      [bucket(0, { intervalS: 60, wakeups: 2, txBytes: 1536 }), bucket(1, {}), bucket(2, { intervalS: 60, wakeups: 1, txBytes: 700 })]
    )
    render(() => <AgentCostCard cost={loaded.agentCost} columns={costColumns(loaded)} rangeLabel="1 hour" />)
    expect(screen.getByTestId("agent-cost-interval").textContent).toBe("60 s")
    expect(screen.getByTestId("agent-cost-wakeups").textContent).toBe("61/h")
    expect(screen.getByTestId("agent-cost-sent").textContent).toBe("80 KB/h")
    expect(screen.getByTestId("agent-cost-reconnects").textContent).toBe("2")
    expect(screen.getByTestId("agent-cost").textContent).toContain("Over the last 1 hour: 40 reports covering 45 min.")
    const [, wakeups] = JSON.parse(screen.getByTestId("chart-wakeups").getAttribute("data-columns")!)
    const [, kilobytes] = JSON.parse(screen.getByTestId("chart-sent").getAttribute("data-columns")!)
    expect(wakeups).toEqual([2, null, 1])
    expect(kilobytes).toEqual([1.5, null, 0.7])
    expect(screen.queryByTestId("agent-cost-none")).toBeNull()
  })

  it("says the agent reports no cost, without figures or charts, for an older agent", () => {
    const loaded = series(undefined, [bucket(0, {}), bucket(1, {})])
    render(() => <AgentCostCard cost={loaded.agentCost} columns={costColumns(loaded)} rangeLabel="1 hour" />)
    expect(screen.getByTestId("agent-cost-none").textContent).toContain("does not report its cost")
    expect(screen.queryByTestId("agent-cost-interval")).toBeNull()
    expect(screen.queryByTestId("chart-wakeups")).toBeNull()
  })

  it("shows the interval of an agent that sent no cost in the range, in minutes when long", () => {
    const loaded = series({ intervalS: 300, samples: 0, wakeups: null, txBytes: null, reconnects: null, hours: 0, wakeupsPerHour: null, txBytesPerHour: null }, [
      bucket(0, { intervalS: 300 })
    ])
    render(() => <AgentCostCard cost={loaded.agentCost} columns={costColumns(loaded)} rangeLabel="6 hours" />)
    expect(screen.getByTestId("agent-cost-interval").textContent).toBe("5 min")
    expect(screen.getByTestId("agent-cost-wakeups").textContent).toBe("—")
    expect(screen.getByTestId("agent-cost").textContent).toContain("No cost reported in the last 6 hours.")
    expect(screen.queryByTestId("chart-wakeups")).toBeNull()
  })
})
