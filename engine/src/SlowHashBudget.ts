/**
 * Admission control for argon2: the one thing an unauthenticated request can make cost the engine
 * tens to hundreds of milliseconds of CPU (~150 ms for an admin password, ~25 ms for a device
 * secret at the default costs). On a small machine that time comes out of the core the device
 * plane acks heartbeats on, so it is rationed here, before any hashing starts.
 *
 * Where argon2 runs, all of it through this service:
 * - checks for callers who have not proved anything yet (`admit` + `verify`): admin login (against
 *   a dummy hash of the same cost when the email is unknown), the current password on a password
 *   change, an enrollment token's secret (when its id exists), a device secret on
 *   `POST /v1/device/ticket` (when the device exists);
 * - work for callers who already have (`trusted`): hashing a new password (after the current one,
 *   a valid reset token, or as an admin creating a user), a new device secret (after a valid
 *   enrollment token), a new enrollment token, a rehash at login, the start-up dummy hash.
 * Never argon2: API keys, refresh and reset tokens (SHA-256), session tickets (one HMAC).
 *
 * The policy, in the order it applies:
 * 1. Per source, synchronously and before any query: failed checks per minute per client IP (per
 *    plane) and per target (the account's email, the enrollment token id, the device id). Token
 *    buckets (internal/TokenBucket) that only failures drain, checked without taking; an empty one
 *    refuses at once. A target's limit is higher than an address's, so one address cannot
 *    throttle someone else's account, token or device; many addresses can (429 with Retry-After
 *    for everyone on that target, never a lockout: the bucket refills). Unknown emails and ids
 *    are limited like known ones, so a 429 tells nothing about what exists.
 * 2. Per lane (`admin`, `device`): argon2 time that did not end in a success is budgeted, in
 *    milliseconds per second of wall time (NEXMDM_SLOW_HASH_*_MS_PER_S, default 150 each: at most
 *    ~30 % of one core for both planes under attack), with a burst of one second's worth. A check
 *    starts only while the budget allows it, one at a time per line, in arrival order; a bounded
 *    line waits (NEXMDM_SLOW_HASH_QUEUE, NEXMDM_SLOW_HASH_MAX_WAIT_MS). An arrival that would
 *    wait longer or find its line full is refused at once, before the caller's lookup and without
 *    hashing. Two lines per lane: `clean` checks (none of their sources failed lately) may overdraw
 *    the budget by one second's worth and never wait behind `suspect` ones (a source that failed),
 *    which need a positive budget. A flood from known-bad sources therefore never delays a fresh
 *    one; a source loses its standing at its first failure, so sustained failures stay within the
 *    budget (plus one second's overdraft).
 * 3. One argon2 at a time in the whole engine, lanes and trusted work together: it never takes
 *    more than one core, whatever the number of requests.
 *
 * Trade-offs:
 * - Successes are not charged (their time is measured, not kept). A legitimate fleet enrolling,
 *   or renewing tickets after an outage, runs at argon2's own speed, one at a time, as before; only
 *   failures, which is what an attacker produces, are paced. Under a distributed attack with ever
 *   fresh sources (new addresses on new emails: the admin plane's worst case), legitimate checks
 *   share the clean line with hostile ones and are refused like them when it is full (with
 *   Retry-After; devices retry on 429).
 * - Separate lanes: a flood of bad logins never delays or refuses a device plane check, and the
 *   reverse; the lanes share only the executor (a device check may wait for one admin hash).
 *   Under an attack on the admin plane new logins may be refused while existing sessions keep
 *   working (refresh tokens and API keys need no argon2).
 * - Trusted work is neither budgeted nor refused: it follows a success, so an attacker cannot make
 *   it without valid credentials, and refusing it would fail a request that already passed.
 * - The budget counts wall time: on a busy core a hash takes longer and the budget tightens, which
 *   is the moment the core is needed elsewhere.
 *
 * Refusals: `SlowHashRefused` with a retry delay (the planes answer 429 RATE_LIMITED with
 * Retry-After); counted in `engine_slow_hash_refused_total{lane,reason}`, logged at most once a
 * minute per lane (counts only: no address, email or secret). Failed attempts are audited by the
 * callers as before; refusals are not (they cost nothing to refuse, auditing them would).
 * Also exported: `engine_slow_hash_seconds_total{lane,outcome}` (argon2 wall time) and
 * `engine_slow_hash_queued{lane}` (checks waiting or running).
 */
