/**
 * Latency recording for the bench: a log-linear histogram that is cheap to record into, small to
 * send between processes and mergeable, with percentiles accurate to about half a percent.
 *
 * Why not raw samples: 10,000 devices at 1 heartbeat/s for 10 minutes is 6 million samples spread
 * over several worker processes; shipping and sorting them is wasteful when the question is
 * "p99 is 0.7 ms or 1.4 ms". Buckets grow by 1 % from 1 µs, so neighbouring buckets at 0.5 ms are
 * 5 µs apart and the reported value is within ~0.5 % of the true sample.
 */

/** Lower bound of bucket 1; everything at or below it lands in bucket 0. */
export const MIN_MS = 0.001
/** Each bucket is 1 % wider than the previous one. */
export const GROWTH = 1.01
/** 2,000 buckets cover 1 µs … ~440 s; slower samples land in the last bucket (max stays exact). */
export const BUCKETS = 2000

const LOG_GROWTH = Math.log(GROWTH)

/** Bucket index of a latency in milliseconds. */
export const bucketOf = (ms: number): number => {
  if (!(ms > MIN_MS)) return 0 // also catches NaN and negatives
  const index = 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH)
  return index >= BUCKETS ? BUCKETS - 1 : index
}

/** Representative value of a bucket: the geometric middle of its bounds (relative error <= 0.5 %). */
export const bucketValue = (index: number): number =>
  index === 0 ? MIN_MS : MIN_MS * Math.pow(GROWTH, index - 0.5)

/** What a worker sends to the parent: only non-empty buckets, as [index, count] pairs. */
export interface HistogramSnapshot {
  readonly buckets: ReadonlyArray<readonly [number, number]>
  readonly count: number
  readonly sum: number
  readonly min: number
  readonly max: number
}

export class LatencyHistogram {
  private counts = new Float64Array(BUCKETS)
  count = 0
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = 0

  record(ms: number): void {
    const index = bucketOf(ms)
    this.counts[index] = this.counts[index]! + 1
    this.count++
    this.sum += ms
    if (ms < this.min) this.min = ms
    if (ms > this.max) this.max = ms
  }

  /**
   * Nearest-rank percentile (p in 0..100): the smallest recorded value such that at least p % of
   * the samples are <= it, reported as its bucket's representative value clamped to [min, max].
   * p = 0 gives the exact minimum and p = 100 the exact maximum. NaN when empty.
   */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN
    if (p <= 0) return this.min
    if (p >= 100) return this.max
    const rank = Math.max(1, Math.ceil((p / 100) * this.count))
    let seen = 0
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.counts[index]!
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, bucketValue(index)))
    }
    return this.max
  }

  mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count
  }

  merge(other: LatencyHistogram | HistogramSnapshot): void {
    const snapshot = other instanceof LatencyHistogram ? other.snapshot() : other
    for (const [index, n] of snapshot.buckets) this.counts[index] = this.counts[index]! + n
    this.count += snapshot.count
    this.sum += snapshot.sum
    if (snapshot.count > 0) {
      if (snapshot.min < this.min) this.min = snapshot.min
      if (snapshot.max > this.max) this.max = snapshot.max
    }
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<readonly [number, number]> = []
    for (let index = 0; index < BUCKETS; index++) {
      const n = this.counts[index]!
      if (n > 0) buckets.push([index, n])
    }
    return { buckets, count: this.count, sum: this.sum, min: this.min, max: this.max }
  }

  /** Returns what was recorded since the last call and starts afresh (for periodic deltas). */
  takeSnapshot(): HistogramSnapshot {
    const snapshot = this.snapshot()
    this.reset()
    return snapshot
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.sum = 0
    this.min = Number.POSITIVE_INFINITY
    this.max = 0
  }

  static fromSnapshot(snapshot: HistogramSnapshot): LatencyHistogram {
    const histogram = new LatencyHistogram()
    histogram.merge(snapshot)
    return histogram
  }
}

/** Exact nearest-rank percentile of an ascending array (the reference the histogram is tested against). */
export const exactPercentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  if (p <= 0) return sorted[0]!
  if (p >= 100) return sorted[sorted.length - 1]!
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** Rounds for reports: 3 decimals below 10, 2 below 100, else 1 (NaN becomes null in JSON). */
export const round = (value: number): number => {
  if (!Number.isFinite(value)) return Number.NaN
  const digits = Math.abs(value) < 10 ? 3 : Math.abs(value) < 100 ? 2 : 1
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}
