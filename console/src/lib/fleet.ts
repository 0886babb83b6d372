/**
 * The fleet as the console holds it: one row per device in a store (rows update in place, so a
 * heartbeat re-renders only the cells whose values changed), filled from the REST inventory
 * (names, tags, models) and kept current by WatchFleet (presence and telemetry). Live batches are
 * buffered and applied once per animation frame; the order of the table (filter + sort) is
 * recomputed at most once a second while changes stream in, at once when the filter changes.
 */
import type { DeviceLive, FleetBatch } from "@nexmdm/protocol/live"
import { batch, createSignal } from "solid-js"
import { createStore, produce } from "solid-js/store"
import { get } from "./api"
import { type LiveStatus, watch } from "./live"
import type { Device, DevicePage, Presence } from "./model"

export interface FleetRow {
  readonly id: string
  name: string | null
  model: string | null
  tags: ReadonlyArray<string>
  presence: Presence
  presenceReason: string | null
  battery: number | null
  charging: boolean
  memFreeMb: number | null
  memTotalMb: number | null
  network: string | null
  signalDbm: number | null
  foregroundApp: string | null
  agentVersion: string | null
  /** Epoch ms of the last heartbeat or contact. */
  lastSeen: number | null
  retired: boolean
}

export const LOW_BATTERY_PCT = 20
const ORDER_EVERY_MS = 1000

export const rowFromDevice = (device: Device): FleetRow => ({
  id: device.id,
  name: device.name,
  model: device.model,
  tags: device.tags,
  presence: device.presence,
  presenceReason: device.presenceReason,
  battery: device.heartbeat?.batteryPct ?? null,
  charging: device.heartbeat?.charging ?? false,
  memFreeMb: device.heartbeat?.memFreeMb ?? null,
  memTotalMb: device.heartbeat?.memTotalMb ?? null,
  network: device.heartbeat?.network ?? null,
  signalDbm: device.heartbeat?.signalDbm ?? null,
  foregroundApp: device.heartbeat?.foregroundApp ?? null,
  agentVersion: device.heartbeat?.agentVersion ?? device.agentVersion,
  lastSeen: device.lastSeenAt === null ? null : Date.parse(device.lastSeenAt),
  retired: device.retiredAt !== null
})

/** The live fields of a row from a WatchFleet view (only what the view knows). */
export const liveFields = (view: DeviceLive): Partial<FleetRow> => {
  const hb = view.lastHeartbeat
  return {
    presence: view.presence,
    presenceReason: view.presenceReason,
    ...(view.lastHeartbeatAt === undefined ? {} : { lastSeen: view.lastHeartbeatAt }),
    ...(hb === undefined
      ? {}
      : {
          battery: hb.batteryPct,
          charging: hb.charging,
          memFreeMb: hb.memFreeMb,
          memTotalMb: hb.memTotalMb,
          network: hb.network,
          signalDbm: hb.signalDbm ?? null,
          foregroundApp: hb.foregroundApp ?? null,
          agentVersion: hb.agentVersion
        })
  }
}

/** Compares dotted versions numerically ("1.10.0" > "1.9.2"). */
export const compareVersions = (a: string, b: string): number => {
  const left = a.split(/[.-]/)
  const right = b.split(/[.-]/)
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const x = left[i] ?? "0"
    const y = right[i] ?? "0"
    const nx = Number(x)
    const ny = Number(y)
    const diff = Number.isNaN(nx) || Number.isNaN(ny) ? x.localeCompare(y) : nx - ny
    if (diff !== 0) return diff
  }
  return 0
}

export interface FleetSummaryCounts {
  readonly total: number
  readonly online: number
  readonly offline: number
  readonly lowBattery: number
  readonly outdated: number
  readonly latestAgent: string | null
}

export const isOnline = (row: FleetRow) => row.presence === "connected" || row.presence === "grace"
export const isLowBattery = (row: FleetRow) => row.battery !== null && row.battery < LOW_BATTERY_PCT && !row.charging

