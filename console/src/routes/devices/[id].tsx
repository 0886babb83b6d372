import type { DeviceLive } from "@nexmdm/protocol/live"
import { A, useParams } from "@solidjs/router"
import { createEffect, createMemo, createResource, createSignal, For, on, onCleanup, Show } from "solid-js"
import { AgentCostCard, costColumns } from "../../components/AgentCostCard"
import { Chart } from "../../components/Chart"
import { CommandForm } from "../../components/CommandForm"
import { CommandHistory } from "../../components/CommandHistory"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, Stat, Tabs } from "../../components/ui/Bits"
import { Button } from "../../components/ui/Button"
import { Dialog } from "../../components/ui/Dialog"
import { Field } from "../../components/ui/Field"
import { toast, toastError } from "../../components/ui/Toast"
import { ApiError, download, get, patch, post, toCsv } from "../../lib/api"
import { dateTime, megabytes, presenceLabel, presenceTone, relativeTime } from "../../lib/format"
import { watch } from "../../lib/live"
import type { AuditRecord, Command, Device, DeviceEvent, HeartbeatSeries, Page } from "../../lib/model"
import { now } from "../../lib/now"
import { appendPoint, bucketFor, type Columns, emptyColumns, toColumns } from "../../lib/series"
import { can } from "../../lib/session"
import { mergeTimeline } from "../../lib/timeline"

const RANGES = [
  { value: "1h", label: "1 hour", ms: 3600_000 },
  { value: "6h", label: "6 hours", ms: 6 * 3600_000 },
  { value: "24h", label: "24 hours", ms: 24 * 3600_000 },
  { value: "48h", label: "48 hours", ms: 48 * 3600_000 },
  { value: "7d", label: "7 days", ms: 7 * 86400_000 }
]

