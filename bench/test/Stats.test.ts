import { describe, expect, it } from "vitest"
import { BUCKETS, bucketOf, bucketValue, exactPercentile, LatencyHistogram, MIN_MS } from "../src/Stats.js"

/** Deterministic pseudo-random numbers (mulberry32), so failures are reproducible. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sortedCopy = (values: ReadonlyArray<number>) => Float64Array.from(values).sort()

describe("exactPercentile (nearest rank)", () => {
  it("picks the smallest value with at least p % of samples at or below it", () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    expect(exactPercentile(sorted, 50)).toBe(5)
    expect(exactPercentile(sorted, 51)).toBe(6)
    expect(exactPercentile(sorted, 95)).toBe(10)
    expect(exactPercentile(sorted, 10)).toBe(1)
    expect(exactPercentile(sorted, 0)).toBe(1)
    expect(exactPercentile(sorted, 100)).toBe(10)
  })

  it("is NaN for no samples", () => {
    expect(exactPercentile([], 50)).toBeNaN()
  })
})

describe("LatencyHistogram", () => {
  it("keeps every percentile within 0.6 % of the exact value on a long-tailed sample", () => {
    const next = random(42)
    const samples: Array<number> = []
    // Log-normal-ish ack latencies: mostly 0.2-2 ms with a tail to ~200 ms.
    for (let i = 0; i < 100_000; i++) samples.push(0.3 * Math.exp(1.2 * -Math.log(next() + 1e-12) * (next() < 0.5 ? 1 : 0.4)))
    const histogram = new LatencyHistogram()
    for (const s of samples) histogram.record(s)
    const sorted = sortedCopy(samples)
    for (const p of [1, 10, 50, 90, 95, 99, 99.9]) {
      const exact = exactPercentile(sorted, p)
      expect(Math.abs(histogram.percentile(p) - exact) / exact, `p${p}`).toBeLessThan(0.006)
    }
    expect(histogram.percentile(100)).toBe(sorted[sorted.length - 1])
    expect(histogram.percentile(0)).toBe(sorted[0])
    expect(histogram.count).toBe(samples.length)
  })

  it("tells 0.5 ms from 1 ms, and 0.50 ms from 0.52 ms", () => {
    const half = new LatencyHistogram()
    const one = new LatencyHistogram()
    for (let i = 0; i < 1000; i++) {
      half.record(0.5)
      one.record(1)
    }
    expect(half.percentile(95)).toBeCloseTo(0.5, 2)
    expect(one.percentile(95)).toBeCloseTo(1, 2)
    expect(bucketOf(0.5)).not.toBe(bucketOf(0.52))
  })

  it("puts a value in the bucket whose representative is within half a percent of it", () => {
    for (const ms of [0.0011, 0.01, 0.25, 0.5, 0.999, 1, 3.7, 42, 999, 59_999]) {
      const value = bucketValue(bucketOf(ms))
      expect(Math.abs(value - ms) / ms, String(ms)).toBeLessThan(0.0051)
    }
  })

  it("clamps zero, negative, NaN and huge values into the end buckets without losing min and max", () => {
    const histogram = new LatencyHistogram()
    histogram.record(0)
    histogram.record(-1)
    histogram.record(1e9)
    expect(bucketOf(0)).toBe(0)
    expect(bucketOf(Number.NaN)).toBe(0)
    expect(bucketOf(1e9)).toBe(BUCKETS - 1)
    expect(histogram.min).toBe(-1)
    expect(histogram.max).toBe(1e9)
    expect(histogram.percentile(100)).toBe(1e9)
    expect(histogram.percentile(50)).toBeLessThanOrEqual(MIN_MS)
  })

  it("is NaN when empty", () => {
    const histogram = new LatencyHistogram()
    expect(histogram.percentile(50)).toBeNaN()
    expect(histogram.mean()).toBeNaN()
  })

  it("merging snapshots of parts gives the same percentiles as recording everything in one", () => {
    const next = random(7)
    const whole = new LatencyHistogram()
    const parts = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()]
    for (let i = 0; i < 30_000; i++) {
      const ms = next() * 10
      whole.record(ms)
      parts[i % 3]!.record(ms)
    }
    const merged = new LatencyHistogram()
    // Through JSON, as between processes.
    for (const part of parts) merged.merge(JSON.parse(JSON.stringify(part.snapshot())))
    for (const p of [0, 50, 95, 99, 100]) expect(merged.percentile(p)).toBe(whole.percentile(p))
    expect(merged.count).toBe(whole.count)
    expect(merged.sum).toBeCloseTo(whole.sum, 6)
  })

  it("takeSnapshot returns the delta since the previous call", () => {
    const histogram = new LatencyHistogram()
    histogram.record(1)
    histogram.record(2)
    expect(histogram.takeSnapshot().count).toBe(2)
    histogram.record(3)
    const delta = histogram.takeSnapshot()
    expect(delta.count).toBe(1)
    expect(delta.min).toBe(3)
    expect(LatencyHistogram.fromSnapshot(delta).percentile(50)).toBeCloseTo(3, 1)
  })

  it("merging an empty snapshot leaves min and max alone", () => {
    const histogram = new LatencyHistogram()
    histogram.record(5)
    histogram.merge(new LatencyHistogram().snapshot())
    expect(histogram.min).toBe(5)
    expect(histogram.max).toBe(5)
  })
})
