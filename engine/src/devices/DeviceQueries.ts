/**
 * Reads (and the two admin changes) of the device inventory for the admin API: the filtered,
 * sorted, cursor-paged list, one device, its heartbeats (raw or downsampled), its events and the
 * fleet summary.
 *
 * Live state is the registry's: for a device whose actor is in memory, presence, last-seen and the
 * latest heartbeat come from its view (the database lags by the write-behind delay); for the
 * others the database is the truth (an actor is passivated only once all it accepted is stored).
 * Filters and sorts run in SQL over both: the in-memory states go along as arrays (`live`), and the
 * latest heartbeat of a page's devices is one LATERAL lookup each on (device_id, recorded_at desc)
 * (only a battery filter or sort needs it for every candidate).
 *
 * A heartbeat series also carries the agent's own cost (PROTOCOL.md 9.6): per point or bucket,
 * and summed over the range for the device page. Heartbeats of older agents have none, so every
 * cost figure is absent (not 0) where no heartbeat carried it.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import type { NetworkType } from "@nexmdm/protocol"
import { Context, Data, Effect, Layer, Option } from "effect"
import type { Presence } from "../DeviceEventLog.js"
import { DeviceEventLog } from "../DeviceEventLog.js"
import { DeviceRegistry, type DeviceView } from "../DeviceRegistry.js"
import { networkFromCode } from "../TelemetryWriter.js"

export type SortKey = "name" | "lastSeen" | "battery" | "enrolledAt"

export interface DeviceFilter {
  readonly presence?: Presence | undefined
  readonly tag?: string | undefined
  /** Latest battery strictly below this percentage. */
  readonly batteryBelow?: number | undefined
  readonly lastSeenBefore?: Date | undefined
  readonly lastSeenAfter?: Date | undefined
  /** Case-insensitive substring of id, name, hardware id or model. */
  readonly q?: string | undefined
  readonly includeRetired?: boolean | undefined
}

export interface ListQuery extends DeviceFilter {
  readonly sort: SortKey
  readonly order: "asc" | "desc"
  /** The previous page's `nextCursor`. */
  readonly cursor?: string | undefined
  readonly limit: number
}

export interface LatestHeartbeat {
  readonly recordedAt: Date
  readonly batteryPct: number
  readonly charging: boolean
  readonly memFreeMb: number
  readonly memTotalMb: number
  readonly storageFreeMb: number
  readonly network: NetworkType
  readonly signalDbm: number | null
  readonly foregroundApp: string | null
  readonly agentVersion: string
}

export interface DeviceInfo {
  readonly id: string
  readonly name: string | null
  readonly hardwareId: string
  readonly model: string | null
  readonly manufacturer: string | null
  readonly osVersion: string | null
  readonly agentVersion: string | null
  readonly tags: ReadonlyArray<string>
  readonly enrolledAt: Date
  readonly retiredAt: Date | null
  readonly presence: Presence
  readonly presenceReason: string | null
  readonly presenceSince: Date | null
  readonly lastSeenAt: Date | null
  readonly heartbeat: LatestHeartbeat | null
}

export interface DevicePage {
  readonly items: ReadonlyArray<DeviceInfo>
  readonly nextCursor: string | null
}

/**
 * The agent's interval and own cost (PROTOCOL.md 9.6), each absent where the agent sent none.
 * For a bucket: the sums of its heartbeats, and the interval of the latest one that had it.
 */
export interface AgentCostFields {
  readonly intervalS?: number
  readonly wakeups?: number
  readonly txBytes?: number
  readonly reconnects?: number
}

/** The agent's cost over a heartbeat range, for the device page. */
export interface AgentCostSummary {
  /** The interval in the device's latest heartbeat before the range's end; null when it had none. */
  readonly intervalS: number | null
  /** Heartbeats in the range that carried some cost. */
  readonly samples: number
  /** Sums over the range; null when no heartbeat carried the field. */
  readonly wakeups: number | null
  readonly txBytes: number | null
  readonly reconnects: number | null
  /**
   * Hours the sums cover: from the first reporting heartbeat in the range, less its interval
   * (its cost is since its previous sample), not before the range's start, to the last one.
   */
  readonly hours: number
  /** The sums over `hours`; null without a sum or when the cover is empty (a single heartbeat without an interval). */
  readonly wakeupsPerHour: number | null
  readonly txBytesPerHour: number | null
}