export default function DevicePage() {
  const params = useParams()
  const id = () => params["id"]!
  const [device, { mutate, refetch }] = createResource(id, (deviceId) => get<Device>(`/devices/${deviceId}`))
  const [live, setLive] = createSignal<DeviceLive | undefined>(undefined)
  const [range, setRange] = createSignal("1h")
  const [columns, setColumns] = createSignal<Columns>(emptyColumns())
  const [tab, setTab] = createSignal("overview")
  const [commandsKey, setCommandsKey] = createSignal(0)
  const [editOpen, setEditOpen] = createSignal(false)
  const [retireOpen, setRetireOpen] = createSignal(false)

  const rangeMs = () => RANGES.find((r) => r.value === range())?.ms ?? 3600_000
  const [series] = createResource(
    () => [id(), range()] as const,
    async ([deviceId]) => {
      const to = new Date()
      const from = new Date(to.getTime() - rangeMs())
      const result = await get<HeartbeatSeries>(`/devices/${deviceId}/heartbeats`, {
        from: from.toISOString(),
        to: to.toISOString(),
        bucketSeconds: bucketFor(rangeMs())
      })
      setColumns(toColumns(result))
      return result
    }
  )

  // The agent's cost follows the loaded range (it is not in the live view).
  const cost = createMemo(() => {
    // Reading an errored resource throws; the Telemetry card shows the error.
    if (series.state === "errored") return undefined
    const loaded = series()
    if (loaded === undefined) return undefined
    const ms = Date.parse(loaded.to) - Date.parse(loaded.from)
    return { summary: loaded.agentCost, columns: costColumns(loaded), rangeLabel: RANGES.find((r) => r.ms === ms)?.label ?? "range" }
  })

  // Live status and chart points from WatchDevice (re-subscribed when the route's device changes).
  createEffect(
    on(id, (deviceId) => {
      setLive(undefined)
      onCleanup(
        watch((client, token) => client.WatchDevice({ accessToken: token, deviceId }), {
          onItem: (view) => {
            setLive(view)
            const hb = view.lastHeartbeat
            if (hb !== undefined)
              setColumns((current) =>
                appendPoint(current, { at: hb.recordedAt, battery: hb.batteryPct, memFree: hb.memFreeMb, storageFree: hb.storageFreeMb, signal: hb.signalDbm ?? null })
              )
          }
        })
      )
    })
  )

  const presence = () => live()?.presence ?? device()?.presence ?? "offline"
  const reason = () => live()?.presenceReason ?? device()?.presenceReason ?? null
  const hb = () => {
    const view = live()?.lastHeartbeat
    if (view !== undefined) return { ...view, recordedAt: view.recordedAt, signalDbm: view.signalDbm ?? null, foregroundApp: view.foregroundApp ?? null }
    const stored = device()?.heartbeat
    return stored === null || stored === undefined ? undefined : { ...stored, recordedAt: Date.parse(stored.recordedAt) }
  }

  return (
    <div>
      <A href="/" class="text-sm text-indigo-700 hover:underline dark:text-indigo-300">
        ← Fleet
      </A>
      <Show when={!device.error} fallback={<ErrorBanner message={device.error instanceof ApiError && device.error.status === 404 ? "No such device." : String(device.error?.message ?? device.error)} onRetry={() => void refetch()} />}>
        <Show when={device()} fallback={<Skeleton rows={6} class="mt-4" />}>
          {(d) => (
            <>
              <PageHeader
                title={d().name ?? d().id}
                subtitle={
                  <span>
                    <span class="font-mono">{d().id}</span>
                    {[d().manufacturer, d().model, d().osVersion === null ? null : `Android ${d().osVersion}`].filter((part) => part !== null).map((part) => ` · ${part}`).join("")}
                  </span>
                }
              >
                <span data-testid="device-presence">
                  <Badge tone={presenceTone(presence())} {...(reason() === null ? {} : { title: reason()! })}>
                    {presenceLabel[presence()] ?? presence()}
                  </Badge>
                </span>
                <Show when={d().retiredAt !== null}>
                  <Badge tone="red">Retired</Badge>
                </Show>
                <Show when={can("admin") && d().retiredAt === null}>
                  <Button size="sm" variant="secondary" onClick={() => setEditOpen(true)}>
                    Rename / tags
                  </Button>
                  <Button size="sm" variant="danger" onClick={() => setRetireOpen(true)}>
                    Retire
                  </Button>
                </Show>
              </PageHeader>

              <Tabs
                value={tab()}
                onChange={setTab}
                tabs={[
                  { value: "overview", label: "Overview" },
                  { value: "commands", label: "Commands" },
                  { value: "timeline", label: "Timeline" }
                ]}
              />

              <Show when={tab() === "overview"}>
                <div class="grid gap-4 lg:grid-cols-3">
                  <Card title="Live status">
                    <dl class="grid grid-cols-2 gap-3 text-sm">
                      <Stat label="Status reason" value={reason() ?? "—"} />
                      <Stat label="Last heartbeat" value={relativeTime(hb()?.recordedAt, now())} testid="device-last-seen" />
                      <Stat label="Battery" value={hb() === undefined ? "—" : `${hb()!.batteryPct}%${hb()!.charging ? " (charging)" : ""}`} testid="device-battery" />
                      <Stat label="Memory free" value={hb() === undefined ? "—" : `${megabytes(hb()!.memFreeMb)} of ${megabytes(hb()!.memTotalMb)}`} />
                      <Stat label="Storage free" value={megabytes(hb()?.storageFreeMb)} />
                      <Stat label="Network" value={hb() === undefined ? "—" : `${hb()!.network}${hb()!.signalDbm === null ? "" : ` (${hb()!.signalDbm} dBm)`}`} />
                      <Stat label="Foreground app" value={hb()?.foregroundApp ?? "—"} testid="device-foreground-app" />
                      <Stat label="Agent" value={hb()?.agentVersion ?? d().agentVersion ?? "—"} />
                      <Stat label="Transport" value={live()?.transport ?? "—"} />
                      <Stat label="Enrolled" value={dateTime(d().enrolledAt)} />
                    </dl>
                    <div class="mt-3 flex flex-wrap gap-1">
                      <For each={d().tags}>{(tag) => <Badge>{tag}</Badge>}</For>
                    </div>
                  </Card>
                  <Card
                    title="Telemetry"
                    class="lg:col-span-2"
                    actions={
                      <select
                        class="rounded border border-slate-300 bg-white px-2 py-1 text-xs dark:border-slate-600 dark:bg-slate-900"
                        aria-label="Chart range"
                        value={range()}
                        onChange={(event) => setRange(event.currentTarget.value)}
                      >
                        <For each={RANGES}>{(r) => <option value={r.value}>{r.label}</option>}</For>
                      </select>
                    }
                  >
                    <Show when={!series.error} fallback={<ErrorBanner message={`Could not load heartbeats: ${series.error?.message}`} />}>
                      <Show when={!series.loading || columns().time.length > 0} fallback={<Skeleton rows={4} />}>
                        <Show when={columns().time.length > 0} fallback={<EmptyState title="No heartbeats in this range" />}>
                          <div class="grid gap-4 md:grid-cols-2">
                            <Chart title="Battery (%)" testid="chart-battery" series={[{ label: "Battery", color: "#059669", unit: "%" }]} data={[columns().time, columns().battery]} />
                            <Chart title="Memory free (MB)" testid="chart-memory" series={[{ label: "Memory free", color: "#4f46e5", unit: "" }]} data={[columns().time, columns().memFree]} />
                            <Chart title="Storage free (MB)" testid="chart-storage" series={[{ label: "Storage free", color: "#d97706", unit: "" }]} data={[columns().time, columns().storageFree]} />
                            <Chart title="Signal (dBm)" testid="chart-signal" series={[{ label: "Signal", color: "#db2777", unit: "" }]} data={[columns().time, columns().signal]} />
                          </div>
                        </Show>
                      </Show>
                    </Show>
                  </Card>
                  <Show when={cost()}>
                    {(loaded) => <AgentCostCard class="lg:col-span-3" cost={loaded().summary} columns={loaded().columns} rangeLabel={loaded().rangeLabel} />}
                  </Show>
                </div>
              </Show>

              <Show when={tab() === "commands"}>
                <div class="grid gap-4 lg:grid-cols-3">
                  <Show when={can("admin") && d().retiredAt === null}>
                    <Card title="Send a command">
                      <CommandForm target={{ deviceId: d().id }} onSent={() => setCommandsKey(commandsKey() + 1)} />
                    </Card>
                  </Show>
                  <Card title="Command history" class={can("admin") ? "lg:col-span-2" : "lg:col-span-3"}>
                    <CommandHistory deviceId={d().id} refreshKey={commandsKey()} />
                  </Card>
                </div>
              </Show>

              <Show when={tab() === "timeline"}>
                <Timeline deviceId={d().id} />
              </Show>

              <EditDialog open={editOpen()} onOpenChange={setEditOpen} device={d()} onSaved={(saved) => mutate(saved)} />
              <Dialog open={retireOpen()} onOpenChange={setRetireOpen} title="Retire this device?" description="Its credentials stop working at once and its connection is closed. To use it again it must enrol anew.">
                <div class="flex justify-end gap-2">
                  <Button variant="secondary" onClick={() => setRetireOpen(false)}>
                    Keep it
                  </Button>
                  <Button
                    variant="danger"
                    onClick={async () => {
                      try {
                        mutate(await post<Device>(`/devices/${d().id}/retire`))
                        toast("success", "Device retired")
                        setRetireOpen(false)
                      } catch (failure) {
                        toastError("Could not retire", failure)
                      }
                    }}
                  >
                    Retire device
                  </Button>
                </div>
              </Dialog>
            </>
          )}
        </Show>
      </Show>
    </div>
  )
}

