import { A } from "@solidjs/router"
import { createVirtualizer } from "@tanstack/solid-virtual"
import { createMemo, createSignal, For, type JSX, onCleanup, onMount, Show, untrack } from "solid-js"
import { unwrap } from "solid-js/store"
import { CommandForm } from "../components/CommandForm"
import { Badge, EmptyState, ErrorBanner, PageHeader, Skeleton, type Tone } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { Checkbox } from "../components/ui/Checkbox"
import { Dialog } from "../components/ui/Dialog"
import { Field, inputClass } from "../components/ui/Field"
import { toast, toastError } from "../components/ui/Toast"
import { download, patch, requestText, withQuery } from "../lib/api"
import { type FleetQuery, type FleetRow, isLowBattery, orderRows, type QuickFilter, type SortKey, summarize } from "../lib/fleet"
import { fleet } from "../lib/fleetInstance"
import { megabytes, presenceLabel, presenceTone, relativeTime } from "../lib/format"
import { now } from "../lib/now"
import { can } from "../lib/session"

const ROW_HEIGHT = 44
const compactInput = inputClass.replace("w-full ", "")
const columns = "grid grid-cols-[2.25rem_minmax(11rem,2fr)_7rem_6rem_6.5rem_5.5rem_minmax(9rem,1.5fr)_5.5rem_6rem_minmax(6rem,1fr)] items-center"

function Tile(props: { readonly label: string; readonly value: number | string; readonly tone: Tone; readonly active: boolean; readonly onClick: () => void; readonly testid: string }) {
  const ring: Record<Tone, string> = { green: "text-emerald-600", red: "text-red-600", amber: "text-amber-600", indigo: "text-indigo-600", slate: "text-slate-700" }
  return (
    <button
      class={`rounded-lg border bg-white p-3 text-left transition-colors dark:bg-slate-900 ${props.active ? "border-indigo-500 ring-2 ring-indigo-500/30" : "border-slate-200 hover:border-slate-300 dark:border-slate-800"}`}
      onClick={() => props.onClick()}
      aria-pressed={props.active}
      data-testid={props.testid}
    >
      <div class="text-xs font-medium text-slate-500 uppercase dark:text-slate-400">{props.label}</div>
      <div class={`mt-1 text-2xl font-semibold tabular-nums ${ring[props.tone]} dark:brightness-125`} data-value>
        {props.value}
      </div>
    </button>
  )
}

function BatteryCell(props: { readonly row: FleetRow }) {
  return (
    <Show when={props.row.battery !== null} fallback={<span class="text-slate-400">—</span>}>
      <span class={`tabular-nums ${isLowBattery(props.row) ? "font-medium text-red-600 dark:text-red-400" : ""}`}>
        {props.row.battery}%{props.row.charging ? " ⚡" : ""}
      </span>
    </Show>
  )
}

