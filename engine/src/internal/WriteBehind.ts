/**
 * A bounded, sharded write-behind queue: rows are offered synchronously (never blocking the
 * caller), each shard's rows are written in batches of up to `maxBatch`, at most `maxDelay`
 * after the first row arrived, one batch in flight per shard. A row's shard is fixed by its key,
 * so rows with the same key are written in offer order. A failed write is retried with backoff
 * until it succeeds: rows are only dropped from memory after their batch committed.
 *
 * How a shard holds its rows is pluggable (`store`). The default keeps the row objects. At 10,000
 * heartbeats/s those rows lived across two young-generation GCs (queued, then in flight), were
 * promoted, and the old generation's growth triggered a full GC every 2-3 s; a columnar store
 * (TelemetryWriter's) copies each row into preallocated arrays instead, so no row outlives `offer`.
 */
import { Duration, Effect, Fiber, Schedule } from "effect"

/** A shard's queue of rows, oldest first. */
export interface ShardStore<Row, Batch> {
  readonly push: (row: Row) => void
  readonly size: () => number
  /** Removes and returns the oldest rows (at most `max`, at least one) as a batch. */
  readonly take: (max: number) => Batch
  readonly batchSize: (batch: Batch) => number
  /** The batch committed: its storage may be reused. */
  readonly release: (batch: Batch) => void
}

/** The default store: the row objects themselves. */
export const arrayStore = <Row>(): ShardStore<Row, ReadonlyArray<Row>> => {
  const pending: Array<Row> = []
  return {
    push: (row) => void pending.push(row),
    size: () => pending.length,
    take: (max) => pending.splice(0, max),
    batchSize: (batch) => batch.length,
    release: () => {}
  }
}

export interface WriteBehindOptions<Row, Batch = ReadonlyArray<Row>> {
  readonly name: string
  readonly shards: number
  readonly shardOf: (row: Row) => number
  readonly maxBatch: number
  readonly maxDelay: Duration.Duration
  /** Rows held in memory (all shards) beyond which `offer` refuses. */
  readonly capacity: number
  /** A new shard's store (default: `arrayStore`). */
  readonly store?: () => ShardStore<Row, Batch>
  readonly write: (batch: Batch) => Effect.Effect<void, unknown>
  /** Runs after a batch committed, in commit order per shard (before its storage is released). */
  readonly onWritten: (batch: Batch) => void
  readonly onBatch?: (info: { readonly rows: number; readonly seconds: number }) => void
  readonly onWriteFailed?: (info: { readonly rows: number; readonly attempt: number; readonly error: unknown }) => void
  /** Longest wait for the final flush when the scope closes. */
  readonly finalFlushTimeout: Duration.Duration
}

export interface WriteBehind<Row> {
  /** Queues a row; false (and nothing queued) when the buffer is full. */
  readonly offer: (row: Row) => boolean
  /** True when `count` more rows fit. */
  readonly hasRoom: (count: number) => boolean
  readonly buffered: () => number
  readonly totals: () => { readonly written: number; readonly failedAttempts: number; readonly batches: number }
  /** Completes when every row offered before the call has been written. */
  readonly flush: Effect.Effect<void>
}

interface Shard<Row, Batch> {
  readonly pending: ShardStore<Row, Batch>
  /** Rows taken for the batch in flight (still counted as buffered until committed). */
  inFlight: number
  /** Sequence numbers: rows offered so far and rows committed so far. */
  offered: number
  committed: number
  wake: Effect.Latch
}

const retryPolicy = Schedule.exponential(Duration.millis(100), 2).pipe(
  Schedule.either(Schedule.spaced(Duration.seconds(5))),
  Schedule.map(() => undefined)
)

/** Starts the shard fibers in the current scope; on scope close they finish what is queued. */
export const make = <Row, Batch = ReadonlyArray<Row>>(options: WriteBehindOptions<Row, Batch>) =>
  Effect.gen(function* () {
    const newStore = options.store ?? (arrayStore as unknown as () => ShardStore<Row, Batch>)
    const shards: Array<Shard<Row, Batch>> = []
    for (let i = 0; i < options.shards; i++) {
      shards.push({ pending: newStore(), inFlight: 0, offered: 0, committed: 0, wake: yield* Effect.makeLatch(false) })
    }
    let buffered = 0
    let written = 0
    let failedAttempts = 0
    let batches = 0

    const writeWithRetry = (batch: Batch, rows: number) => {
      let attempt = 0
      return Effect.suspend(() => {
        attempt++
        return options.write(batch)
      }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            failedAttempts++
            options.onWriteFailed?.({ rows, attempt, error })
          })
        ),
        Effect.retry(retryPolicy),
        Effect.orDie
      )
    }

    const runShard = (shard: Shard<Row, Batch>) =>
      Effect.gen(function* () {
        while (true) {
          if (shard.pending.size() === 0) {
            shard.wake.unsafeClose()
            yield* shard.wake.await
          }
          if (shard.pending.size() < options.maxBatch) {
            // Give the batch time to fill; a full batch wakes us early.
            shard.wake.unsafeClose()
            yield* Effect.raceFirst(Effect.sleep(options.maxDelay), shard.wake.await)
          }
          if (shard.pending.size() === 0) continue
          const batch = shard.pending.take(options.maxBatch)
          const rows = shard.pending.batchSize(batch)
          shard.inFlight = rows
          const started = performance.now()
          yield* writeWithRetry(batch, rows)
          shard.inFlight = 0
          shard.committed += rows
          buffered -= rows
          written += rows
          batches++
          options.onBatch?.({ rows, seconds: (performance.now() - started) / 1000 })
          options.onWritten(batch)
          shard.pending.release(batch)
        }
      })

    const fibers: Array<Fiber.RuntimeFiber<never>> = []
    for (const shard of shards) {
      // Daemon fibers, stopped by our own finalizer only after the final flush.
      fibers.push(yield* Effect.forkDaemon(runShard(shard)))
    }

    const flushShard = (shard: Shard<Row, Batch>) =>
      Effect.suspend(() => {
        const target = shard.offered
        shard.wake.unsafeOpen()
        return Effect.repeat(
          Effect.sync(() => {
            if (shard.pending.size() > 0) shard.wake.unsafeOpen()
            return shard.committed >= target
          }),
          { until: (done) => done, schedule: Schedule.spaced(Duration.millis(5)) }
        )
      })

    const flush = Effect.forEach(shards, flushShard, { concurrency: "unbounded", discard: true })

    yield* Effect.addFinalizer(() =>
      flush.pipe(
        Effect.timeout(options.finalFlushTimeout),
        Effect.tapError(() =>
          Effect.logError("final flush timed out: rows still buffered are lost").pipe(
            Effect.annotateLogs({ module: options.name, rows: buffered })
          )
        ),
        Effect.ignore,
        Effect.zipRight(Effect.forEach(fibers, Fiber.interrupt, { discard: true })),
        Effect.withSpan(`${options.name}.finalFlush`)
      )
    )

    const writeBehind: WriteBehind<Row> = {
      offer: (row) => {
        if (buffered >= options.capacity) return false
        const shard = shards[options.shardOf(row) % shards.length]!
        shard.pending.push(row)
        shard.offered++
        buffered++
        const size = shard.pending.size()
        if (size === 1 || size >= options.maxBatch) shard.wake.unsafeOpen()
        return true
      },
      hasRoom: (count) => buffered + count <= options.capacity,
      buffered: () => buffered,
      totals: () => ({ written, failedAttempts, batches }),
      flush
    }
    return writeBehind
  })

/** A stable shard for a string key (FNV-1a). */
export const shardOfKey = (key: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}
