/**
 * Token buckets for rate limits: per connection (a field in its user data) and per source IP
 * (a map whose idle entries are pruned). Plain synchronous code: it runs inside uWS callbacks.
 */
export interface Bucket {
  tokens: number
  updatedAt: number
}

export interface BucketPolicy {
  /** Tokens added per second. */
  readonly ratePerSecond: number
  /** Most tokens a bucket holds (the burst). */
  readonly capacity: number
}

export const newBucket = (policy: BucketPolicy, now: number): Bucket => ({ tokens: policy.capacity, updatedAt: now })

/** Takes one token; returns 0 when allowed, else the milliseconds until one is available. */
export const take = (bucket: Bucket, policy: BucketPolicy, now: number): number => {
  const refill = ((now - bucket.updatedAt) / 1000) * policy.ratePerSecond
  bucket.tokens = Math.min(policy.capacity, bucket.tokens + refill)
  bucket.updatedAt = now
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1
    return 0
  }
  return Math.ceil(((1 - bucket.tokens) / policy.ratePerSecond) * 1000)
}

export class KeyedLimiter {
  private readonly buckets = new Map<string, Bucket>()
  constructor(private readonly policy: BucketPolicy) {}

  /** 0 when allowed, else milliseconds to wait. */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= 100_000) this.prune(now)
      bucket = newBucket(this.policy, now)
      this.buckets.set(key, bucket)
    }
    return take(bucket, this.policy, now)
  }

  /** Like `take` but takes nothing: 0 when a token is there, else milliseconds until one is. */
  peek(key: string, now: number): number {
    const bucket = this.buckets.get(key)
    if (bucket === undefined) return 0
    const tokens = Math.min(this.policy.capacity, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.policy.ratePerSecond)
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.policy.ratePerSecond) * 1000)
  }

  /** True when `key` has no bucket or a full one: nothing taken from it lately. */
  untouched(key: string, now: number): boolean {
    const bucket = this.buckets.get(key)
    return bucket === undefined || bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.policy.ratePerSecond >= this.policy.capacity
  }

  /** Drops buckets that have refilled completely (they hold no state worth keeping). */
  prune(now: number): void {
    const fullAfterMs = (this.policy.capacity / this.policy.ratePerSecond) * 1000
    for (const [key, bucket] of this.buckets) if (now - bucket.updatedAt >= fullAfterMs) this.buckets.delete(key)
  }
}