/** The table body: only the rows in view (plus overscan) exist in the DOM. */
function VirtualRows(props: {
  readonly ids: ReadonlyArray<string>
  readonly selected: ReadonlySet<string>
  readonly onToggle: (id: string, on: boolean) => void
  /** The column headers: inside the scroller, sticky, so they scroll sideways with the rows. */
  readonly header: JSX.Element
}) {
  let scroller: HTMLDivElement | undefined
  const virtualizer = createVirtualizer({
    get count() {
      return props.ids.length
    },
    getScrollElement: () => scroller ?? null,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12
  })
  return (
            <div ref={scroller} class="min-h-0 flex-1 overflow-auto" data-testid="fleet-scroller">
      <div class="sticky top-0 z-10 min-w-[68rem]">{props.header}</div>
      <div class="relative min-w-[68rem]" style={{ height: `${virtualizer.getTotalSize()}px` }}>
        <For each={virtualizer.getVirtualItems()}>
          {(item) => {
            const id = () => props.ids[item.index]!
            const row = () => fleet.rows[id()]
            return (
              <Show when={row()}>
                {(r) => (
                  <div
                    class={`${columns} absolute inset-x-0 border-b border-slate-100 px-1 text-sm hover:bg-slate-50 dark:border-slate-800 dark:hover:bg-slate-800/50 ${props.selected.has(id()) ? "bg-indigo-50/60 dark:bg-indigo-950/40" : ""}`}
                    style={{ height: `${ROW_HEIGHT}px`, transform: `translateY(${item.start}px)` }}
                    role="row"
                    aria-rowindex={item.index + 1}
                    data-device-id={r().id}
                  >
                    <div class="px-2" role="cell">
                      <Checkbox label={`Select ${r().name ?? r().id}`} hideLabel checked={props.selected.has(r().id)} onChange={(on) => props.onToggle(r().id, on)} />
                    </div>
                    <div class="min-w-0 px-2" role="cell">
                      <A href={`/devices/${r().id}`} class="block truncate font-medium text-indigo-700 hover:underline dark:text-indigo-300">
                        {r().name ?? r().id}
                      </A>
                      <div class="truncate text-xs text-slate-500">{r().model ?? r().id}</div>
                    </div>
                    <div class="px-2" role="cell" data-field="presence">
                      <Badge tone={presenceTone(r().presence)} {...(r().presenceReason === null ? {} : { title: r().presenceReason! })}>
                        {presenceLabel[r().presence] ?? r().presence}
                      </Badge>
                    </div>
                    <div class="px-2" role="cell" data-field="battery">
                      <BatteryCell row={r()} />
                    </div>
                    <div class="px-2 tabular-nums" role="cell" data-field="memory">
                      {megabytes(r().memFreeMb)}
                    </div>
                    <div class="px-2" role="cell" data-field="network">
                      {r().network ?? "—"}
                    </div>
                    <div class="truncate px-2 font-mono text-xs" role="cell" data-field="foregroundApp">
                      {r().foregroundApp ?? "—"}
                    </div>
                    <div class="px-2 text-xs" role="cell" data-field="agentVersion">
                      {r().agentVersion ?? "—"}
                    </div>
                    <div class="px-2 text-xs text-slate-600 dark:text-slate-400" role="cell" data-field="lastSeen">
                      {relativeTime(r().lastSeen, now())}
                    </div>
                    <div class="flex min-w-0 gap-1 overflow-hidden px-2" role="cell">
                      <For each={r().tags}>{(value) => <Badge>{value}</Badge>}</For>
                    </div>
                  </div>
                )}
              </Show>
            )
          }}
        </For>
      </div>
    </div>
  )
}

