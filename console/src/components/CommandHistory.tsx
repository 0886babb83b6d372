import type { CommandUpdate } from "@nexmdm/protocol/live"
import { A } from "@solidjs/router"
import { createEffect, createSignal, For, on, onCleanup, onMount, Show } from "solid-js"
import { createStore, reconcile } from "solid-js/store"
import { get, post } from "../lib/api"
import { dateTime } from "../lib/format"
import { watch } from "../lib/live"
import type { Command } from "../lib/model"
import { can } from "../lib/session"
import { statusTone } from "../lib/format"
import { Badge, EmptyState, ErrorBanner, Skeleton, tableClass, tdClass, thClass } from "./ui/Bits"
import { Button } from "./ui/Button"
import { toast, toastError } from "./ui/Toast"

const FINAL = new Set(["succeeded", "failed", "expired", "cancelled"])

/** Applies a live transition to a command (only ever forward: statuses never go back). */
export const applyUpdate = (command: Command, update: CommandUpdate): Command => ({
  ...command,
  status: FINAL.has(command.status) ? command.status : update.status,
  attempts: update.attempts ?? command.attempts,
  ...(update.result === undefined ? {} : { result: update.result }),
  ...(update.error === undefined ? {} : { error: update.error }),
  ...(FINAL.has(update.status) ? { completedAt: new Date(update.at).toISOString() } : {})
})

/** A device's commands (or every command with `deviceId` unset), live through WatchCommands. */
export function CommandHistory(props: { readonly deviceId?: string; readonly refreshKey?: number; readonly limit?: number }) {
  const [commands, setCommands] = createStore<{ list: Array<Command> }>({ list: [] })
  const [loading, setLoading] = createSignal(true)
  const [error, setError] = createSignal<string | undefined>(undefined)

  const load = async () => {
    if (props.deviceId === undefined) return setLoading(false)
    try {
      const list = await get<Array<Command>>(`/devices/${props.deviceId}/commands`, { limit: props.limit ?? 50 })
      setCommands("list", reconcile(list, { key: "id" }))
      setError(undefined)
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure))
    } finally {
      setLoading(false)
    }
  }

  onMount(() => {
    void load()
    onCleanup(
      watch((client, token) => client.WatchCommands({ accessToken: token, ...(props.deviceId === undefined ? {} : { deviceId: props.deviceId }) }), {
        onItem: (update) => {
          const index = commands.list.findIndex((command) => command.id === update.commandId)
          if (index === -1) void load()
          else setCommands("list", index, (command) => applyUpdate(command, update))
        },
        onRestart: () => void load()
      })
    )
  })
  // A command sent from this page: reload so it appears at once.
  createEffect(on(() => props.refreshKey, () => void load(), { defer: true }))

  const cancel = async (id: string) => {
    try {
      await post(`/commands/${id}/cancel`)
      toast("success", "Command cancelled")
      void load()
    } catch (failure) {
      toastError("Could not cancel", failure)
    }
  }

  return (
    <div data-testid="command-history">
      <Show when={error()}>{(message) => <ErrorBanner message={message()} onRetry={() => void load()} />}</Show>
      <Show when={!loading()} fallback={<Skeleton rows={3} />}>
        <Show when={commands.list.length > 0} fallback={<EmptyState title="No commands yet" />}>
          <div class="overflow-x-auto">
            <table class={tableClass}>
              <thead>
                <tr>
                  <th class={thClass}>Command</th>
                  <th class={thClass}>Status</th>
                  <th class={thClass}>Created</th>
                  <th class={thClass}>Result</th>
                  <th class={thClass} />
                </tr>
              </thead>
              <tbody>
                <For each={commands.list}>
                  {(command) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800" data-command-id={command.id} data-status={command.status}>
                      <td class={tdClass}>
                        <div class="font-medium">{command.type}</div>
                        <div class="font-mono text-xs text-slate-500">{command.id}</div>
                      </td>
                      <td class={tdClass}>
                        <Badge tone={statusTone(command.status)}>{command.status}</Badge>
                      </td>
                      <td class={`${tdClass} text-xs`}>
                        {dateTime(command.createdAt)}
                        <div class="text-slate-500">by {command.createdBy}</div>
                      </td>
                      <td class={`${tdClass} max-w-xs font-mono text-xs break-all`}>
                        {command.error ?? (command.result === null || command.result === undefined ? "—" : JSON.stringify(command.result))}
                      </td>
                      <td class={tdClass}>
                        <Show when={can("admin") && !FINAL.has(command.status)}>
                          <Button size="sm" variant="ghost" onClick={() => void cancel(command.id)}>
                            Cancel
                          </Button>
                        </Show>
                        <Show when={props.deviceId === undefined}>
                          <A href={`/devices/${command.deviceId}`} class="text-xs text-indigo-700 underline">
                            device
                          </A>
                        </Show>
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </div>
        </Show>
      </Show>
    </div>
  )
}
