/**
 * The console scenario's subscribers (a sidecar process): M WebSockets to the admin plane's
 * `/api/live`, each calling `WatchFleet` with the owner's access token, speaking @effect/rpc's JSON
 * protocol directly (PROTOCOL: Request -> Chunk... with an Ack per Chunk -> Exit), as a console
 * would through RpcClient.
 *
 * Update latency: for every device view in a "changes" batch, the subscriber's Date.now() at
 * arrival minus the view's `lastHeartbeat.recordedAt` (the engine's Date.now() when it accepted the
 * heartbeat; same machine, same clock). It includes the flush interval asked for (`flushMs`): a
 * device that changed just after a flush waits for the next one. The engine serializes each flush
 * once for all subscribers; a subscriber that falls behind receives, instead of the flushes it
 * missed, one "changes" batch with each device's latest view: its latency is then the age of the
 * state it shows, and `updates` counts what it received, not every heartbeat.
 */
import WebSocket from "ws"
import { runSidecar } from "./Sidecar.js"
import { type HistogramSnapshot, LatencyHistogram } from "./Stats.js"

export interface SubscribersConfig {
  readonly adminUrl: string
  readonly accessToken: string
  readonly count: number
  readonly flushMs: number
  /** Date.now() from which latencies are recorded (after the warm-up). */
  readonly recordFromEpochMs: number
}

export interface SubscribersResult {
  readonly latency: HistogramSnapshot
  /** Device views received in "changes" batches, all subscribers. */
  readonly updates: number
  /** Subscribers that received their snapshot ("snapshotEnd"). */
  readonly snapshots: number
  /** Streams that ended (Exit) or sockets that closed before the end of the run. */
  readonly ended: number
  readonly failures: ReadonlyArray<string>
  /** Longest time a subscriber waited for its snapshot, ms. */
  readonly snapshotMaxMs: number | null
}

type RpcMessage = { readonly _tag: string; readonly requestId?: string; readonly values?: ReadonlyArray<unknown>; readonly exit?: unknown }

const start = (config: SubscribersConfig, log: (text: string) => void) => {
  const latency = new LatencyHistogram()
  const failures: Array<string> = []
  let updates = 0
  let snapshots = 0
  let ended = 0
  let snapshotMaxMs: number | null = null
  let stopping = false
  const sockets: Array<WebSocket> = []
  const url = new URL("/api/live", config.adminUrl)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"

  for (let i = 0; i < config.count; i++) {
    const openedAt = Date.now()
    const ws = new WebSocket(url, { perMessageDeflate: false })
    sockets.push(ws)
    ws.on("open", () => {
      ws.send(JSON.stringify({ _tag: "Request", id: "1", tag: "WatchFleet", payload: { accessToken: config.accessToken, flushMs: config.flushMs }, headers: [] }))
    })
    ws.on("message", (data: Buffer) => {
      const now = Date.now()
      let parsed: unknown
      try {
        parsed = JSON.parse(data.toString("utf8"))
      } catch {
        if (failures.length < 10) failures.push(`subscriber ${i}: a frame that is not JSON`)
        return
      }
      for (const message of (Array.isArray(parsed) ? parsed : [parsed]) as ReadonlyArray<RpcMessage>) {
        if (message._tag === "Chunk") {
          ws.send(JSON.stringify({ _tag: "Ack", requestId: message.requestId }))
          for (const batch of (message.values ?? []) as ReadonlyArray<{ kind?: string; devices?: ReadonlyArray<{ lastHeartbeat?: { recordedAt?: number } }> }>) {
            if (batch.kind === "snapshotEnd") {
              snapshots++
              snapshotMaxMs = Math.max(snapshotMaxMs ?? 0, now - openedAt)
            }
            if (batch.kind !== "changes") continue
            for (const device of batch.devices ?? []) {
              updates++
              const recordedAt = device.lastHeartbeat?.recordedAt
              if (typeof recordedAt === "number" && recordedAt >= config.recordFromEpochMs) latency.record(Math.max(0, now - recordedAt))
            }
          }
        } else if (message._tag === "Exit" || message._tag === "Defect") {
          ended++
          if (failures.length < 10) failures.push(`subscriber ${i}: stream ended: ${JSON.stringify(message).slice(0, 300)}`)
        }
      }
    })
    ws.on("error", (error) => {
      if (failures.length < 10) failures.push(`subscriber ${i}: ${error.message}`)
    })
    ws.on("close", (code) => {
      if (stopping) return
      ended++
      log(`subscriber ${i}: socket closed (${code})`)
    })
  }

  return {
    finish: async (): Promise<SubscribersResult> => {
      stopping = true
      for (const ws of sockets) ws.terminate()
      return { latency: latency.snapshot(), updates, snapshots, ended, failures, snapshotMaxMs }
    }
  }
}

runSidecar(start)
