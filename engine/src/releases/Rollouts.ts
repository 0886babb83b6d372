/**
 * Staged agent updates: a channel's current release goes to that channel's devices in stages
 * (cumulative percentages, e.g. 5, 25, 100) through `install_apk` commands (one bulk job per stage,
 * idempotent per stage). One checker fiber looks at every running rollout each
 * NEXMDM_ROLLOUT_CHECK_INTERVAL_MS:
 *
 *   - a member's outcome follows its command: succeeded, or failed (failed, expired, cancelled);
 *   - it halts the rollout by itself when, among the devices it tried to update, the failure rate
 *     goes above `maxFailureRate`, or among the updated ones the share now offline goes above
 *     `maxOfflineRate` (an agent that installs but then never comes back);
 *   - when no member is pending any more and the newest outcome is `soakSeconds` old (time for an
 *     update that crashes the agent to show as an offline device), it issues the next stage, or
 *     completes after the last.
 *
 * A device is on the beta channel when tagged `channel:beta`, else on stable. Devices that join the
 * channel later are picked up by the next stage (percentages are of the channel at that moment).
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Data, Effect, Layer, Option, Schedule } from "effect"
import { type CommandRejected, Commands } from "../commands/Commands.js"
import { DevicePlane } from "../DevicePlane.js"
import { EngineConfig } from "../EngineConfig.js"
import { randomId } from "../Secrets.js"
import { BETA_TAG, type ReleaseChannel, type ReleaseInfo, Releases } from "./Releases.js"

export type RolloutState = "running" | "paused" | "halted" | "completed"

export interface RolloutStageView {
  readonly percent: number
  readonly devices: number
  readonly succeeded: number
  readonly failed: number
  readonly pending: number
}

export interface RolloutView {
  readonly id: string
  readonly releaseId: string
  readonly versionCode: number
  readonly versionName: string
  readonly channel: ReleaseChannel
  readonly stages: ReadonlyArray<number>
  /** Index into `stages` of the stage issued last. */
  readonly currentStage: number
  readonly state: RolloutState
  readonly maxFailureRate: number
  readonly maxOfflineRate: number
  readonly soakSeconds: number
  readonly haltReason: string | null
  readonly startedBy: string
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly perStage: ReadonlyArray<RolloutStageView>
  /** Members that installed and are now offline. */
  readonly offlineAfterUpdate: number
}

export interface StartRollout {
  readonly channel: ReleaseChannel
  readonly stages: ReadonlyArray<number>
  readonly maxFailureRate: number
  readonly maxOfflineRate: number
  /** How long a finished stage is watched before the next one starts. */
  readonly soakSeconds: number
  readonly startedBy: string
}

export class RolloutRejected extends Data.TaggedError("RolloutRejected")<{
  readonly code: "NO_RELEASE" | "ROLLOUT_ACTIVE" | "NO_DEVICES" | "BAD_STAGES" | "ROLLOUT_NOT_FOUND" | "BAD_STATE"
  readonly message: string
}> {}

export const DEFAULT_STAGES: ReadonlyArray<number> = [5, 25, 100]

export class Rollouts extends Context.Tag("@nexmdm/engine/Rollouts")<
  Rollouts,
  {
    /** Starts rolling the channel's current release out; its first stage is issued at once. */
    readonly start: (input: StartRollout) => Effect.Effect<RolloutView, RolloutRejected | CommandRejected | SqlError.SqlError>
    readonly get: (id: string) => Effect.Effect<RolloutView, RolloutRejected | SqlError.SqlError>
    readonly list: (limit: number) => Effect.Effect<ReadonlyArray<RolloutView>, SqlError.SqlError>
    /** Stops issuing stages (commands already sent still run). */
    readonly pause: (id: string) => Effect.Effect<RolloutView, RolloutRejected | SqlError.SqlError>
    /** Continues a paused or halted rollout (a halt overridden by a person). */
    readonly resume: (id: string) => Effect.Effect<RolloutView, RolloutRejected | CommandRejected | SqlError.SqlError>
    /** One pass of the checker over every running rollout (also run periodically). */
    readonly check: Effect.Effect<void, CommandRejected | SqlError.SqlError>
  }
>() {}

/** Stages must be strictly increasing percentages ending at 100. */
export const validStages = (stages: ReadonlyArray<number>) =>
  stages.length > 0 &&
  stages.length <= 20 &&
  stages.every((percent, index) => Number.isInteger(percent) && percent > 0 && percent <= 100 && (index === 0 || percent > stages[index - 1]!)) &&
  stages[stages.length - 1] === 100

