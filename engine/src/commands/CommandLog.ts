/**
 * Write-behind for command transitions, like heartbeats: the actor never awaits SQL. Transitions of
 * one command that land in the same batch are folded into one UPDATE row (the newest status, the
 * first time of each stage); the UPDATE only ever moves a command forward, so a late "delivered"
 * cannot undo "succeeded". After each commit the persisted transitions are published to watchers.
 */
import { SqlClient } from "@effect/sql"
import type { CommandStatus } from "@nexmdm/protocol"
import { Context, Duration, Effect, Layer, PubSub, Stream } from "effect"
import type { CommandTransition } from "../CommandLifecycle.js"
import { statusRank } from "../CommandLifecycle.js"
import { EngineConfig } from "../EngineConfig.js"
import * as WriteBehind from "../internal/WriteBehind.js"

export class CommandLog extends Context.Tag("@nexmdm/engine/CommandLog")<
  CommandLog,
  {
    readonly record: (transition: CommandTransition) => boolean
    /** Transitions after they are persisted. */
    readonly updates: Stream.Stream<CommandTransition>
    readonly flush: Effect.Effect<void>
  }
>() {}

interface Folded {
  commandId: string
  status: CommandStatus
  at: number
  sentAt: number | null
  sentVia: string | null
  deliveredAt: number | null
  acknowledgedAt: number | null
  completedAt: number | null
  attempts: number | null
  result: string | null
  error: string | null
  unreachableAt: number | null
}

const fold = (transitions: ReadonlyArray<CommandTransition>): Array<Folded> => {
  const byId = new Map<string, Folded>()
  for (const t of transitions) {
    let row = byId.get(t.commandId)
    if (row === undefined) {
      row = {
        commandId: t.commandId,
        status: t.status,
        at: t.at,
        sentAt: null,
        sentVia: null,
        deliveredAt: null,
        acknowledgedAt: null,
        completedAt: null,
        attempts: null,
        result: null,
        error: null,
        unreachableAt: null
      }
      byId.set(t.commandId, row)
    }
    if (statusRank(t.status) >= statusRank(row.status)) row.status = t.status
    if (t.status === "sent") {
      row.sentAt ??= t.at
      row.sentVia = t.sentVia ?? row.sentVia
    }
    if (t.status === "delivered") row.deliveredAt ??= t.at
    if (t.status === "acknowledged") row.acknowledgedAt ??= t.at
    if (statusRank(t.status) === 4) row.completedAt ??= t.at
    if (t.attempts !== undefined) row.attempts = Math.max(row.attempts ?? 0, t.attempts)
    if (t.result !== undefined) row.result = JSON.stringify(t.result)
    if (t.error !== undefined) row.error = t.error
    if (t.unreachable === true) row.unreachableAt ??= t.at
  }
  return [...byId.values()]
}

const rankSql = (column: string) =>
  `(case ${column} when 'queued' then 0 when 'sent' then 1 when 'delivered' then 2 when 'acknowledged' then 3 else 4 end)`

const update = `
update commands c set
  status = case when ${rankSql("u.status")} > ${rankSql("c.status")} then u.status else c.status end,
  sent_at = coalesce(c.sent_at, to_timestamp(u.sent_at / 1000.0)),
  sent_via = coalesce(u.sent_via, c.sent_via),
  delivered_at = coalesce(c.delivered_at, to_timestamp(u.delivered_at / 1000.0)),
  acknowledged_at = coalesce(c.acknowledged_at, to_timestamp(u.acknowledged_at / 1000.0)),
  completed_at = case when ${rankSql("c.status")} = 4 then c.completed_at else to_timestamp(u.completed_at / 1000.0) end,
  attempts = greatest(c.attempts, coalesce(u.attempts, 0)),
  result = case when ${rankSql("c.status")} = 4 then c.result else coalesce(u.result::jsonb, c.result) end,
  error = case when ${rankSql("c.status")} = 4 then c.error else coalesce(u.error, c.error) end,
  unreachable_at = coalesce(c.unreachable_at, to_timestamp(u.unreachable_at / 1000.0))
from unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8[], $6::float8[], $7::float8[], $8::int4[],
  $9::text[], $10::text[], $11::float8[])
  as u(id, status, sent_at, sent_via, delivered_at, acknowledged_at, completed_at, attempts, result, error, unreachable_at)
where c.id = u.id`

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const updates = yield* PubSub.sliding<CommandTransition>(16_384)
  const queue = yield* WriteBehind.make<CommandTransition>({
    name: "CommandLog",
    shards: 1,
    shardOf: () => 0,
    maxBatch: 2000,
    // Short: an admin waits on a command's result, and fan-outs want their progress promptly.
    maxDelay: Duration.millis(5),
    capacity: 1_000_000,
    finalFlushTimeout: config.shutdownTimeout,
    write: (transitions) => {
      const rows = fold(transitions)
      return sql.unsafe(update, [
        rows.map((r) => r.commandId),
        rows.map((r) => r.status),
        rows.map((r) => r.sentAt),
        rows.map((r) => r.sentVia),
        rows.map((r) => r.deliveredAt),
        rows.map((r) => r.acknowledgedAt),
        rows.map((r) => r.completedAt),
        rows.map((r) => r.attempts),
        rows.map((r) => r.result),
        rows.map((r) => r.error),
        rows.map((r) => r.unreachableAt)
      ])
    },
    onWritten: (transitions) => {
      for (const transition of transitions) updates.unsafeOffer(transition)
    }
  })
  return CommandLog.of({
    record: queue.offer,
    updates: Stream.fromPubSub(updates),
    flush: queue.flush
  })
})

export const layer = Layer.scoped(CommandLog, make)
