import { A } from "@solidjs/router"
import { createResource, createSignal, For, onCleanup, onMount, Show } from "solid-js"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { dateTime, statusTone } from "../lib/format"
import { get } from "../lib/api"
import { watch } from "../lib/live"

interface BulkJobSummary {
  readonly id: string
  readonly commandType: string
  readonly target: unknown
  readonly total: number
  readonly createdBy: string
  readonly createdAt: string
  readonly byStatus: Record<string, number>
}

interface BulkJobCommand {
  readonly commandId: string
  readonly deviceId: string
  readonly deviceName: string | null
  readonly status: string
  readonly completedAt: string | null
  readonly error: string | null
  readonly result: unknown
}

const FINAL = ["succeeded", "failed", "expired", "cancelled"]
const done = (job: BulkJobSummary) => FINAL.reduce((sum, status) => sum + (job.byStatus[status] ?? 0), 0)

/** Progress as a bar split by outcome. */
function Progress(props: { readonly job: BulkJobSummary }) {
  const pct = (status: string) => `${((props.job.byStatus[status] ?? 0) / Math.max(1, props.job.total)) * 100}%`
  return (
    <div class="flex h-2 w-40 overflow-hidden rounded bg-slate-200 dark:bg-slate-800" role="progressbar" aria-valuenow={done(props.job)} aria-valuemax={props.job.total}>
      <div class="bg-emerald-500" style={{ width: pct("succeeded") }} />
      <div class="bg-red-500" style={{ width: pct("failed") }} />
      <div class="bg-slate-400" style={{ width: pct("expired") }} />
      <div class="bg-slate-300" style={{ width: pct("cancelled") }} />
    </div>
  )
}

export default function CommandsPage() {
  const [jobs, { refetch }] = createResource(() => get<Array<BulkJobSummary>>("/console/bulk-jobs", { limit: 50 }))
  const [openJob, setOpenJob] = createSignal<string | undefined>(undefined)
  const [outcomes, { refetch: refetchOutcomes }] = createResource(openJob, (id) => get<Array<BulkJobCommand>>(`/console/bulk-jobs/${id}/commands`))
  let pendingRefresh: ReturnType<typeof setTimeout> | undefined

  // Live progress: any command transition refreshes the counts (at most twice a second).
  onMount(() =>
    onCleanup(
      watch((client, token) => client.WatchCommands({ accessToken: token }), {
        onItem: () => {
          pendingRefresh ??= setTimeout(() => {
            pendingRefresh = undefined
            void refetch()
            if (openJob() !== undefined) void refetchOutcomes()
          }, 500)
        }
      })
    )
  )

  return (
    <div>
      <PageHeader title="Commands" subtitle="Bulk jobs with their live progress. Send one from the Fleet page: select devices, then Send command.">
        <Button variant="secondary" size="sm" onClick={() => void refetch()}>
          Refresh
        </Button>
      </PageHeader>
      <Show when={!jobs.error} fallback={<ErrorBanner message={String(jobs.error?.message)} onRetry={() => void refetch()} />}>
        <Show when={jobs() !== undefined} fallback={<Skeleton rows={4} />}>
          <Show when={jobs()!.length > 0} fallback={<EmptyState title="No bulk jobs yet">Select devices on the Fleet page and send them a command.</EmptyState>}>
            <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
              <table class={tableClass} data-testid="bulk-jobs">
                <thead>
                  <tr>
                    <th class={thClass}>Job</th>
                    <th class={thClass}>Progress</th>
                    <th class={thClass}>Outcomes</th>
                    <th class={thClass}>Created</th>
                    <th class={thClass} />
                  </tr>
                </thead>
                <tbody>
                  <For each={jobs()}>
                    {(job) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800" data-job-id={job.id}>
                        <td class={tdClass}>
                          <div class="font-medium">{job.commandType}</div>
                          <div class="font-mono text-xs text-slate-500">{job.id}</div>
                        </td>
                        <td class={tdClass}>
                          <Progress job={job} />
                          <div class="mt-1 text-xs tabular-nums" data-testid="job-done">
                            {done(job)} / {job.total} done
                          </div>
                        </td>
                        <td class={`${tdClass} flex flex-wrap gap-1`}>
                          <For each={Object.entries(job.byStatus)}>
                            {([status, count]) => (
                              <Badge tone={statusTone(status)}>
                                {status} {count}
                              </Badge>
                            )}
                          </For>
                        </td>
                        <td class={`${tdClass} text-xs`}>
                          {dateTime(job.createdAt)}
                          <div class="text-slate-500">by {job.createdBy}</div>
                        </td>
                        <td class={tdClass}>
                          <Button size="sm" variant="ghost" onClick={() => setOpenJob(openJob() === job.id ? undefined : job.id)}>
                            {openJob() === job.id ? "Hide devices" : "Devices"}
                          </Button>
                        </td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </div>
          </Show>
        </Show>
      </Show>
      <Show when={openJob()}>
        <Card title={`Per-device outcomes of ${openJob()}`} class="mt-4">
          <Show when={outcomes() !== undefined} fallback={<Skeleton rows={3} />}>
            <div class="max-h-[28rem] overflow-auto">
              <table class={tableClass}>
                <thead>
                  <tr>
                    <th class={thClass}>Device</th>
                    <th class={thClass}>Status</th>
                    <th class={thClass}>Completed</th>
                    <th class={thClass}>Result</th>
                  </tr>
                </thead>
                <tbody>
                  <For each={outcomes()}>
                    {(row) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800">
                        <td class={tdClass}>
                          <A href={`/devices/${row.deviceId}`} class="text-indigo-700 hover:underline dark:text-indigo-300">
                            {row.deviceName ?? row.deviceId}
                          </A>
                        </td>
                        <td class={tdClass}>
                          <Badge tone={statusTone(row.status)}>{row.status}</Badge>
                        </td>
                        <td class={`${tdClass} text-xs`}>{dateTime(row.completedAt)}</td>
                        <td class={`${tdClass} font-mono text-xs`}>{row.error ?? (row.result === null ? "—" : JSON.stringify(row.result))}</td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </div>
          </Show>
        </Card>
      </Show>
    </div>
  )
}