export interface HeartbeatPoint extends AgentCostFields {
  readonly recordedAt: Date
  readonly seq: number
  readonly batteryPct: number
  readonly charging: boolean
  readonly memFreeMb: number
  readonly memTotalMb: number
  readonly storageFreeMb: number
  readonly network: NetworkType
  readonly signalDbm: number | null
  readonly foregroundApp: string | null
}

export interface HeartbeatBucket extends AgentCostFields {
  readonly bucketStart: Date
  readonly samples: number
  readonly batteryPct: number
  readonly memFreeMb: number
  readonly storageFreeMb: number
  readonly signalDbm: number | null
}

export interface DeviceEventInfo {
  readonly id: string
  readonly at: Date
  readonly kind: string
  readonly presence: string | null
  readonly reason: string | null
  readonly detail: unknown
}

export interface FleetSummary {
  readonly total: number
  readonly byPresence: Record<Presence, number>
  /** Battery under 20 % and not charging. */
  readonly lowBattery: number
  /** Top 10, most devices first. */
  readonly agentVersions: ReadonlyArray<{ readonly version: string; readonly devices: number }>
  readonly retired: number
}

/** The caller asked for something the query cannot answer (a bad cursor, too many points). */
export class DeviceQueryInvalid extends Data.TaggedError("DeviceQueryInvalid")<{ readonly message: string }> {}

export class DeviceMissing extends Data.TaggedError("DeviceMissing")<{ readonly deviceId: string }> {}

export const MAX_POINTS = 5000

export class DeviceQueries extends Context.Tag("@nexmdm/engine/devices/DeviceQueries")<
  DeviceQueries,
  {
    readonly list: (query: ListQuery) => Effect.Effect<DevicePage, DeviceQueryInvalid | SqlError.SqlError>
    readonly get: (deviceId: string) => Effect.Effect<DeviceInfo, DeviceMissing | SqlError.SqlError>
    /** Renames and/or retags; run it inside the caller's (audit) transaction. */
    readonly update: (
      deviceId: string,
      change: { readonly name?: string | null | undefined; readonly tags?: ReadonlyArray<string> | undefined }
    ) => Effect.Effect<void, DeviceMissing | SqlError.SqlError>
    /** Marks the device retired and voids its credentials; `null` when it already was. Tell the actor after commit. */
    readonly retire: (deviceId: string) => Effect.Effect<{ readonly generation: number } | null, DeviceMissing | SqlError.SqlError>
    /** Closes a retired device's socket and records the event (after the retirement committed). */
    readonly retired: (deviceId: string, generation: number, by: string) => Effect.Effect<void>
    readonly heartbeats: (
      deviceId: string,
      range: { readonly from: Date; readonly to: Date; readonly bucketSeconds?: number | undefined }
    ) => Effect.Effect<
      (
        | { readonly _tag: "Raw"; readonly points: ReadonlyArray<HeartbeatPoint> }
        | { readonly _tag: "Buckets"; readonly buckets: ReadonlyArray<HeartbeatBucket> }
      ) & {
        /** Undefined when no heartbeat in the range carried a cost and the latest had no interval (an older agent). */
        readonly agentCost: AgentCostSummary | undefined
      },
      DeviceMissing | DeviceQueryInvalid | SqlError.SqlError
    >
    readonly events: (
      deviceId: string,
      page: { readonly before?: Date | undefined; readonly limit: number }
    ) => Effect.Effect<ReadonlyArray<DeviceEventInfo>, DeviceMissing | SqlError.SqlError>
    readonly summary: Effect.Effect<FleetSummary, SqlError.SqlError>
  }
>() {}

// ---------------------------------------------------------------------------------------------

/** In-memory states as SQL parameters ($1..$8), joined as `live l`. */
const liveParams = (views: ReadonlyArray<DeviceView>): Array<unknown> => [
  views.map((v) => v.deviceId),
  views.map((v) => v.presence),
  views.map((v) => v.presenceReason),
  views.map((v) => v.presenceSince),
  views.map((v) => v.lastHeartbeatAt ?? null),
  views.map((v) => v.lastHeartbeat?.batteryPct ?? null),
  views.map((v) => v.lastHeartbeat?.charging ?? null),
  views.map((v) => v.lastHeartbeat?.agentVersion ?? null)
]