interface RolloutRow {
  id: string
  release_id: string
  channel: ReleaseChannel
  stages: ReadonlyArray<number>
  current_stage: number
  state: RolloutState
  max_failure_rate: number
  max_offline_rate: number
  soak_seconds: number
  halt_reason: string | null
  started_by: string
  created_at: Date
  updated_at: Date
}

interface Stats {
  readonly perStage: ReadonlyArray<RolloutStageView>
  readonly members: number
  readonly succeeded: number
  readonly failed: number
  readonly pending: number
  readonly offlineAfterUpdate: number
  /** When the newest member outcome was settled (null while none is). */
  readonly lastFinishedAt: Date | null
}

/** What the checker decides for a running rollout from its numbers: pure, for tests. */
export const decide = (
  rollout: {
    readonly stages: ReadonlyArray<number>
    readonly currentStage: number
    readonly maxFailureRate: number
    readonly maxOfflineRate: number
    readonly soakSeconds: number
  },
  stats: Pick<Stats, "members" | "succeeded" | "failed" | "pending" | "offlineAfterUpdate" | "lastFinishedAt">,
  now: number
): { readonly _tag: "Wait" } | { readonly _tag: "Halt"; readonly reason: string } | { readonly _tag: "Advance" } | { readonly _tag: "Complete" } => {
  const tried = stats.succeeded + stats.failed
  if (tried > 0 && stats.failed / stats.members > rollout.maxFailureRate) {
    return { _tag: "Halt", reason: `failure rate ${stats.failed}/${stats.members} above ${rollout.maxFailureRate}` }
  }
  if (stats.succeeded > 0 && stats.offlineAfterUpdate / stats.succeeded > rollout.maxOfflineRate) {
    return { _tag: "Halt", reason: `offline after update ${stats.offlineAfterUpdate}/${stats.succeeded} above ${rollout.maxOfflineRate}` }
  }
  if (stats.pending > 0) return { _tag: "Wait" }
  if (stats.lastFinishedAt !== null && now - stats.lastFinishedAt.getTime() < rollout.soakSeconds * 1000) return { _tag: "Wait" }
  return rollout.currentStage + 1 >= rollout.stages.length ? { _tag: "Complete" } : { _tag: "Advance" }
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const commands = yield* Commands
  const releases = yield* Releases
  const config = yield* EngineConfig
  const plane = yield* DevicePlane
  const baseUrl = Option.getOrElse(config.publicDeviceUrl, () => plane.url)

  const inChannel = (channel: ReleaseChannel) => (channel === "beta" ? sql`${BETA_TAG} = any(d.tags)` : sql`not (${BETA_TAG} = any(d.tags))`)

  const statsOf = (rolloutId: string, stages: ReadonlyArray<number>) =>
    Effect.gen(function* () {
      const rows = yield* sql<{ stage: number; outcome: string; offline: boolean; n: number; last_finished: Date | null }>`
        select m.stage, m.outcome, (d.presence = 'offline') as offline, count(*)::int as n, max(m.finished_at) as last_finished
        from release_rollout_devices m join devices d on d.id = m.device_id
        where m.rollout_id = ${rolloutId}
        group by 1, 2, 3`
      const perStage = stages.map((percent) => ({ percent, devices: 0, succeeded: 0, failed: 0, pending: 0 }))
      let offlineAfterUpdate = 0
      let lastFinishedAt: Date | null = null
      for (const row of rows) {
        if (row.last_finished !== null && (lastFinishedAt === null || row.last_finished > lastFinishedAt)) lastFinishedAt = row.last_finished
        const stage = perStage[row.stage]
        if (stage === undefined) continue
        stage.devices += row.n
        if (row.outcome === "succeeded") stage.succeeded += row.n
        else if (row.outcome === "failed") stage.failed += row.n
        else stage.pending += row.n
        if (row.outcome === "succeeded" && row.offline) offlineAfterUpdate += row.n
      }
      const sum = (pick: (stage: RolloutStageView) => number) => perStage.reduce((total, stage) => total + pick(stage), 0)
      return {
        perStage,
        members: sum((stage) => stage.devices),
        succeeded: sum((stage) => stage.succeeded),
        failed: sum((stage) => stage.failed),
        pending: sum((stage) => stage.pending),
        offlineAfterUpdate,
        lastFinishedAt
      } satisfies Stats
    })

  const viewOf = (row: RolloutRow, release: Option.Option<ReleaseInfo>) =>
    Effect.map(statsOf(row.id, row.stages), (stats) => ({
      id: row.id,
      releaseId: row.release_id,
      versionCode: Option.match(release, { onNone: () => 0, onSome: (info) => info.versionCode }),
      versionName: Option.match(release, { onNone: () => "", onSome: (info) => info.versionName }),
      channel: row.channel,
      stages: row.stages.map(Number),
      currentStage: row.current_stage,
      state: row.state,
      maxFailureRate: Number(row.max_failure_rate),
      maxOfflineRate: Number(row.max_offline_rate),
      soakSeconds: row.soak_seconds,
      haltReason: row.halt_reason,
      startedBy: row.started_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      perStage: stats.perStage,
      offlineAfterUpdate: stats.offlineAfterUpdate
    }))

  const row = (id: string) =>
    Effect.flatMap(sql<RolloutRow>`select * from release_rollouts where id = ${id}`, ([found]) =>
      found === undefined ? Effect.fail(new RolloutRejected({ code: "ROLLOUT_NOT_FOUND", message: `no rollout ${id}` })) : Effect.succeed(found)
    )

  const get = (id: string) => Effect.flatMap(row(id), (found) => Effect.flatMap(releases.get(found.release_id), (release) => viewOf(found, release)))

  const list = (limit: number) =>
    Effect.flatMap(sql<RolloutRow>`select * from release_rollouts order by created_at desc, id desc limit ${limit}`, (rows) =>
      Effect.forEach(rows, (found) => Effect.flatMap(releases.get(found.release_id), (release) => viewOf(found, release)))
    )

  /**
   * Adds devices until stage `index` covers its share of the channel, each with an install_apk
   * command; the commands are dispatched after the transaction committed.
   */
  const issueStage = (rollout: RolloutRow, index: number) =>
    Effect.gen(function* () {
      const release = yield* Effect.flatMap(releases.get(rollout.release_id), (found) =>
        Option.isNone(found) ? Effect.dieMessage(`rollout ${rollout.id} lost its release`) : Effect.succeed(found.value)
      )
      const dispatch = yield* sql.withTransaction(
        Effect.gen(function* () {
          const [counts] = yield* sql<{ eligible: number; members: number }>`
            select (select count(*)::int from devices d where d.retired_at is null and ${inChannel(rollout.channel)}) as eligible,
              (select count(*)::int from release_rollout_devices where rollout_id = ${rollout.id}) as members`
          const wanted = Math.ceil(((rollout.stages[index] ?? 100) / 100) * (counts?.eligible ?? 0))
          const missing = wanted - (counts?.members ?? 0)
          yield* sql`update release_rollouts set current_stage = ${index}, updated_at = now() where id = ${rollout.id}`
          if (missing <= 0) return Effect.void
          // A stable pseudo-random order per rollout: stage 1 is not always the oldest devices.
          const picked = yield* sql<{ id: string }>`
            select d.id from devices d
            where d.retired_at is null and ${inChannel(rollout.channel)}
              and not exists (select 1 from release_rollout_devices m where m.rollout_id = ${rollout.id} and m.device_id = d.id)
            order by md5(${rollout.id} || d.id) limit ${missing}`
          if (picked.length === 0) return Effect.void
          const job = yield* commands.insertBulk({
            type: "install_apk",
            params: {
              url: `${baseUrl}${release.downloadPath}?client=device`,
              sha256: release.sha256Hex,
              packageName: release.packageName,
              versionCode: release.versionCode
            },
            target: { deviceIds: picked.map((device) => device.id) },
            idempotencyKey: `${rollout.id}:stage:${index}`,
            createdBy: `rollout:${rollout.id}`
          })
          yield* sql`
            insert into release_rollout_devices (rollout_id, device_id, stage, command_id)
            select ${rollout.id}, c.device_id, ${index}, c.id from commands c where c.bulk_job_id = ${job.jobId}
            on conflict do nothing`
          return job.dispatch
        })
      )
      yield* dispatch
      yield* Effect.logInfo("rollout stage issued").pipe(Effect.annotateLogs({ module: "Rollouts", rolloutId: rollout.id, stage: index }))
    })

  /** Member outcomes follow their commands. */
  const settleOutcomes = (rolloutId: string) =>
    sql`
      update release_rollout_devices m
      set outcome = case when c.status = 'succeeded' then 'succeeded' else 'failed' end,
        finished_at = coalesce(c.completed_at, now())
      from commands c
      where m.rollout_id = ${rolloutId} and m.outcome = 'pending' and c.id = m.command_id
        and c.status in ('succeeded', 'failed', 'expired', 'cancelled')`

  const checkOne = (rollout: RolloutRow) =>
    Effect.gen(function* () {
      yield* settleOutcomes(rollout.id)
      const stats = yield* statsOf(rollout.id, rollout.stages)
      const decision = decide(
        {
          stages: rollout.stages,
          currentStage: rollout.current_stage,
          maxFailureRate: Number(rollout.max_failure_rate),
          maxOfflineRate: Number(rollout.max_offline_rate),
          soakSeconds: rollout.soak_seconds
        },
        stats,
        Date.now()
      )
      switch (decision._tag) {
        case "Wait":
          return
        case "Halt":
          yield* sql`update release_rollouts set state = 'halted', halt_reason = ${decision.reason}, updated_at = now()
            where id = ${rollout.id} and state = 'running'`
          return yield* Effect.logWarning("rollout halted").pipe(Effect.annotateLogs({ module: "Rollouts", rolloutId: rollout.id, reason: decision.reason }))
        case "Complete":
          yield* sql`update release_rollouts set state = 'completed', updated_at = now() where id = ${rollout.id} and state = 'running'`
          return yield* Effect.logInfo("rollout completed").pipe(Effect.annotateLogs({ module: "Rollouts", rolloutId: rollout.id }))
        case "Advance":
          return yield* issueStage(rollout, rollout.current_stage + 1)
      }
    })

  /** Serialises checks (the periodic fiber and API calls) within this engine. */
  const checking = yield* Effect.makeSemaphore(1)

  const check = checking.withPermits(1)(
    Effect.flatMap(sql<RolloutRow>`select * from release_rollouts where state = 'running' order by created_at`, (rows) =>
      Effect.forEach(rows, checkOne, { discard: true })
    )
  ).pipe(Effect.withSpan("Rollouts.check"))

  const start = (input: StartRollout) =>
    Effect.gen(function* () {
      if (!validStages(input.stages)) {
        return yield* new RolloutRejected({ code: "BAD_STAGES", message: "stages must be increasing whole percentages ending at 100" })
      }
      const release = yield* releases.current(input.channel)
      if (Option.isNone(release)) return yield* new RolloutRejected({ code: "NO_RELEASE", message: `${input.channel} has no release to roll out` })
      const [active] = yield* sql<{ id: string }>`select id from release_rollouts where channel = ${input.channel} and state in ('running', 'paused')`
      if (active !== undefined) return yield* new RolloutRejected({ code: "ROLLOUT_ACTIVE", message: `rollout ${active.id} is still active on ${input.channel}` })
      const [devices] = yield* sql<{ n: number }>`select count(*)::int as n from devices d where d.retired_at is null and ${inChannel(input.channel)}`
      if ((devices?.n ?? 0) === 0) return yield* new RolloutRejected({ code: "NO_DEVICES", message: `no device is on ${input.channel}` })
      const id = `ro_${randomId(20)}`
      const [created] = yield* sql<RolloutRow>`
        insert into release_rollouts (id, release_id, channel, stages, state, max_failure_rate, max_offline_rate, soak_seconds, started_by)
        values (${id}, ${release.value.id}, ${input.channel}, ${`{${input.stages.join(",")}}`}::integer[], 'running',
          ${input.maxFailureRate}, ${input.maxOfflineRate}, ${input.soakSeconds}, ${input.startedBy})
        returning *`
      yield* checking.withPermits(1)(issueStage(created!, 0))
      return yield* get(id)
    }).pipe(Effect.withSpan("Rollouts.start"))

  const transition = (id: string, from: ReadonlyArray<RolloutState>, to: RolloutState) =>
    Effect.gen(function* () {
      const current = yield* row(id)
      if (!from.includes(current.state)) {
        return yield* new RolloutRejected({ code: "BAD_STATE", message: `rollout ${id} is ${current.state}, not ${from.join(" or ")}` })
      }
      yield* sql`update release_rollouts set state = ${to}, halt_reason = ${to === "paused" ? "paused by an administrator" : null}, updated_at = now()
        where id = ${id}`
    })

  const pause = (id: string) => Effect.zipRight(transition(id, ["running"], "paused"), get(id))
  const resume = (id: string) => transition(id, ["paused", "halted"], "running").pipe(Effect.zipRight(check), Effect.zipRight(get(id)))

  yield* check.pipe(
    Effect.catchAllCause((cause) => Effect.logError("rollout check failed", cause).pipe(Effect.annotateLogs({ module: "Rollouts" }))),
    Effect.repeat(Schedule.spaced(config.rolloutCheckInterval)),
    Effect.forkScoped
  )

  return Rollouts.of({ start, get, list, pause, resume, check })
})

/** Needs SqlClient, Commands, Releases, DevicePlane and EngineConfig; runs the checker in its scope. */
export const layer = Layer.scoped(Rollouts, make)
