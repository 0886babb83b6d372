/**
 * What happened during a run, second by second and phase by phase, built from the workers' ticks
 * (each worker sends, once a second, the latencies it recorded since its previous tick and its
 * cumulative counters).
 *
 * - The series (one point per second of the run: acks/s, p50/p95/p99, devices online) feeds the
 *   report's charts.
 * - Phases are named windows the scenario opens ("steady", "outage", "recovery", "abuse"...): each
 *   tick's latencies go to the histogram of the phase current when it arrived, so "ack p95 during
 *   the outage" is a lookup. A tick covers the second before it arrived: phase edges are blurred by
 *   up to a second, which is why scenarios keep phases several seconds long.
 */
import { type HistogramSnapshot, LatencyHistogram, round } from "./Stats.js"

export interface SeriesPoint {
  /** Seconds since the start of the load. */
  readonly t: number
  readonly hb_per_s: number
  readonly p50_ms: number | null
  readonly p95_ms: number | null
  readonly p99_ms: number | null
  readonly online: number
}

export interface TimelineEvent {
  readonly t: number
  readonly label: string
}

interface Second {
  readonly latency: LatencyHistogram
  acks: number
}

const orNull = (value: number): number | null => (Number.isFinite(value) ? round(value) : null)

export class Timeline {
  private readonly seconds = new Map<number, Second>()
  private readonly lastAcks = new Map<number, number>()
  private readonly online = new Map<number, number>()
  private readonly onlineBySecond = new Map<number, number>()
  private readonly phases = new Map<string, LatencyHistogram>()
  readonly events: Array<TimelineEvent> = []
  phase: string

  constructor(private readonly originMs: number, initialPhase = "steady") {
    this.phase = initialPhase
  }

  /** Seconds since the origin (performance.now() clock). */
  at(nowMs: number): number {
    return (nowMs - this.originMs) / 1000
  }

  /** Opens a phase: later ticks count towards it. Also marks the instant on the charts. */
  setPhase(name: string, nowMs: number, label: string = name): void {
    this.phase = name
    this.mark(label, nowMs)
  }

  mark(label: string, nowMs: number): void {
    this.events.push({ t: round(this.at(nowMs)), label })
  }

  /** One worker tick: its latencies since its last tick, its cumulative ack count, its devices online. */
  record(nowMs: number, worker: number, latencies: ReadonlyArray<HistogramSnapshot>, acksCumulative: number, online: number): void {
    const index = Math.max(0, Math.floor(this.at(nowMs)))
    let second = this.seconds.get(index)
    if (second === undefined) this.seconds.set(index, (second = { latency: new LatencyHistogram(), acks: 0 }))
    let phase = this.phases.get(this.phase)
    if (phase === undefined) this.phases.set(this.phase, (phase = new LatencyHistogram()))
    for (const snapshot of latencies) {
      second.latency.merge(snapshot)
      phase.merge(snapshot)
    }
    second.acks += acksCumulative - (this.lastAcks.get(worker) ?? 0)
    this.lastAcks.set(worker, acksCumulative)
    this.online.set(worker, online)
    let total = 0
    for (const n of this.online.values()) total += n
    this.onlineBySecond.set(index, total)
  }

  /** Latencies recorded while the phase was current (empty histogram when it never was). */
  phaseLatency(name: string): LatencyHistogram {
    return this.phases.get(name) ?? new LatencyHistogram()
  }

  phaseNames(): Array<string> {
    return [...this.phases.keys()]
  }

  /** One point per second from 0 to the last second seen; seconds without ticks repeat nothing (0 acks, null latency). */
  series(): Array<SeriesPoint> {
    const last = Math.max(-1, ...this.seconds.keys())
    const points: Array<SeriesPoint> = []
    let online = 0
    for (let t = 0; t <= last; t++) {
      const second = this.seconds.get(t)
      online = this.onlineBySecond.get(t) ?? online
      points.push({
        t,
        hb_per_s: second?.acks ?? 0,
        p50_ms: second === undefined ? null : orNull(second.latency.percentile(50)),
        p95_ms: second === undefined ? null : orNull(second.latency.percentile(95)),
        p99_ms: second === undefined ? null : orNull(second.latency.percentile(99)),
        online
      })
    }
    return points
  }
}
