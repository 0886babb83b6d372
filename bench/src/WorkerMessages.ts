/**
 * Messages between the bench orchestrator (main.ts) and its simulator workers (Simulator.ts),
 * sent over the child_process IPC channel as JSON.
 *
 * Life of a worker: init -> (enroll, connect) -> ready -> start -> ticks every second -> stop ->
 * drained -> durable -> final -> close -> exit.
 */
import type { HistogramSnapshot } from "./Stats.js"

export interface WorkerConfig {
  readonly workerIndex: number
  /** Device plane base URL, e.g. http://127.0.0.1:8080 */
  readonly target: string
  readonly token: string
  /** Global device indices this worker simulates (interleaved, so every worker's load is even). */
  readonly indices: ReadonlyArray<number>
  readonly totalDevices: number
  /** Share of all devices that use the HTTP fallback instead of a WebSocket. */
  readonly httpShare: number
  readonly hardwareIdPrefix: string
  /** Heartbeats per device per second. */
  readonly rateHz: number
  readonly enrollConcurrency: number
  readonly connectConcurrency: number
  /**
   * Closed loop (the `max` scenario): each device sends its next heartbeat as soon as the previous
   * one is acked, instead of on the 1/rateHz schedule.
   */
  readonly closedLoop?: boolean
}

export type ParentMessage =
  | { readonly type: "init"; readonly config: WorkerConfig }
  /** Start sending at this wall-clock time (epoch ms), so all workers share one schedule. */
  | {
    readonly type: "start"
    readonly atEpochMs: number
    /** Latencies of the first warmupMs are not recorded (JIT warm-up of a fresh engine and simulator). */
    readonly warmupMs: number
  }
  | { readonly type: "stop"; readonly atEpochMs: number; readonly drainTimeoutMs: number; readonly durableTimeoutMs: number }
  | { readonly type: "final" }
  | { readonly type: "close" }
  /** Start (on) or end a window whose heartbeat ack latencies are recorded separately (the fan-out). */
  | { readonly type: "mark"; readonly on: boolean }
  /** Ask for the command receipts since the last report (answered with a "commands" message). */
  | { readonly type: "commands" }

export interface Counters {
  /** Distinct heartbeats produced (one per device per tick). */
  readonly produced: number
  /** Heartbeat transmissions, first sends and resends. */
  readonly sent: number
  readonly resent: number
  /** Acks received (including acks of resends). */
  readonly acks: number
  readonly backpressure: number
  readonly disconnects: number
  readonly reconnects: number
  readonly ticketRenewals: number
  readonly violations: number
  readonly errors: Readonly<Record<string, number>>
}

export interface DeviceReport {
  readonly deviceId: string
  readonly http: boolean
  /** First seq this run used (1 on a fresh device; welcome.durableSeq + 1 after re-enrolment). */
  readonly firstSeq: number
  /** Highest seq produced. */
  readonly lastSeq: number
  /** Acked seqs as flat sorted disjoint ranges [lo, hi, lo, hi, ...]. */
  readonly acked: ReadonlyArray<number>
  readonly durableSeq: number
}

export type WorkerMessage =
  | { readonly type: "log"; readonly text: string }
  | { readonly type: "progress"; readonly phase: "enroll" | "connect"; readonly done: number; readonly failed: number }
  | {
    readonly type: "ready"
    readonly devices: ReadonlyArray<{ readonly deviceId: string; readonly firstSeq: number }>
    readonly http: number
    readonly failed: number
    readonly reenrolled: number
    readonly failures: ReadonlyArray<string>
  }
  | {
    readonly type: "tick"
    readonly counters: Counters
    /** Latencies recorded since the previous tick. */
    readonly ws: HistogramSnapshot
    readonly http: HistogramSnapshot
    /** How late the scheduler ran heartbeats (ms), max since the previous tick: > a few ms = simulator saturated. */
    readonly schedLagMaxMs: number
    /** WebSocket devices with a welcomed socket now, plus every HTTP device (always "online"). */
    readonly online: number
    /** Date.now() of the latest welcome any device of this worker received (0: none yet). */
    readonly lastWelcomeEpochMs: number
  }
  | {
    readonly type: "drained"
    readonly counters: Counters
    /** Heartbeats sent but never acked before the drain timeout. */
    readonly unacked: number
    /** Distinct (device, seq) acked so far. */
    readonly ackedDistinct: number
    readonly cpuUserUs: number
    readonly cpuSystemUs: number
    readonly steadyWallMs: number
  }
  | {
    readonly type: "durable"
    /** ms from the stop instant until the last WebSocket device saw durableSeq >= its highest acked seq (null: none). */
    readonly wsLagMs: number | null
    /** Same for HTTP devices, which learn durableSeq only by polling (every 200 ms): coarse. */
    readonly httpLagMs: number | null
    readonly notDurable: number
  }
  | { readonly type: "final"; readonly devices: ReadonlyArray<DeviceReport>; readonly counters: Counters }
  | {
    readonly type: "commands"
    /** First arrival of each command frame since the previous report, epoch ms (Date.now()). */
    readonly receipts: ReadonlyArray<{ readonly id: string; readonly deviceId: string; readonly atEpochMs: number }>
    /** Totals since the worker started. */
    readonly signatureFailures: number
    /** Engine `error` frames with a commandId (UNKNOWN_COMMAND, SIGNATURE_INVALID). */
    readonly rejections: number
    /** Command frames received again (resends), answered but not counted as receipts. */
    readonly duplicates: number
    /** Heartbeat ack latencies of the marked window. */
    readonly mark: HistogramSnapshot
  }