export default function FleetPage() {
  const [search, setSearch] = createSignal("")
  const [quick, setQuick] = createSignal<QuickFilter>("all")
  const [tag, setTag] = createSignal("")
  const [sort, setSort] = createSignal<SortKey>("name")
  const [descending, setDescending] = createSignal(false)
  const [selected, setSelected] = createSignal<ReadonlySet<string>>(new Set())
  const [bulkOpen, setBulkOpen] = createSignal(false)
  const [tagOpen, setTagOpen] = createSignal(false)
  const [newTag, setNewTag] = createSignal("")
  const [tagging, setTagging] = createSignal(false)

  onMount(() => onCleanup(fleet.start()))

  // Recomputed when the fleet's order version or the query changes, not on every heartbeat.
  const allRows = createMemo(() => {
    fleet.version()
    // The raw objects, not the store's proxies: sorting and counting 10,000 rows stays cheap.
    return untrack(() => Object.values(unwrap(fleet.rows)))
  })
  const summary = createMemo(() => summarize(allRows()))
  const tags = createMemo(() => [...new Set(allRows().flatMap((row) => row.tags))].sort())
  const query = (): FleetQuery => ({ search: search(), quick: quick(), tag: tag(), sort: sort(), descending: descending() })
  const ids = createMemo(() => {
    const q = query()
    const rows = allRows()
    return untrack(() => orderRows(rows, q, summary().latestAgent))
  })

  const toggle = (id: string, on: boolean) => {
    const next = new Set(selected())
    if (on) next.add(id)
    else next.delete(id)
    setSelected(next)
  }
  const allSelected = () => ids().length > 0 && ids().every((id) => selected().has(id))
  const someSelected = () => selected().size > 0 && !allSelected()
  const selectAll = (on: boolean) => setSelected(on ? new Set(ids()) : new Set<string>())

  const sortBy = (key: SortKey) => {
    if (sort() === key) setDescending(!descending())
    else {
      setSort(key)
      setDescending(key === "lastSeen" || key === "battery" ? false : false)
    }
  }
  const SortHeader = (props: { readonly label: string; readonly key: SortKey }) => (
    <button
      class="flex items-center gap-1 text-left text-xs font-semibold tracking-wide text-slate-500 uppercase hover:text-slate-800 dark:text-slate-400 dark:hover:text-slate-100"
      onClick={() => sortBy(props.key)}
      aria-sort={sort() === props.key ? (descending() ? "descending" : "ascending") : "none"}
    >
      {props.label}
      <span aria-hidden="true">{sort() === props.key ? (descending() ? "↓" : "↑") : ""}</span>
    </button>
  )

  const addTag = async (event: SubmitEvent) => {
    event.preventDefault()
    const value = newTag().trim()
    if (!/^[^\s,;]{1,64}$/.test(value)) return toast("error", "Invalid tag", "1 to 64 characters, no spaces, commas or semicolons")
    setTagging(true)
    let failed = 0
    const targets = [...selected()]
    // Four at a time: a few hundred devices tag in seconds without tripping the per-IP rate limit.
    const queue = [...targets]
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
          const row = fleet.rows[id]
          if (row === undefined || row.tags.includes(value)) continue
          try {
            await patch(`/devices/${id}`, { tags: [...row.tags, value] })
            fleet.patchRow(id, { tags: [...row.tags, value] })
          } catch {
            failed++
          }
        }
      })
    )
    setTagging(false)
    setTagOpen(false)
    setNewTag("")
    if (failed === 0) toast("success", `Tagged ${targets.length} devices with “${value}”`)
    else toast("error", `Tagging failed for ${failed} of ${targets.length} devices`)
  }

  const exportCsv = async () => {
    try {
      const q = quick()
      const text = await requestText(
        withQuery("/devices/export.csv", {
          q: search().trim() || undefined,
          tag: tag() || undefined,
          presence: q === "offline" ? "offline" : undefined,
          batteryBelow: q === "lowBattery" ? 20 : undefined
        })
      )
      download(`devices-${new Date().toISOString().slice(0, 10)}.csv`, text)
    } catch (error) {
      toastError("Export failed", error)
    }
  }

  return (
    <div class="flex h-[calc(100vh-7rem)] flex-col">
      <PageHeader title="Fleet" subtitle={<span data-testid="fleet-count" data-syncing={fleet.syncing() ? "true" : "false"}>
            {summary().total} devices
          </span>}>
        <Button variant="secondary" size="sm" onClick={() => void exportCsv()}>
          Export CSV
        </Button>
      </PageHeader>

      <div class="mb-4 grid grid-cols-2 gap-3 sm:grid-cols-4">
        <Tile label="Online" value={summary().online} tone="green" active={quick() === "online"} onClick={() => setQuick(quick() === "online" ? "all" : "online")} testid="tile-online" />
        <Tile label="Offline" value={summary().offline} tone="red" active={quick() === "offline"} onClick={() => setQuick(quick() === "offline" ? "all" : "offline")} testid="tile-offline" />
        <Tile label="Low battery" value={summary().lowBattery} tone="amber" active={quick() === "lowBattery"} onClick={() => setQuick(quick() === "lowBattery" ? "all" : "lowBattery")} testid="tile-low-battery" />
        <Tile label="Outdated agent" value={summary().outdated} tone="indigo" active={quick() === "outdated"} onClick={() => setQuick(quick() === "outdated" ? "all" : "outdated")} testid="tile-outdated" />
      </div>

      <div class="mb-3 flex flex-wrap items-center gap-2">
        <input
          type="search"
          class={`${compactInput} max-w-xs`}
          placeholder="Search name, id, model, app, tag"
          aria-label="Search devices"
          value={search()}
          onInput={(event) => setSearch(event.currentTarget.value)}
        />
        <select class={compactInput} aria-label="Filter by tag" value={tag()} onChange={(event) => setTag(event.currentTarget.value)}>
          <option value="">All tags</option>
          <For each={tags()}>{(value) => <option value={value}>{value}</option>}</For>
        </select>
        <select class={compactInput} aria-label="Filter by status" value={quick()} onChange={(event) => setQuick(event.currentTarget.value as QuickFilter)}>
          <option value="all">Any status</option>
          <option value="online">Online</option>
          <option value="offline">Offline</option>
          <option value="lowBattery">Low battery</option>
          <option value="outdated">Outdated agent</option>
        </select>
        <span class="text-sm text-slate-500" data-testid="shown-count">
          {ids().length} shown
        </span>
        <Show when={selected().size > 0}>
          <div class="ml-auto flex items-center gap-2 rounded-md bg-indigo-50 px-3 py-1.5 text-sm dark:bg-indigo-950" data-testid="bulk-bar">
            <span>{selected().size} selected</span>
            <Show when={can("admin")}>
              <Button size="sm" onClick={() => setBulkOpen(true)}>
                Send command
              </Button>
              <Button size="sm" variant="secondary" onClick={() => setTagOpen(true)}>
                Add tag
              </Button>
            </Show>
            <Button size="sm" variant="ghost" onClick={() => setSelected(new Set<string>())}>
              Clear
            </Button>
          </div>
        </Show>
      </div>

      <Show when={fleet.loadError()}>{(message) => <ErrorBanner message={`Could not load the fleet: ${message()}`} onRetry={() => void fleet.load()} />}</Show>

      <div class="flex min-h-0 flex-1 flex-col overflow-hidden rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900" role="table" aria-label="Devices" aria-rowcount={ids().length}>
        <Show when={fleet.loaded()} fallback={<Skeleton rows={10} class="p-3" />}>
          <Show
            when={ids().length > 0}
            fallback={
              <div class="p-6">
                <EmptyState title={allRows().length === 0 ? "No devices enrolled yet" : "No device matches these filters"}>
                  {allRows().length === 0 ? (
                    <span>
                      Create an enrollment token on the <A href="/enrollment" class="text-indigo-700 underline">Enrollment</A> page and run its script on a device.
                    </span>
                  ) : (
                    "Clear the search or the filters to see every device."
                  )}
                </EmptyState>
              </div>
            }
          >
            <VirtualRows ids={ids()} selected={selected()} onToggle={toggle} header={
            <div class={`${columns} border-b border-slate-200 bg-slate-50 px-1 py-2 dark:border-slate-800 dark:bg-slate-900`} role="row">
              <div class="px-2" role="columnheader">
                <Checkbox label="Select all shown" hideLabel checked={allSelected()} indeterminate={someSelected()} onChange={selectAll} />
              </div>
              <div class="px-2" role="columnheader"><SortHeader label="Device" key="name" /></div>
              <div class="px-2" role="columnheader"><SortHeader label="Status" key="presence" /></div>
              <div class="px-2" role="columnheader"><SortHeader label="Battery" key="battery" /></div>
              <div class="px-2 text-xs font-semibold text-slate-500 uppercase" role="columnheader">Memory free</div>
              <div class="px-2 text-xs font-semibold text-slate-500 uppercase" role="columnheader">Network</div>
              <div class="px-2" role="columnheader"><SortHeader label="Foreground app" key="foregroundApp" /></div>
              <div class="px-2" role="columnheader"><SortHeader label="Agent" key="agentVersion" /></div>
              <div class="px-2" role="columnheader"><SortHeader label="Last seen" key="lastSeen" /></div>
              <div class="px-2 text-xs font-semibold text-slate-500 uppercase" role="columnheader">Tags</div>
            </div>
            } />
          </Show>
        </Show>
      </div>

      <Dialog open={bulkOpen()} onOpenChange={setBulkOpen} title="Send a command" description={`To the ${selected().size} selected devices, as one bulk job.`}>
        <CommandForm
          target={{ deviceIds: [...selected()] }}
          onSent={() => {
            setBulkOpen(false)
          }}
        />
      </Dialog>
      <Dialog open={tagOpen()} onOpenChange={setTagOpen} title="Add a tag" description={`To the ${selected().size} selected devices.`}>
        <form class="flex flex-col gap-3" onSubmit={addTag}>
          <Field label="Tag" name="tag" value={newTag()} onInput={setNewTag} description="1 to 64 characters, no spaces, commas or semicolons." />
          <div>
            <Button type="submit" pending={tagging()}>
              Add tag
            </Button>
          </div>
        </form>
      </Dialog>
    </div>
  )
}