export const summarize = (rows: Iterable<FleetRow>): FleetSummaryCounts => {
  let total = 0
  let online = 0
  let offline = 0
  let lowBattery = 0
  let latestAgent: string | null = null
  const all: Array<FleetRow> = []
  for (const row of rows) {
    if (row.retired) continue
    all.push(row)
    total++
    if (isOnline(row)) online++
    if (row.presence === "offline") offline++
    if (isLowBattery(row)) lowBattery++
    if (row.agentVersion !== null && (latestAgent === null || compareVersions(row.agentVersion, latestAgent) > 0)) latestAgent = row.agentVersion
  }
  const outdated = latestAgent === null ? 0 : all.filter((row) => row.agentVersion !== null && compareVersions(row.agentVersion, latestAgent!) < 0).length
  return { total, online, offline, lowBattery, outdated, latestAgent }
}

export type SortKey = "name" | "presence" | "battery" | "lastSeen" | "agentVersion" | "foregroundApp"
export type QuickFilter = "all" | "online" | "offline" | "lowBattery" | "outdated"

export interface FleetQuery {
  readonly search: string
  readonly quick: QuickFilter
  readonly tag: string
  readonly sort: SortKey
  readonly descending: boolean
}

const presenceOrder: Record<Presence, number> = { connected: 0, grace: 1, overdue: 2, offline: 3 }

/** The ids to show, in order, for a query (pure: unit-tested). */
export const orderRows = (rows: ReadonlyArray<FleetRow>, query: FleetQuery, latestAgent: string | null): Array<string> => {
  const needle = query.search.trim().toLowerCase()
  const kept = rows.filter((row) => {
    if (row.retired) return false
    if (query.tag !== "" && !row.tags.includes(query.tag)) return false
    if (query.quick === "online" && !isOnline(row)) return false
    if (query.quick === "offline" && row.presence !== "offline") return false
    if (query.quick === "lowBattery" && !isLowBattery(row)) return false
    if (query.quick === "outdated" && (latestAgent === null || row.agentVersion === null || compareVersions(row.agentVersion, latestAgent) >= 0)) return false
    if (needle === "") return true
    return (
      row.id.includes(needle) ||
      (row.name ?? "").toLowerCase().includes(needle) ||
      (row.model ?? "").toLowerCase().includes(needle) ||
      (row.foregroundApp ?? "").toLowerCase().includes(needle) ||
      row.tags.some((tag) => tag.toLowerCase().includes(needle))
    )
  })
  const key = (row: FleetRow): string | number => {
    switch (query.sort) {
      case "name":
        return (row.name ?? row.id).toLowerCase()
      case "presence":
        return presenceOrder[row.presence]
      case "battery":
        return row.battery ?? -1
      case "lastSeen":
        return row.lastSeen ?? 0
      case "agentVersion":
        return row.agentVersion ?? ""
      case "foregroundApp":
        return row.foregroundApp ?? ""
    }
  }
  const direction = query.descending ? -1 : 1
  kept.sort((a, b) => {
    const x = key(a)
    const y = key(b)
    const diff =
      query.sort === "agentVersion" ? compareVersions(String(x), String(y)) : typeof x === "number" ? x - (y as number) : String(x).localeCompare(String(y))
    return diff !== 0 ? diff * direction : a.id.localeCompare(b.id)
  })
  return kept.map((row) => row.id)
}