import { Clock, Context, Data, Duration, Effect, Exit, Layer, Metric, Option, Schedule } from "effect"
import { EngineConfig } from "./EngineConfig.js"
import { KeyedLimiter } from "./internal/TokenBucket.js"
import { registerCollectorScoped } from "./Metrics.js"

export type Lane = "admin" | "device"

const lanes: ReadonlyArray<Lane> = ["admin", "device"]

/** What a failed check counts against: the client's address, or what it tried to get into. */
export type SourceKind = "ip" | "account" | "token" | "device"

export interface Source {
  readonly kind: SourceKind
  readonly key: string
}

/** The client's address as a source, when known. */
export const ipSource = (ip: string | null | undefined): ReadonlyArray<Source> => (ip ? [{ kind: "ip", key: ip }] : [])

/**
 * How a check ended: `accepted` (the request goes on: not charged), `refused` (the secret was right
 * but the request is refused anyway, e.g. a disabled account or a used-up token: charged to the lane,
 * not counted against the sources, so the caller sees the precise error next time), `wrong_secret`
 * (charged, and counted against every source).
 */
export type Verdict = "accepted" | "refused" | "wrong_secret"

export type RefusalReason = SourceKind | "budget"

export class SlowHashRefused extends Data.TaggedError("SlowHashRefused")<{
  readonly lane: Lane
  /** A source's failures (`ip`, `account`, `token`, `device`) or the lane's budget or line (`budget`). */
  readonly reason: RefusalReason
  /** When trying again makes sense; at least one second. */
  readonly retryAfterMs: number
  readonly message: string
}> {}

/** A check that passed the per-source limits. */
export interface Admission {
  /**
   * Runs `check` (one argon2 verification) in the lane: waits for its turn and budget, or fails with
   * `SlowHashRefused` without running it. `verdict` classifies the result (a failure of `check`
   * itself counts as `refused`).
   */
  readonly verify: <A, E>(check: Effect.Effect<A, E>, verdict: (result: A) => Verdict) => Effect.Effect<A, E | SlowHashRefused>
  /** The check failed before any hashing (an unknown id): counts against the sources like a wrong secret. */
  readonly reject: Effect.Effect<void>
}

export class SlowHashBudget extends Context.Tag("@nexmdm/engine/SlowHashBudget")<
  SlowHashBudget,
  {
    /** Checks the per-source limits and whether the lane has room (no waiting, no hashing); refuses when not. */
    readonly admit: (lane: Lane, sources: ReadonlyArray<Source>) => Effect.Effect<Admission, SlowHashRefused>
    /** argon2 for a caller that already proved who it is: one at a time, never refused, not budgeted. */
    readonly trusted: <A, E>(lane: Lane, work: Effect.Effect<A, E>) => Effect.Effect<A, E>
    /** Checks waiting for or running in the lane now. */
    readonly queued: (lane: Lane) => number
  }
>() {}

// ---------------------------------------------------------------------------------------------
// Metrics

export const slowHashRefusedTotal = Metric.counter("engine_slow_hash_refused_total", {
  description:
    "argon2 checks refused (429) without hashing, by lane (admin, device) and reason (ip, account, token, device: that source's recent failures; budget: the lane's argon2 budget or line)",
  incremental: true
})

export const slowHashSecondsTotal = Metric.counter("engine_slow_hash_seconds_total", {
  description: "Wall time spent in argon2 (seconds), by lane and outcome (accepted, refused, wrong_secret; trusted = work after a success)",
  incremental: true
})

