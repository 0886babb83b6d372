import { describe, expect, it } from "vitest"
import { LatencyHistogram } from "../src/Stats.js"
import { Timeline } from "../src/Timeline.js"

const snapshotOf = (...values: Array<number>) => {
  const histogram = new LatencyHistogram()
  for (const v of values) histogram.record(v)
  return histogram.snapshot()
}

describe("Timeline", () => {
  it("turns cumulative per-worker ack counts into acks per second", () => {
    const timeline = new Timeline(1000)
    // Two workers, ticking once a second with cumulative counters.
    timeline.record(1500, 0, [], 10, 5)
    timeline.record(1600, 1, [], 20, 5)
    timeline.record(2500, 0, [], 25, 5)
    timeline.record(2600, 1, [], 40, 4)
    const series = timeline.series()
    expect(series.map((p) => p.hb_per_s)).toEqual([30, 35])
    expect(series.map((p) => p.online)).toEqual([10, 9])
  })

  it("keeps a second without ticks in the series, with no latency", () => {
    const timeline = new Timeline(0)
    timeline.record(200, 0, [snapshotOf(1, 2, 3)], 3, 1)
    timeline.record(2200, 0, [snapshotOf(4)], 4, 1)
    const series = timeline.series()
    expect(series).toHaveLength(3)
    expect(series[1]).toMatchObject({ t: 1, hb_per_s: 0, p95_ms: null, online: 1 })
    expect(series[2]!.hb_per_s).toBe(1)
  })

  it("files each tick's latencies under the phase current when it arrived", () => {
    const timeline = new Timeline(0, "steady")
    timeline.record(500, 0, [snapshotOf(1, 1, 1)], 3, 3)
    timeline.setPhase("outage", 1000, "PostgreSQL stopped")
    timeline.record(1500, 0, [snapshotOf(100, 200)], 5, 3)
    timeline.setPhase("after", 2000)
    timeline.record(2500, 0, [snapshotOf(2)], 6, 3)
    expect(timeline.phaseLatency("steady").count).toBe(3)
    expect(timeline.phaseLatency("outage").percentile(95)).toBeCloseTo(200, -1)
    expect(timeline.phaseLatency("after").max).toBe(2)
    expect(timeline.phaseLatency("never").count).toBe(0)
    expect(timeline.events).toEqual([{ t: 1, label: "PostgreSQL stopped" }, { t: 2, label: "after" }])
  })
})
