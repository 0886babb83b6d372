/**
 * Live progress while the load runs: a cli-progress bar on stderr when stderr is a terminal
 * (elapsed seconds of the run, current acks/s, p95 of the last seconds, devices online, phase), and
 * a plain line every few seconds otherwise (CI logs, pipes). stdout stays free for the result line.
 */
import cliProgress from "cli-progress"

export interface ProgressFigures {
  readonly elapsedS: number
  readonly rate: number
  readonly p95Ms: number | null
  readonly online: number
  readonly phase: string
  /** Extra text for the plain line (backpressure, RSS...). */
  readonly detail: string
}

export class Progress {
  private readonly bar: cliProgress.SingleBar | null
  private lastLineAt = Number.NEGATIVE_INFINITY

  constructor(
    private readonly totalS: number,
    private readonly line: (text: string) => void,
    tty: boolean = process.stderr.isTTY === true,
    private readonly lineEveryS = 5
  ) {
    this.bar = tty
      ? new cliProgress.SingleBar(
        {
          format: "{phase} |{bar}| {value}/{total} s | {rate} hb/s | p95 {p95} | online {online}",
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          barsize: 30
        },
        cliProgress.Presets.shades_classic
      )
      : null
    this.bar?.start(Math.max(1, Math.round(totalS)), 0, { phase: "warmup", rate: "0", p95: "n/a", online: 0 })
  }

  update(figures: ProgressFigures): void {
    const p95 = figures.p95Ms === null ? "n/a" : `${figures.p95Ms.toFixed(figures.p95Ms < 10 ? 2 : 0)} ms`
    if (this.bar !== null) {
      if (figures.elapsedS > this.totalS) this.bar.setTotal(Math.round(figures.elapsedS))
      this.bar.update(Math.round(figures.elapsedS), { phase: figures.phase, rate: figures.rate.toFixed(0), p95, online: figures.online })
      return
    }
    if (figures.elapsedS - this.lastLineAt < this.lineEveryS) return
    this.lastLineAt = figures.elapsedS
    this.line(
      `${figures.elapsedS.toFixed(0).padStart(4)} s  ${figures.phase.padEnd(9)} ${figures.rate.toFixed(0).padStart(6)} hb/s  p95 ${p95}  online ${figures.online}${figures.detail.length > 0 ? `  ${figures.detail}` : ""}`
    )
  }

  stop(): void {
    this.bar?.stop()
  }
}
