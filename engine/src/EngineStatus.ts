/**
 * The engine's lifecycle phase: "starting" until every plane is up, "ready" while serving,
 * "draining" once shutdown began. /readyz reads it; the lead's start-up and shutdown code sets it.
 */
import { Context, Effect, Layer, SubscriptionRef } from "effect"

export type EnginePhase = "starting" | "ready" | "draining"

export class EngineStatus extends Context.Tag("@nexmdm/engine/EngineStatus")<
  EngineStatus,
  {
    /** Current phase; subscribe to `changes` to follow it. */
    readonly phase: SubscriptionRef.SubscriptionRef<EnginePhase>
  }
>() {
  /** A fresh status in phase "starting". */
  static readonly layer = Layer.effect(
    EngineStatus,
    Effect.map(SubscriptionRef.make<EnginePhase>("starting"), (phase) => ({ phase }))
  )
}