/** The fleet store: one instance for the app, started by the fleet page. */
export const createFleet = () => {
  const [rows, setRows] = createStore<Record<string, FleetRow>>({})
  const [loaded, setLoaded] = createSignal(false)
  const [loadError, setLoadError] = createSignal<string | undefined>(undefined)
  const [status, setStatus] = createSignal<LiveStatus>("connecting")
  /** Bumped when the set of rows or their sortable values changed (throttled). */
  const [version, setVersion] = createSignal(0)
  const pending = new Map<string, DeviceLive>()
  const unknown = new Set<string>()
  let frame: number | undefined
  let orderTimer: ReturnType<typeof setTimeout> | undefined
  let unknownTimer: ReturnType<typeof setTimeout> | undefined
  /** True while devices seen live are still being looked up in the inventory. */
  const [syncing, setSyncing] = createSignal(false)
  let lastOrder = 0
  /** Epoch ms when the last batch was applied (tests read it). */
  let appliedBatches = 0

  const bumpOrder = () => {
    if (orderTimer !== undefined) return
    const wait = Math.max(0, ORDER_EVERY_MS - (Date.now() - lastOrder))
    orderTimer = setTimeout(() => {
      orderTimer = undefined
      lastOrder = Date.now()
      setVersion((v) => v + 1)
    }, wait)
  }

  /** Devices seen live but not yet in the inventory: a few are fetched one by one, many by reloading the list. */
  let reloading: Promise<void> | undefined
  const fetchUnknown = async () => {
    if (unknown.size > 20) {
      unknown.clear()
      reloading ??= load().finally(() => {
        reloading = undefined
        setSyncing(unknown.size > 0 || unknownTimer !== undefined)
      })
      return
    }
    const ids = [...unknown]
    unknown.clear()
    for (const id of ids) {
      try {
        const device = await get<Device>(`/devices/${id}`)
        setRows(id, (existing) => ({ ...rowFromDevice(device), ...(existing === undefined ? {} : liveOnly(existing)) }))
        bumpOrder()
      } catch {
        // A device that vanished (retired and purged) simply stays as the live view describes it.
      }
    }
    setSyncing(unknown.size > 0 || unknownTimer !== undefined || reloading !== undefined)
  }
  const liveOnly = (row: FleetRow): Partial<FleetRow> => ({
    presence: row.presence,
    presenceReason: row.presenceReason,
    battery: row.battery,
    charging: row.charging,
    memFreeMb: row.memFreeMb,
    memTotalMb: row.memTotalMb,
    network: row.network,
    signalDbm: row.signalDbm,
    foregroundApp: row.foregroundApp,
    agentVersion: row.agentVersion,
    lastSeen: row.lastSeen
  })

  const apply = () => {
    frame = undefined
    if (pending.size === 0) return
    const views = [...pending.values()]
    pending.clear()
    let added = false
    batch(() => {
      setRows(
        produce((all) => {
          for (const view of views) {
            const fields = liveFields(view)
            const row = all[view.id]
            if (row === undefined) {
              added = true
              unknown.add(view.id)
              all[view.id] = {
                id: view.id,
                name: null,
                model: null,
                tags: [],
                presence: view.presence,
                presenceReason: null,
                battery: null,
                charging: false,
                memFreeMb: null,
                memTotalMb: null,
                network: null,
                signalDbm: null,
                foregroundApp: null,
                agentVersion: null,
                lastSeen: null,
                retired: false,
                ...fields
              }
            } else {
              for (const [key, value] of Object.entries(fields)) if ((row as any)[key] !== value) (row as any)[key] = value
            }
          }
        })
      )
    })
    appliedBatches++
    if (added) {
      setVersion((v) => v + 1)
      setSyncing(true)
      unknownTimer ??= setTimeout(() => {
        unknownTimer = undefined
        void fetchUnknown()
      }, 500)
    } else bumpOrder()
  }

  const onBatch = (item: FleetBatch) => {
    for (const view of item.devices) pending.set(view.id, view)
    frame ??= requestAnimationFrame(apply)
  }

  const load = async () => {
    setLoadError(undefined)
    try {
      const all: Array<FleetRow> = []
      let cursor: string | null = null
      do {
        const page: DevicePage = await get<DevicePage>("/devices", { limit: 500, ...(cursor === null ? {} : { cursor }) })
        for (const device of page.items) all.push(rowFromDevice(device))
        cursor = page.nextCursor
      } while (cursor !== null)
      batch(() => {
        setRows(
          produce((current) => {
            for (const row of all) current[row.id] = current[row.id] === undefined ? row : { ...row, ...liveOnly(current[row.id]!) }
          })
        )
        setLoaded(true)
        setVersion((v) => v + 1)
      })
    } catch (error) {
      setLoadError(error instanceof Error ? error.message : String(error))
    }
  }

  /** Starts loading and watching; returns the disposer. */
  const start = () => {
    void load()
    return watch((client, token) => client.WatchFleet({ accessToken: token, flushMs: 100 }), {
      onItem: onBatch,
      onStatus: setStatus
    })
  }

  const patchRow = (id: string, fields: Partial<FleetRow>) => {
    setRows(id, fields)
    setVersion((v) => v + 1)
  }

  return { rows, loaded, loadError, status, version, syncing, start, load, patchRow, appliedBatches: () => appliedBatches }
}

export type Fleet = ReturnType<typeof createFleet>