const liveCte = `live as (
  select * from unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::int[], $7::bool[], $8::text[])
    as l(id, presence, reason, since_ms, seen_ms, battery, charging, agent)
)`

const latestBattery = `coalesce(l.battery, (select h.battery_pct from heartbeats h where h.device_id = d.id order by h.recorded_at desc limit 1))`
const lastSeen = `greatest(to_timestamp(l.seen_ms / 1000.0), d.last_seen_at)`

const sortKeys: Record<SortKey, { readonly expr: string; readonly type: "text" | "float8" }> = {
  name: { expr: `coalesce(d.name, '')`, type: "text" },
  lastSeen: { expr: `coalesce(extract(epoch from ${lastSeen}) * 1000, -1)::float8`, type: "float8" },
  battery: { expr: `coalesce(${latestBattery}, -1)::float8`, type: "float8" },
  enrolledAt: { expr: `(extract(epoch from d.enrolled_at) * 1000)::float8`, type: "float8" }
}

const encodeCursor = (key: string | number, id: string) => Buffer.from(JSON.stringify([key, id])).toString("base64url")

const decodeCursor = (cursor: string, type: "text" | "float8"): readonly [string | number, string] | undefined => {
  try {
    const value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    if (!Array.isArray(value) || value.length !== 2 || typeof value[1] !== "string") return undefined
    if (type === "text" ? typeof value[0] !== "string" : typeof value[0] !== "number" || !Number.isFinite(value[0])) return undefined
    return [value[0] as string | number, value[1]]
  } catch {
    return undefined
  }
}

const likePattern = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

interface Row {
  readonly id: string
  readonly name: string | null
  readonly hardware_id: string
  readonly model: string | null
  readonly manufacturer: string | null
  readonly os_version: string | null
  readonly agent_version: string | null
  readonly tags: ReadonlyArray<string>
  readonly enrolled_at: Date
  readonly retired_at: Date | null
  readonly presence: string
  readonly presence_reason: string | null
  readonly presence_since: Date | null
  readonly last_seen_at: Date | null
  readonly sort_key: string | number
  readonly hb_recorded_at: Date | null
  readonly battery_pct: number | null
  readonly charging: boolean | null
  readonly mem_free_mb: number | null
  readonly mem_total_mb: number | null
  readonly storage_free_mb: number | null
  readonly network: number | null
  readonly signal_dbm: number | null
  readonly foreground_app: string | null
  readonly hb_agent_version: string | null
}

/** The page's rows with their latest heartbeat (one index lookup per row). */
const pageSelect = (inner: string) => `
with ${liveCte}
select d.id, d.name, d.hardware_id, d.model, d.manufacturer, d.os_version, d.agent_version, d.tags, d.enrolled_at, d.retired_at,
  coalesce(l.presence, d.presence) as presence,
  case when l.id is null then d.presence_reason else l.reason end as presence_reason,
  coalesce(to_timestamp(l.since_ms / 1000.0), d.presence_since) as presence_since,
  ${lastSeen} as last_seen_at,
  p.sort_key,
  hb.recorded_at as hb_recorded_at, hb.battery_pct, hb.charging, hb.mem_free_mb, hb.mem_total_mb, hb.storage_free_mb,
  hb.network, hb.signal_dbm, hb.foreground_app, hb.agent_version as hb_agent_version
from (${inner}) p
join devices d on d.id = p.id
left join live l on l.id = d.id
left join lateral (
  select * from heartbeats h where h.device_id = d.id order by h.recorded_at desc limit 1
) hb on true
order by p.ord`

/** A heartbeat that carries some of the agent's cost (PROTOCOL.md 9.6). */
const hasCost = `wakeups is not null or tx_bytes is not null or reconnects is not null`

const presences: ReadonlyArray<Presence> = ["connected", "overdue", "grace", "offline"]

