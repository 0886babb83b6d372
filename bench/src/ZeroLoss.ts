/**
 * The zero-loss check: every heartbeat the engine acked must be in PostgreSQL exactly once.
 *
 * Workers record the acked seqs of each device as ranges (normally one: 1..k; BACKPRESSURE or a
 * reconnect can split it). The database side is computed in SQL with the ranges passed as arrays,
 * so the check costs two aggregate queries however many heartbeats were sent.
 */
import pg from "pg"

/** A set of positive integers stored as sorted disjoint ranges; O(1) for in-order inserts. */
export class SeqSet {
  /** Flat [lo, hi, lo, hi, ...], ascending, non-overlapping, non-adjacent. */
  private readonly ranges: Array<number> = []
  size = 0

  add(seq: number): boolean {
    const r = this.ranges
    const n = r.length
    // Fast paths: acks mostly arrive in seq order.
    if (n === 0 || seq > r[n - 1]! + 1) {
      r.push(seq, seq)
      this.size++
      return true
    }
    if (seq === r[n - 1]! + 1) {
      r[n - 1] = seq
      this.size++
      return true
    }
    // General case: find the first range whose hi >= seq - 1.
    let lo = 0
    let hi = n / 2
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (r[mid * 2 + 1]! < seq - 1) lo = mid + 1
      else hi = mid
    }
    const i = lo * 2
    const start = r[i]!
    const end = r[i + 1]!
    if (seq >= start && seq <= end) return false
    if (seq === end + 1) {
      r[i + 1] = seq
      // Merge with the next range when the gap closed.
      if (i + 2 < r.length && r[i + 2] === seq + 1) {
        r[i + 1] = r[i + 3]!
        r.splice(i + 2, 2)
      }
    } else if (seq === start - 1) {
      r[i] = seq
    } else {
      r.splice(i, 0, seq, seq)
    }
    this.size++
    return true
  }

  has(seq: number): boolean {
    const r = this.ranges
    let lo = 0
    let hi = r.length / 2
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (r[mid * 2 + 1]! < seq) lo = mid + 1
      else hi = mid
    }
    return lo * 2 < r.length && r[lo * 2]! <= seq
  }

  /** Highest member, 0 when empty. */
  max(): number {
    return this.ranges.length === 0 ? 0 : this.ranges[this.ranges.length - 1]!
  }

  toRanges(): ReadonlyArray<number> {
    return this.ranges.slice()
  }
}

export interface DeviceAcks {
  readonly deviceId: string
  /** Rows with seq >= firstSeq belong to this run (earlier ones to an earlier run of a re-enrolled device). */
  readonly firstSeq: number
  /** Flat acked ranges [lo, hi, ...]. */
  readonly acked: ReadonlyArray<number>
}

export interface ZeroLossResult {
  /** Acked heartbeats (distinct device, seq). */
  readonly acked: number
  /** Distinct (device, seq) rows of this run in the table (acked or not). */
  readonly persisted: number
  /** Acked (device, seq) pairs that are not in the table. */
  readonly missing: number
  /** Rows beyond one per (device, seq), among this run's rows. */
  readonly duplicated: number
  /** A few missing ranges, for the report. */
  readonly missingSamples: ReadonlyArray<{ readonly deviceId: string; readonly lo: number; readonly hi: number; readonly present: number }>
}

const CHUNK = 5000

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

const toInt = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value))

/**
 * Missing: for every acked range, count the distinct seqs present in it (a range join on the
 * device id; the table has an index on (device_id, recorded_at) and is small per device).
 * Persisted and duplicated: per device, rows vs distinct seqs at or above the run's first seq.
 */
export const checkZeroLoss = async (databaseUrl: string, devices: ReadonlyArray<DeviceAcks>): Promise<ZeroLossResult> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    let acked = 0
    let present = 0
    let persisted = 0
    let duplicated = 0
    const missingSamples: Array<{ deviceId: string; lo: number; hi: number; present: number }> = []
    for (const chunk of chunks(devices, CHUNK)) {
      const ids: Array<string> = []
      const los: Array<number> = []
      const his: Array<number> = []
      for (const device of chunk) {
        for (let i = 0; i < device.acked.length; i += 2) {
          ids.push(device.deviceId)
          los.push(device.acked[i]!)
          his.push(device.acked[i + 1]!)
          acked += device.acked[i + 1]! - device.acked[i]! + 1
        }
      }
      if (ids.length > 0) {
        const ranges = await client.query<{ device_id: string; lo: string; hi: string; present: string }>(
          `select r.device_id, r.lo, r.hi, count(distinct h.seq) as present
             from unnest($1::text[], $2::bigint[], $3::bigint[]) as r(device_id, lo, hi)
             left join heartbeats h on h.device_id = r.device_id and h.seq between r.lo and r.hi
            group by r.device_id, r.lo, r.hi`,
          [ids, los, his]
        )
        for (const row of ranges.rows) {
          const p = toInt(row.present)
          present += p
          const expected = toInt(row.hi) - toInt(row.lo) + 1
          if (p < expected && missingSamples.length < 10) {
            missingSamples.push({ deviceId: row.device_id, lo: toInt(row.lo), hi: toInt(row.hi), present: p })
          }
        }
      }
      const totals = await client.query<{ rows: string | null; distinct_rows: string | null }>(
        `select sum(c) as rows, sum(dc) as distinct_rows from (
           select count(*) as c, count(distinct h.seq) as dc
             from unnest($1::text[], $2::bigint[]) as d(device_id, first_seq)
             join heartbeats h on h.device_id = d.device_id and h.seq >= d.first_seq
            group by h.device_id) per_device`,
        [chunk.map((d) => d.deviceId), chunk.map((d) => d.firstSeq)]
      )
      const row = totals.rows[0]
      persisted += toInt(row?.distinct_rows)
      duplicated += toInt(row?.rows) - toInt(row?.distinct_rows)
    }
    return { acked, persisted, missing: acked - present, duplicated, missingSamples }
  } finally {
    await client.end()
  }
}

/**
 * Counts this run's rows, for measuring write-behind lag from the database side. `all` = the
 * database is the bench's own, so every row is ours and a plain count(*) is cheapest.
 */
export class RowCounter {
  private constructor(
    private readonly client: pg.Client,
    private readonly ids: ReadonlyArray<string> | null,
    private readonly firstSeqs: ReadonlyArray<number> | null
  ) {}

  static async open(
    databaseUrl: string,
    devices: ReadonlyArray<{ readonly deviceId: string; readonly firstSeq: number }> | "all"
  ): Promise<RowCounter> {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    if (devices === "all") return new RowCounter(client, null, null)
    return new RowCounter(client, devices.map((d) => d.deviceId), devices.map((d) => d.firstSeq))
  }

  async count(): Promise<number> {
    if (this.ids === null) {
      const result = await this.client.query<{ n: string }>("select count(*) as n from heartbeats")
      return toInt(result.rows[0]?.n)
    }
    const result = await this.client.query<{ n: string }>(
      `select count(*) as n from unnest($1::text[], $2::bigint[]) as d(device_id, first_seq)
         join heartbeats h on h.device_id = d.device_id and h.seq >= d.first_seq`,
      [this.ids, this.firstSeqs]
    )
    return toInt(result.rows[0]?.n)
  }

  close(): Promise<void> {
    return this.client.end()
  }
}