const refusedCounter = (lane: Lane, reason: RefusalReason) =>
  slowHashRefusedTotal.pipe(Metric.tagged("lane", lane), Metric.tagged("reason", reason))

const secondsCounter = (lane: Lane, outcome: Verdict | "trusted") =>
  slowHashSecondsTotal.pipe(Metric.tagged("lane", lane), Metric.tagged("outcome", outcome))

// ---------------------------------------------------------------------------------------------
// Implementation

const LOG_WINDOW_MS = 60_000
/** Weight of the newest sample in the lane's running estimates. */
const SMOOTHING = 0.2

/**
 * `clean`: none of the check's sources failed lately (every bucket full); `suspect`: one did. Each
 * standing has its own line, and clean checks may overdraw the budget by one second's worth, so
 * a suspect flood never delays them; only fresh sources (an address and a target with no failure)
 * get that, and each loses it at its first failure.
 */
type Standing = "clean" | "suspect"

interface LaneState {
  readonly lane: Lane
  readonly msPerSecond: number
  readonly burstMs: number
  /** argon2 milliseconds the lane may still spend; negative after a failure that cost more. */
  balance: number
  updatedAt: number
  /** Checks inside the lane (waiting for their turn or running), by standing. */
  readonly inside: Record<Standing, number>
  /** One check of each standing at a time, in arrival order. */
  readonly turn: Record<Standing, Effect.Semaphore>
  /** Estimates (running averages): how long a check runs, and what it is charged (0 for successes). */
  runMs: number
  chargedMs: number
  refusedSinceLog: Partial<Record<RefusalReason, number>>
  lastLogAt: number
}

const refill = (state: LaneState, now: number) => {
  const elapsed = Math.max(0, now - state.updatedAt)
  state.balance = Math.min(state.burstMs, state.balance + (elapsed * state.msPerSecond) / 1000)
  state.updatedAt = Math.max(state.updatedAt, now)
}

/** The balance a check of this standing may start above. */
const floorOf = (state: LaneState, standing: Standing) => (standing === "clean" ? -state.burstMs : 0)

/** Milliseconds until a check of this standing may start. */
const untilAllowed = (state: LaneState, standing: Standing) => {
  const short = floorOf(state, standing) - state.balance
  return short < 0 ? 0 : Math.floor((short * 1000) / state.msPerSecond) + 1
}

/** How long an arrival of this standing would wait: its line's run time, or the budget, whichever is longer. */
const projectedWait = (state: LaneState, standing: Standing) => {
  const ahead = state.inside[standing]
  const short = Math.max(0, floorOf(state, standing) - state.balance)
  return Math.max(ahead * state.runMs, ((short + ahead * state.chargedMs) * 1000) / state.msPerSecond)
}

const smooth = (estimate: number, sample: number) => (estimate === 0 ? sample : estimate + SMOOTHING * (sample - estimate))

