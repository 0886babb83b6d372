/**
 * Wakes an absent device through FCM (Push) for one of its commands, records the send in
 * push_sends, and marks a token FCM rejected so it is never used again. The actor decides when
 * to wake (its retry policy); this decides nothing, it only does and records.
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { Push } from "../push/Push.js"

export type WakeResult = "sent" | "token_invalid" | "failed" | "disabled"

export class Waker extends Context.Tag("@nexmdm/engine/Waker")<
  Waker,
  {
    readonly wake: (input: {
      readonly deviceId: string
      readonly fcmToken: string
      readonly commandId: string
      readonly attempt: number
    }) => Effect.Effect<WakeResult>
  }
>() {}

export const layer = Layer.effect(
  Waker,
  Effect.gen(function* () {
    const push = yield* Push
    const sql = yield* SqlClient.SqlClient
    return Waker.of({
      wake: ({ deviceId, fcmToken, commandId, attempt }) =>
        Effect.gen(function* () {
          const outcome = yield* push.wake({ deviceId, fcmToken, commandId, reason: `command (attempt ${attempt})` })
          if (outcome._tag === "Disabled") return "disabled" as const
          const row = {
            messageId: outcome._tag === "Sent" ? outcome.messageId : null,
            errorCode: outcome._tag === "Sent" ? null : outcome.code,
            latencyMs: Math.round(outcome.latencyMs)
          }
          yield* sql`insert into push_sends (command_id, device_id, at, outcome, message_id, error_code, latency_ms)
            values (${commandId}, ${deviceId}, now(), ${outcome._tag}, ${row.messageId}, ${row.errorCode}, ${row.latencyMs})`
          if (outcome._tag === "TokenInvalid") {
            yield* sql`update devices set fcm_token_status = 'invalid' where id = ${deviceId} and fcm_token = ${fcmToken}`
            return "token_invalid" as const
          }
          return outcome._tag === "Sent" ? ("sent" as const) : ("failed" as const)
        }).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logWarning("recording a push send failed", cause).pipe(Effect.annotateLogs({ module: "Waker", deviceId, commandId })),
              "failed" as const
            )
          )
        )
    })
  })
)