function EditDialog(props: { readonly open: boolean; readonly onOpenChange: (open: boolean) => void; readonly device: Device; readonly onSaved: (device: Device) => void }) {
  const [name, setName] = createSignal(props.device.name ?? "")
  const [tags, setTags] = createSignal(props.device.tags.join(", "))
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const [pending, setPending] = createSignal(false)
  const submit = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      const list = tags()
        .split(/[,\s]+/)
        .map((tag) => tag.trim())
        .filter((tag) => tag !== "")
      const saved = await patch<Device>(`/devices/${props.device.id}`, { name: name().trim() === "" ? null : name().trim(), tags: [...new Set(list)] })
      props.onSaved(saved)
      toast("success", "Device saved")
      props.onOpenChange(false)
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }
  return (
    <Dialog open={props.open} onOpenChange={props.onOpenChange} title="Rename and tag">
      <form class="flex flex-col gap-3" onSubmit={submit}>
        <Field label="Name" name="name" value={name()} onInput={setName} error={error()?.fieldError("name")} description="Leave empty to clear." />
        <Field label="Tags" name="tags" value={tags()} onInput={setTags} error={error()?.fieldError("tags")} description="Separated by commas or spaces." />
        <Show when={error() !== undefined && error()!.issues.length === 0}>
          <p class="text-sm text-red-600">{error()!.message}</p>
        </Show>
        <div>
          <Button type="submit" pending={pending()}>
            Save
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

function Timeline(props: { readonly deviceId: string }) {
  const [data, { refetch }] = createResource(
    () => props.deviceId,
    async (deviceId) => {
      const [events, commands, alerts, audit] = await Promise.all([
        get<Array<DeviceEvent>>(`/devices/${deviceId}/events`, { limit: 200 }),
        get<Array<Command>>(`/devices/${deviceId}/commands`, { limit: 200 }),
        get<Page<any>>("/alerts", { deviceId, limit: 200 }).catch(() => ({ items: [], nextCursor: null })),
        // The audit log is for admins; a viewer's timeline simply has no audit entries.
        can("admin") ? get<Page<AuditRecord>>("/audit", { targetId: deviceId, limit: 200 }).catch(() => ({ items: [], nextCursor: null })) : { items: [], nextCursor: null }
      ])
      return mergeTimeline({ events, commands, alerts: alerts.items, audit: audit.items })
    }
  )
  const entries = createMemo(() => data() ?? [])
  const exportTimeline = () =>
    download(
      `timeline-${props.deviceId}.csv`,
      toCsv(
        ["at", "source", "title", "detail", "id"],
        entries().map((entry) => [new Date(entry.at).toISOString(), entry.source, entry.title, entry.detail, entry.id])
      )
    )
  const tone = { event: "indigo", command: "green", alert: "red", audit: "slate" } as const
  return (
    <Card
      title="Timeline"
      actions={
        <div class="flex gap-2">
          <Button size="sm" variant="ghost" onClick={() => void refetch()}>
            Refresh
          </Button>
          <Button size="sm" variant="secondary" onClick={exportTimeline} disabled={entries().length === 0}>
            Export CSV
          </Button>
        </div>
      }
    >
      <Show when={!data.error} fallback={<ErrorBanner message={String(data.error?.message)} onRetry={() => void refetch()} />}>
        <Show when={!data.loading} fallback={<Skeleton rows={5} />}>
          <Show when={entries().length > 0} fallback={<EmptyState title="Nothing happened to this device yet" />}>
            <ol class="flex flex-col" data-testid="timeline">
              <For each={entries()}>
                {(entry) => (
                  <li class="flex gap-3 border-b border-slate-100 py-2 text-sm last:border-0 dark:border-slate-800">
                    <span class="w-44 shrink-0 text-xs text-slate-500 tabular-nums">{dateTime(entry.at)}</span>
                    <span class="w-20 shrink-0">
                      <Badge tone={tone[entry.source]}>{entry.source}</Badge>
                    </span>
                    <span class="min-w-0">
                      <span class="font-medium">{entry.title}</span>
                      <Show when={entry.detail !== ""}>
                        <span class="block text-xs text-slate-500">{entry.detail}</span>
                      </Show>
                    </span>
                  </li>
                )}
              </For>
            </ol>
          </Show>
        </Show>
      </Show>
    </Card>
  )
}