const describe = (lane: Lane, reason: RefusalReason, seconds: number) =>
  reason === "budget"
    ? `too many ${lane === "admin" ? "password" : "secret"} checks right now: retry in ${seconds} s`
    : `too many failed attempts for this ${reason === "ip" ? "address" : reason}: retry in ${seconds} s`

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const maxWaitMs = Duration.toMillis(config.slowHashMaxWait)
  const perMinute = (n: number) => ({ ratePerSecond: n / 60, capacity: n })
  const perIp = new KeyedLimiter(perMinute(config.slowHashFailuresPerIpPerMinute))
  const perTarget = new KeyedLimiter(perMinute(config.slowHashFailuresPerTargetPerMinute))
  const bucketOf = (lane: Lane, source: Source): readonly [KeyedLimiter, string] =>
    source.kind === "ip" ? [perIp, `${lane}:${source.key}`] : [perTarget, `${source.kind}:${source.key}`]
  // The one executor: argon2 never runs twice at once in this process.
  const executor = yield* Effect.makeSemaphore(1)

  const startedAt = yield* Clock.currentTimeMillis
  const laneState = (lane: Lane, msPerSecond: number): Effect.Effect<LaneState> =>
    Effect.map(Effect.all([Effect.makeSemaphore(1), Effect.makeSemaphore(1)]), ([clean, suspect]) => ({
      lane,
      msPerSecond,
      burstMs: msPerSecond,
      balance: msPerSecond,
      updatedAt: startedAt,
      inside: { clean: 0, suspect: 0 },
      turn: { clean, suspect },
      runMs: 0,
      chargedMs: 0,
      refusedSinceLog: {},
      lastLogAt: Number.NEGATIVE_INFINITY
    }))
  const states: Record<Lane, LaneState> = {
    admin: yield* laneState("admin", config.slowHashAdminMsPerSecond),
    device: yield* laneState("device", config.slowHashDeviceMsPerSecond)
  }
  const queued = (lane: Lane) => states[lane].inside.clean + states[lane].inside.suspect

  // Series that read 0 before anything happened.
  for (const lane of lanes) {
    for (const reason of ["ip", "account", "token", "device", "budget"] as const) yield* Metric.incrementBy(refusedCounter(lane, reason), 0)
  }
  yield* registerCollectorScoped("engine_slow_hash_queued", "argon2 checks waiting for their turn or running, by lane", "gauge", () =>
    lanes.map((lane) => ({ labels: { lane }, value: queued(lane) }))
  )

  const refuse = (state: LaneState, reason: RefusalReason, waitMs: number, now: number) => {
    const retryAfterMs = Math.max(1000, Math.ceil(waitMs))
    const error = new SlowHashRefused({ lane: state.lane, reason, retryAfterMs, message: describe(state.lane, reason, Math.ceil(retryAfterMs / 1000)) })
    state.refusedSinceLog[reason] = (state.refusedSinceLog[reason] ?? 0) + 1
    let log: Effect.Effect<void> = Effect.void
    if (now - state.lastLogAt >= LOG_WINDOW_MS) {
      const refused = state.refusedSinceLog
      state.refusedSinceLog = {}
      state.lastLogAt = now
      log = Effect.logWarning("argon2 checks refused (429) since the last report").pipe(
        Effect.annotateLogs({ module: "SlowHashBudget", lane: state.lane, refused })
      )
    }
    return Effect.zipRight(Effect.zipRight(Metric.increment(refusedCounter(state.lane, reason)), log), Effect.fail(error))
  }

  const countFailure = (lane: Lane, sources: ReadonlyArray<Source>, now: number) => {
    for (const source of sources) {
      const [limiter, key] = bucketOf(lane, source)
      limiter.take(key, now)
    }
  }

  const standingOf = (lane: Lane, sources: ReadonlyArray<Source>, now: number): Standing =>
    sources.every((source) => {
      const [limiter, key] = bucketOf(lane, source)
      return limiter.untouched(key, now)
    })
      ? "clean"
      : "suspect"

  /** Runs `work` and measures it (Clock time, so tests can drive it). */
  const measured = <A, E>(work: Effect.Effect<A, E>) =>
    Effect.gen(function* () {
      const start = yield* Clock.currentTimeNanos
      const exit = yield* Effect.exit(work)
      const end = yield* Clock.currentTimeNanos
      return [exit, Number(end - start) / 1e6] as const
    })

  /** Holding its line's turn: waits until the budget allows (within the deadline), runs, settles. */
  const runTurn = <A, E>(
    state: LaneState,
    standing: Standing,
    sources: ReadonlyArray<Source>,
    check: Effect.Effect<A, E>,
    verdict: (result: A) => Verdict,
    deadline: number
  ): Effect.Effect<A, E | SlowHashRefused> =>
    Effect.gen(function* () {
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        refill(state, now)
        const wait = untilAllowed(state, standing)
        if (wait > 0) {
          if (now + wait > deadline) return yield* refuse(state, "budget", Math.max(wait, projectedWait(state, standing)), now)
          yield* Effect.sleep(Duration.millis(wait))
          continue
        }
        // Whatever ran while this one waited for the executor may have spent the budget: look again there.
        const ran = yield* executor.withPermits(1)(
          Effect.gen(function* () {
            refill(state, yield* Clock.currentTimeMillis)
            return untilAllowed(state, standing) > 0 ? Option.none() : Option.some(yield* measured(check))
          })
        )
        if (Option.isNone(ran)) continue
        const [exit, tookMs] = ran.value
        const outcome: Verdict = Exit.isSuccess(exit) ? verdict(exit.value) : "refused"
        const at = yield* Clock.currentTimeMillis
        refill(state, at)
        if (outcome !== "accepted") state.balance -= tookMs
        state.runMs = smooth(state.runMs, tookMs)
        state.chargedMs = smooth(state.chargedMs, outcome === "accepted" ? 0 : tookMs)
        if (outcome === "wrong_secret") countFailure(state.lane, sources, at)
        yield* Metric.incrementBy(secondsCounter(state.lane, outcome), tookMs / 1000)
        return yield* exit
      }
    })

  /** The lane's answer to an arrival now: undefined to let it in, else how long until it would fit. */
  const laneFull = (state: LaneState, standing: Standing, now: number): number | undefined => {
    refill(state, now)
    const projected = projectedWait(state, standing)
    return state.inside[standing] > config.slowHashQueue || projected > maxWaitMs ? Math.max(projected, untilAllowed(state, standing)) : undefined
  }

  const verify =
    (state: LaneState, sources: ReadonlyArray<Source>) =>
    <A, E>(check: Effect.Effect<A, E>, verdict: (result: A) => Verdict): Effect.Effect<A, E | SlowHashRefused> =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const standing = standingOf(state.lane, sources, now)
        const full = laneFull(state, standing, now)
        if (full !== undefined) return yield* refuse(state, "budget", full, now)
        state.inside[standing]++
        return yield* state.turn[standing]
          .withPermits(1)(runTurn(state, standing, sources, check, verdict, now + maxWaitMs))
          .pipe(Effect.ensuring(Effect.sync(() => void state.inside[standing]--)))
      }).pipe(Effect.withSpan("SlowHashBudget.verify", { attributes: { lane: state.lane } }))

  const admit = (lane: Lane, sources: ReadonlyArray<Source>): Effect.Effect<Admission, SlowHashRefused> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const state = states[lane]
      let wait = 0
      let reason: SourceKind | undefined
      for (const source of sources) {
        const [limiter, key] = bucketOf(lane, source)
        const sourceWait = limiter.peek(key, now)
        if (sourceWait > wait) {
          wait = sourceWait
          reason = source.kind
        }
      }
      if (reason !== undefined) return refuse(state, reason, wait, now)
      // The lane too, now: a check it could not take costs no lookup either (verify looks again).
      const full = laneFull(state, standingOf(lane, sources, now), now)
      if (full !== undefined) return refuse(state, "budget", full, now)
      return Effect.succeed<Admission>({
        verify: verify(state, sources),
        reject: Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => countFailure(lane, sources, at)))
      })
    })

  const trusted = <A, E>(lane: Lane, work: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.flatMap(executor.withPermits(1)(measured(work)), ([exit, tookMs]) => {
      // Same parameters as the lane's checks: a good first estimate of how long one runs.
      states[lane].runMs = smooth(states[lane].runMs, tookMs)
      return Effect.zipRight(Metric.incrementBy(secondsCounter(lane, "trusted"), tookMs / 1000), exit)
    })

  // Buckets that refilled completely hold nothing worth keeping.
  yield* Clock.currentTimeMillis.pipe(
    Effect.flatMap((now) =>
      Effect.sync(() => {
        perIp.prune(now)
        perTarget.prune(now)
      })
    ),
    Effect.repeat(Schedule.spaced(Duration.minutes(1))),
    Effect.forkScoped
  )

  return SlowHashBudget.of({ admit, trusted, queued })
})

export const layer = Layer.scoped(SlowHashBudget, make)