const toInfo = (row: Row, view: Option.Option<DeviceView>): DeviceInfo => {
  const live = Option.getOrUndefined(view)
  const sample = live?.lastHeartbeat
  const heartbeat: LatestHeartbeat | null =
    sample !== undefined
      ? {
          recordedAt: new Date(sample.recordedAt),
          batteryPct: sample.batteryPct,
          charging: sample.charging,
          memFreeMb: sample.memFreeMb,
          memTotalMb: sample.memTotalMb,
          storageFreeMb: sample.storageFreeMb,
          network: sample.network,
          signalDbm: sample.signalDbm ?? null,
          foregroundApp: sample.foregroundApp ?? null,
          agentVersion: sample.agentVersion
        }
      : row.hb_recorded_at === null
        ? null
        : {
            recordedAt: row.hb_recorded_at,
            batteryPct: row.battery_pct!,
            charging: row.charging!,
            memFreeMb: row.mem_free_mb!,
            memTotalMb: row.mem_total_mb!,
            storageFreeMb: row.storage_free_mb!,
            network: networkFromCode(row.network!),
            signalDbm: row.signal_dbm,
            foregroundApp: row.foreground_app,
            agentVersion: row.hb_agent_version!
          }
  const presence = live?.presence ?? (presences.includes(row.presence as Presence) ? (row.presence as Presence) : "offline")
  return {
    id: row.id,
    name: row.name,
    hardwareId: row.hardware_id,
    model: row.model,
    manufacturer: row.manufacturer,
    osVersion: row.os_version,
    agentVersion: heartbeat?.agentVersion ?? row.agent_version,
    tags: row.tags,
    enrolledAt: row.enrolled_at,
    retiredAt: row.retired_at,
    presence,
    presenceReason: live?.presenceReason ?? row.presence_reason,
    presenceSince: live !== undefined ? new Date(live.presenceSince) : row.presence_since,
    lastSeenAt:
      live?.lastHeartbeatAt !== undefined && (row.last_seen_at === null || live.lastHeartbeatAt > row.last_seen_at.getTime())
        ? new Date(live.lastHeartbeatAt)
        : row.last_seen_at,
    heartbeat
  }
}

/** The cost columns of a heartbeat row, or of a bucket's aggregates (PROTOCOL.md 9.6). */
interface CostColumns {
  readonly interval_s: number | null
  readonly wakeups: number | null
  readonly tx_bytes: number | null
  readonly reconnects: number | null
}

const costFields = (row: CostColumns): AgentCostFields => ({
  ...(row.interval_s === null ? {} : { intervalS: row.interval_s }),
  ...(row.wakeups === null ? {} : { wakeups: row.wakeups }),
  ...(row.tx_bytes === null ? {} : { txBytes: row.tx_bytes }),
  ...(row.reconnects === null ? {} : { reconnects: row.reconnects })
})

/** A heartbeat, or a bucket of them, as a part of the range's cost. Times in epoch milliseconds. */
interface CostPart extends CostColumns {
  readonly samples: number
  /** Where the part's cost starts: its first reporting heartbeat less that one's interval. */
  readonly fromMs: number | null
  /** Its last reporting heartbeat. */
  readonly toMs: number | null
}

const plus = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : a + b)

