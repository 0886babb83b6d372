/** Heartbeat series for charts: the API's buckets (or raw points) as uPlot columns. */
import type { HeartbeatSeries } from "./model"

export interface Columns {
  readonly time: Array<number>
  readonly battery: Array<number | null>
  readonly memFree: Array<number | null>
  readonly storageFree: Array<number | null>
  readonly signal: Array<number | null>
}

export const emptyColumns = (): Columns => ({ time: [], battery: [], memFree: [], storageFree: [], signal: [] })

/** Seconds per bucket so a range has at most `points` buckets (1 s at least). */
export const bucketFor = (rangeMs: number, points = 600): number => Math.max(1, Math.ceil(rangeMs / 1000 / points))

export const toColumns = (series: HeartbeatSeries): Columns => {
  const columns = emptyColumns()
  if (series.bucketSeconds === null) {
    for (const point of series.points) {
      columns.time.push(Date.parse(point.recordedAt) / 1000)
      columns.battery.push(point.batteryPct)
      columns.memFree.push(point.memFreeMb)
      columns.storageFree.push(point.storageFreeMb)
      columns.signal.push(point.signalDbm)
    }
  } else {
    for (const bucket of series.buckets) {
      columns.time.push(Date.parse(bucket.bucketStart) / 1000)
      columns.battery.push(Math.round(bucket.batteryPct * 10) / 10)
      columns.memFree.push(Math.round(bucket.memFreeMb))
      columns.storageFree.push(Math.round(bucket.storageFreeMb))
      columns.signal.push(bucket.signalDbm === null ? null : Math.round(bucket.signalDbm))
    }
  }
  return columns
}

/** Appends a live point (ignored when not newer than the last one); returns new arrays for the chart. */
export const appendPoint = (
  columns: Columns,
  point: { readonly at: number; readonly battery: number; readonly memFree: number; readonly storageFree: number; readonly signal: number | null }
): Columns => {
  const seconds = point.at / 1000
  const last = columns.time[columns.time.length - 1]
  if (last !== undefined && seconds <= last) return columns
  return {
    time: [...columns.time, seconds],
    battery: [...columns.battery, point.battery],
    memFree: [...columns.memFree, point.memFree],
    storageFree: [...columns.storageFree, point.storageFree],
    signal: [...columns.signal, point.signal]
  }
}
