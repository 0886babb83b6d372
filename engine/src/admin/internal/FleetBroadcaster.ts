/**
 * The shared half of WatchFleet: one broadcaster per flush period collects the devices that
 * changed (one registry subscription, a dirty Map: a device changing 20 times in a period is one
 * entry), and every period renders them once (`render`, e.g. to JSON text) and hands the same
 * rendered flush to every member. Per member the cost is a pointer and a wake-up.
 *
 * Members are consumers with their own pace (an rpc stream writes a chunk, then waits for the
 * client's ack before it asks for the next). A member holds at most one undelivered flush. If a
 * second flush arrives before it took the first, it stops holding flushes and only remembers the
 * sequence number of the first one it missed; when it asks again it gets a catch-up rendered for
 * it alone: every device flushed since then, with its view as of now. So a slow member costs O(1)
 * memory whatever its lag, never delays the broadcaster or other members, and when it catches up
 * it receives the latest state of each device once, not the flushes it missed.
 *
 * The broadcaster remembers, per device, the last flush it was in and its view then (`flushed`,
 * bounded by the fleet size) to build catch-ups.
 */
import { Duration, Effect, Option, Queue, Schedule, type Scope } from "effect"
import type { DeviceRegistry, DeviceView } from "../../DeviceRegistry.js"

export interface Member<B> {
  /** The fleet as of joining (after the join: no change falls between it and the first flush). */
  readonly snapshot: ReadonlyArray<DeviceView>
  /** Waits for the next flush (shared), or returns a catch-up if this member missed flushes. */
  readonly next: Effect.Effect<ReadonlyArray<B>>
}

export interface FleetBroadcaster<B> {
  /** Becomes a member until the scope closes. */
  readonly join: Effect.Effect<Member<B>, never, Scope.Scope>
  /** Runs one flush now (the broadcaster's fiber runs it every period). */
  readonly flush: Effect.Effect<void>
  /** For tests and metrics: members, those behind (missed a flush), those holding a flush, flushes so far, devices waiting. */
  readonly stats: () => {
    readonly members: number
    readonly behind: number
    readonly held: number
    readonly flushes: number
    readonly dirty: number
  }
}

interface Flush<B> {
  readonly seq: number
  readonly batches: ReadonlyArray<B>
}

interface State<B> {
  /** A flush not taken yet (at most one). */
  pending: Flush<B> | undefined
  /** Set when a flush arrived while `pending` was still there: the first flush not delivered. */
  behindFrom: number | undefined
  /** The waiting `next`, if any. */
  wake: ((batches: ReadonlyArray<B>) => void) | undefined
}

export const make = <B>(options: {
  readonly registry: DeviceRegistry["Type"]
  readonly period: Duration.DurationInput
  /** Renders the views of one flush or catch-up (non-empty) as the batches a member sends. */
  readonly render: (views: ReadonlyArray<DeviceView>) => ReadonlyArray<B>
}): Effect.Effect<FleetBroadcaster<B>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { registry, render } = options
    const members = new Set<State<B>>()
    const dirty = new Map<string, DeviceView>()
    const flushed = new Map<string, { seq: number; view: DeviceView }>()
    let seq = 0

    const queue = yield* registry.subscribe
    yield* Queue.takeBetween(queue, 1, Number.MAX_SAFE_INTEGER).pipe(
      Effect.tap((views) =>
        Effect.sync(() => {
          for (const view of views) dirty.set(view.deviceId, view)
        })
      ),
      Effect.forever,
      Effect.forkScoped
    )

    const deliver = (member: State<B>, flush: Flush<B>) => {
      if (member.wake !== undefined) {
        const wake = member.wake
        member.wake = undefined
        wake(flush.batches)
      } else if (member.behindFrom !== undefined) {
        // Already behind: its catch-up will include this flush's devices.
      } else if (member.pending === undefined) {
        member.pending = flush
      } else {
        member.behindFrom = member.pending.seq
        member.pending = undefined
      }
    }

    const flush = Effect.sync(() => {
      if (dirty.size === 0) return
      if (members.size === 0) {
        // Nobody to tell: a member that joins later starts from a snapshot taken then.
        dirty.clear()
        flushed.clear()
        return
      }
      seq++
      const views: Array<DeviceView> = []
      for (const [id, marked] of dirty) {
        // The view as of now (a later change than the one that marked it is fine: it is newer).
        const view = Option.getOrElse(registry.view(id), () => marked)
        views.push(view)
        const entry = flushed.get(id)
        if (entry === undefined) flushed.set(id, { seq, view })
        else {
          entry.seq = seq
          entry.view = view
        }
      }
      dirty.clear()
      const current: Flush<B> = { seq, batches: render(views) }
      for (const member of members) deliver(member, current)
    })

    yield* flush.pipe(
      Effect.catchAllCause((cause) => Effect.logError("fleet flush failed", cause).pipe(Effect.annotateLogs({ module: "FleetBroadcaster" }))),
      Effect.repeat(Schedule.fixed(options.period)),
      Effect.delay(options.period),
      Effect.forkScoped
    )

    const catchUp = (from: number): ReadonlyArray<B> => {
      const views: Array<DeviceView> = []
      for (const [id, entry] of flushed) if (entry.seq >= from) views.push(Option.getOrElse(registry.view(id), () => entry.view))
      return views.length === 0 ? [] : render(views)
    }

    const next = (member: State<B>): Effect.Effect<ReadonlyArray<B>> =>
      Effect.suspend(() => {
        if (member.behindFrom !== undefined) {
          const from = member.behindFrom
          member.behindFrom = undefined
          const batches = catchUp(from)
          if (batches.length > 0) return Effect.succeed(batches)
        }
        if (member.pending !== undefined) {
          const batches = member.pending.batches
          member.pending = undefined
          return Effect.succeed(batches)
        }
        return Effect.async<ReadonlyArray<B>>((resume) => {
          member.wake = (batches) => resume(Effect.succeed(batches))
          return Effect.sync(() => {
            member.wake = undefined
          })
        })
      })

    const join = Effect.acquireRelease(
      // One synchronous step: no flush runs between joining and the snapshot.
      Effect.sync(() => {
        const member: State<B> = { pending: undefined, behindFrom: undefined, wake: undefined }
        members.add(member)
        return { member, snapshot: registry.snapshot() }
      }),
      ({ member }) =>
        Effect.sync(() => {
          members.delete(member)
        })
    ).pipe(Effect.map(({ member, snapshot }): Member<B> => ({ snapshot, next: next(member) })))

    const stats = () => {
      let behind = 0
      let held = 0
      for (const member of members) {
        if (member.behindFrom !== undefined) behind++
        if (member.pending !== undefined) held++
      }
      return { members: members.size, behind, held, flushes: seq, dirty: dirty.size }
    }

    return { join, flush, stats }
  })