/** The range's cost from its parts; undefined when the agent reports none of it. */
const summarizeCost = (parts: ReadonlyArray<CostPart>, rangeFrom: Date, intervalS: number | null): AgentCostSummary | undefined => {
  let samples = 0
  let wakeups: number | null = null
  let txBytes: number | null = null
  let reconnects: number | null = null
  let fromMs = Infinity
  let toMs = -Infinity
  for (const part of parts) {
    if (part.samples === 0) continue
    samples += part.samples
    wakeups = plus(wakeups, part.wakeups)
    txBytes = plus(txBytes, part.tx_bytes)
    reconnects = plus(reconnects, part.reconnects)
    if (part.fromMs !== null) fromMs = Math.min(fromMs, part.fromMs)
    if (part.toMs !== null) toMs = Math.max(toMs, part.toMs)
  }
  if (samples === 0 && intervalS === null) return undefined
  const hours = samples === 0 ? 0 : Math.max(0, toMs - Math.max(fromMs, rangeFrom.getTime())) / 3_600_000
  const perHour = (sum: number | null) => (sum === null || hours === 0 ? null : sum / hours)
  return { intervalS, samples, wakeups, txBytes, reconnects, hours, wakeupsPerHour: perHour(wakeups), txBytesPerHour: perHour(txBytes) }
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const registry = yield* DeviceRegistry
  const eventLog = yield* DeviceEventLog

  const exists = (deviceId: string) =>
    sql<{ id: string }>`select id from devices where id = ${deviceId}`.pipe(
      Effect.flatMap((rows) => (rows.length === 0 ? Effect.fail(new DeviceMissing({ deviceId })) : Effect.void))
    )

  const list = Effect.fn("DeviceQueries.list")(function* (query: ListQuery) {
    // Live state decides which devices match and their order only for these filters and sorts;
    // otherwise the page's own devices are overlaid afterwards (toInfo), and the query skips the
    // 10,000-element arrays (they cost more than the rest of the query at that size).
    const needsLive =
      query.presence !== undefined || query.batteryBelow !== undefined || query.lastSeenBefore !== undefined ||
      query.lastSeenAfter !== undefined || query.sort === "lastSeen" || query.sort === "battery"
    const params = liveParams(needsLive ? registry.snapshot() : [])
    const param = (value: unknown) => {
      params.push(value)
      return `$${params.length}`
    }
    const sort = sortKeys[query.sort]
    const conditions: Array<string> = []
    if (query.includeRetired !== true) conditions.push("d.retired_at is null")
    if (query.presence !== undefined) conditions.push(`coalesce(l.presence, d.presence) = ${param(query.presence)}`)
    if (query.tag !== undefined) conditions.push(`d.tags @> array[${param(query.tag)}::text]`)
    if (query.batteryBelow !== undefined) conditions.push(`${latestBattery} < ${param(query.batteryBelow)}::int`)
    if (query.lastSeenBefore !== undefined) conditions.push(`${lastSeen} < ${param(query.lastSeenBefore)}::timestamptz`)
    if (query.lastSeenAfter !== undefined) conditions.push(`${lastSeen} > ${param(query.lastSeenAfter)}::timestamptz`)
    if (query.q !== undefined && query.q !== "") {
      const pattern = param(likePattern(query.q))
      conditions.push(`(d.id ilike ${pattern} or d.name ilike ${pattern} or d.hardware_id ilike ${pattern} or d.model ilike ${pattern})`)
    }
    let after = ""
    if (query.cursor !== undefined) {
      const decoded = decodeCursor(query.cursor, sort.type)
      if (decoded === undefined) return yield* new DeviceQueryInvalid({ message: "cursor is not one this list returned (or belongs to another sort)" })
      after = `where (s.sort_key, s.id) ${query.order === "asc" ? ">" : "<"} (${param(decoded[0])}::${sort.type}, ${param(decoded[1])}::text)`
    }
    const direction = query.order === "asc" ? "asc" : "desc"
    const inner = `
      select s.id, s.sort_key, row_number() over (order by s.sort_key ${direction}, s.id ${direction}) as ord from (
        select s.id, s.sort_key from (
          select d.id, ${sort.expr} as sort_key
          from devices d left join live l on l.id = d.id
          ${conditions.length === 0 ? "" : `where ${conditions.join(" and ")}`}
        ) s ${after}
        order by s.sort_key ${direction}, s.id ${direction}
        limit ${param(query.limit + 1)}::int
      ) s`
    const rows = yield* sql.unsafe<Row>(pageSelect(inner), params)
    const items = rows.slice(0, query.limit).map((row) => toInfo(row, registry.view(row.id)))
    const last = rows.length > query.limit ? rows[query.limit - 1] : undefined
    return { items, nextCursor: last === undefined ? null : encodeCursor(last.sort_key, last.id) }
  })

  const get = Effect.fn("DeviceQueries.get")(function* (deviceId: string) {
    const view = registry.view(deviceId)
    const params = liveParams(Option.toArray(view))
    params.push(deviceId)
    const rows = yield* sql.unsafe<Row>(pageSelect(`select d.id, null::text as sort_key, 1 as ord from devices d where d.id = $9`), params)
    const row = rows[0]
    if (row === undefined) return yield* new DeviceMissing({ deviceId })
    return toInfo(row, view)
  })

  const update = Effect.fn("DeviceQueries.update")(function* (
    deviceId: string,
    change: { readonly name?: string | null | undefined; readonly tags?: ReadonlyArray<string> | undefined }
  ) {
    const rows = yield* sql<{ id: string }>`update devices set
        name = case when ${change.name !== undefined} then ${change.name ?? null}::text else name end,
        tags = case when ${change.tags !== undefined} then ${change.tags === undefined ? [] : [...change.tags]}::text[] else tags end
      where id = ${deviceId} returning id`
    if (rows.length === 0) return yield* new DeviceMissing({ deviceId })
  })

  const retire = Effect.fn("DeviceQueries.retire")(function* (deviceId: string) {
    const rows = yield* sql<{ credential_generation: number }>`update devices
      set retired_at = now(), credential_generation = credential_generation + 1
      where id = ${deviceId} and retired_at is null returning credential_generation`
    if (rows.length > 0) return { generation: rows[0]!.credential_generation }
    yield* exists(deviceId)
    return null
  })

  const retired = (deviceId: string, generation: number, by: string) =>
    Effect.sync(() => {
      eventLog.record({ deviceId, at: Date.now(), kind: "retired", detail: { by } })
      registry.tell(deviceId, { _tag: "Retired", generation })
    })

  /** The interval the device's latest heartbeat before `to` reported: one backward step on (device_id, recorded_at). */
  const latestIntervalS = (deviceId: string, to: Date) =>
    sql<{ interval_s: number | null }>`select interval_s from heartbeats where device_id = ${deviceId} and recorded_at < ${to}
      order by recorded_at desc limit 1`.pipe(Effect.map((rows) => rows[0]?.interval_s ?? null))

  const heartbeats = Effect.fn("DeviceQueries.heartbeats")(function* (
    deviceId: string,
    range: { readonly from: Date; readonly to: Date; readonly bucketSeconds?: number | undefined }
  ) {
    if (range.to.getTime() <= range.from.getTime()) return yield* new DeviceQueryInvalid({ message: "`to` must be after `from`" })
    yield* exists(deviceId)
    if (range.bucketSeconds !== undefined) {
      const buckets = Math.ceil((range.to.getTime() - range.from.getTime()) / 1000 / range.bucketSeconds)
      if (buckets > MAX_POINTS) {
        return yield* new DeviceQueryInvalid({ message: `${buckets} buckets over the limit of ${MAX_POINTS}: widen bucketSeconds or narrow the range` })
      }
      // Sums stay null in a bucket where no heartbeat carried the field (sum ignores nulls). The
      // interval is the one of the bucket's latest heartbeat that had one: the max of [time,
      // interval] pairs (an ordered array_agg sorts every bucket: a day of 30 s heartbeats took a
      // quarter longer with it, against a few percent for all the cost columns this way).
      // The cost_* columns are for the range's summary only.
      const cost = sql.literal(hasCost)
      const rows = yield* sql<
        CostColumns & {
          bucket: Date
          samples: number
          battery: number
          mem: number
          storage: number
          signal: number | null
          cost_samples: number
          cost_from: Date | null
          cost_to: Date | null
        }
      >`
        select to_timestamp(floor(extract(epoch from recorded_at) / ${range.bucketSeconds}) * ${range.bucketSeconds}) as bucket,
          count(*)::int as samples, avg(battery_pct)::float8 as battery, avg(mem_free_mb)::float8 as mem,
          avg(storage_free_mb)::float8 as storage, avg(signal_dbm)::float8 as signal,
          sum(wakeups)::float8 as wakeups, sum(tx_bytes)::float8 as tx_bytes, sum(reconnects)::float8 as reconnects,
          (max(array[extract(epoch from recorded_at)::float8, interval_s]) filter (where interval_s is not null))[2]::int as interval_s,
          (count(*) filter (where ${cost}))::int as cost_samples,
          min(recorded_at - coalesce(interval_s, 0) * interval '1 second') filter (where ${cost}) as cost_from,
          max(recorded_at) filter (where ${cost}) as cost_to
        from heartbeats where device_id = ${deviceId} and recorded_at >= ${range.from} and recorded_at < ${range.to}
        group by 1 order by 1`
      const intervalS = yield* latestIntervalS(deviceId, range.to)
      return {
        _tag: "Buckets" as const,
        buckets: rows.map((r) => ({
          bucketStart: r.bucket,
          samples: r.samples,
          batteryPct: r.battery,
          memFreeMb: r.mem,
          storageFreeMb: r.storage,
          signalDbm: r.signal,
          ...costFields(r)
        })),
        agentCost: summarizeCost(
          rows.map((r) => ({ ...r, samples: r.cost_samples, fromMs: r.cost_from?.getTime() ?? null, toMs: r.cost_to?.getTime() ?? null })),
          range.from,
          intervalS
        )
      }
    }
    const rows = yield* sql<
      CostColumns & {
        recorded_at: Date
        seq: string
        battery_pct: number
        charging: boolean
        mem_free_mb: number
        mem_total_mb: number
        storage_free_mb: number
        network: number
        signal_dbm: number | null
        foreground_app: string | null
      }
    >`select recorded_at, seq, battery_pct, charging, mem_free_mb, mem_total_mb, storage_free_mb, network, signal_dbm, foreground_app,
        interval_s, wakeups, tx_bytes, reconnects
      from heartbeats where device_id = ${deviceId} and recorded_at >= ${range.from} and recorded_at < ${range.to}
      order by recorded_at limit ${MAX_POINTS + 1}`
    if (rows.length > MAX_POINTS) {
      return yield* new DeviceQueryInvalid({ message: `more than ${MAX_POINTS} heartbeats in the range: narrow it or set bucketSeconds` })
    }
    const intervalS = yield* latestIntervalS(deviceId, range.to)
    return {
      _tag: "Raw" as const,
      points: rows.map((r) => ({
        recordedAt: r.recorded_at,
        seq: Number(r.seq),
        batteryPct: r.battery_pct,
        charging: r.charging,
        memFreeMb: r.mem_free_mb,
        memTotalMb: r.mem_total_mb,
        storageFreeMb: r.storage_free_mb,
        network: networkFromCode(r.network),
        signalDbm: r.signal_dbm,
        foregroundApp: r.foreground_app,
        ...costFields(r)
      })),
      agentCost: summarizeCost(
        rows.map((r) => {
          const reported = r.wakeups !== null || r.tx_bytes !== null || r.reconnects !== null
          const at = r.recorded_at.getTime()
          return { ...r, samples: reported ? 1 : 0, fromMs: reported ? at - (r.interval_s ?? 0) * 1000 : null, toMs: reported ? at : null }
        }),
        range.from,
        intervalS
      )
    }
  })

  const events = Effect.fn("DeviceQueries.events")(function* (deviceId: string, page: { readonly before?: Date | undefined; readonly limit: number }) {
    yield* exists(deviceId)
    const rows = yield* sql<{ id: string; at: Date; kind: string; presence: string | null; reason: string | null; detail: unknown }>`
      select id, at, kind, presence, reason, detail from device_events
      where device_id = ${deviceId} ${page.before === undefined ? sql`` : sql`and at < ${page.before}`}
      order by at desc, id desc limit ${page.limit}`
    return rows.map((r) => ({ ...r, id: String(r.id) }))
  })

  const summary = Effect.gen(function* () {
    const params = liveParams(registry.snapshot())
    const [row] = yield* sql.unsafe<{ total: number; retired: number; by_presence: Record<string, number> | null; low_battery: number; versions: Array<{ version: string; devices: number }> | null }>(
      `with ${liveCte},
      fleet as (
        select coalesce(l.presence, d.presence) as presence,
          coalesce(l.battery, hb.battery_pct) as battery, coalesce(l.charging, hb.charging) as charging,
          coalesce(l.agent, hb.agent_version, d.agent_version) as agent
        from devices d left join live l on l.id = d.id
        left join lateral (
          select h.battery_pct, h.charging, h.agent_version from heartbeats h where h.device_id = d.id and l.battery is null
          order by h.recorded_at desc limit 1
        ) hb on true
        where d.retired_at is null
      )
      select (select count(*)::int from fleet) as total,
        (select count(*)::int from devices where retired_at is not null) as retired,
        (select jsonb_object_agg(presence, n) from (select presence, count(*)::int as n from fleet group by presence) p) as by_presence,
        (select count(*)::int from fleet where battery < 20 and not charging) as low_battery,
        (select jsonb_agg(jsonb_build_object('version', agent, 'devices', n) order by n desc, agent)
          from (select agent, count(*)::int as n from fleet where agent is not null group by agent order by n desc, agent limit 10) v) as versions`,
      params
    )
    const byPresence = { connected: 0, overdue: 0, grace: 0, offline: 0 }
    for (const [presence, n] of Object.entries(row?.by_presence ?? {})) {
      if (presence in byPresence) byPresence[presence as Presence] += n
      else byPresence.offline += n
    }
    return { total: row?.total ?? 0, byPresence, lowBattery: row?.low_battery ?? 0, agentVersions: row?.versions ?? [], retired: row?.retired ?? 0 }
  }).pipe(Effect.withSpan("DeviceQueries.summary"))

  return DeviceQueries.of({ list, get, update, retire, retired, heartbeats, events, summary })
})

/** Needs SqlClient, DeviceRegistry and DeviceEventLog. */
export const layer = Layer.effect(DeviceQueries, make)
