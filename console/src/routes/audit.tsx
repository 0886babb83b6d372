import { createResource, createSignal, For, Show } from "solid-js"
import { Badge, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { inputClass } from "../components/ui/Field"
import { toastError } from "../components/ui/Toast"
import { download, get, toCsv } from "../lib/api"
import { dateTime } from "../lib/format"
import type { AuditRecord, Page } from "../lib/model"

const compact = inputClass.replace("w-full ", "")

interface Filters {
  readonly action: string
  readonly actorKind: string
  readonly outcome: string
  readonly targetId: string
  readonly from: string
}

const query = (filters: Filters, cursor?: string) => ({
  action: filters.action.trim() || undefined,
  actorKind: filters.actorKind || undefined,
  outcome: filters.outcome || undefined,
  targetId: filters.targetId.trim() || undefined,
  from: filters.from === "" ? undefined : new Date(filters.from).toISOString(),
  cursor,
  limit: 100
})

export default function AuditPage() {
  const [filters, setFilters] = createSignal<Filters>({ action: "", actorKind: "", outcome: "", targetId: "", from: "" })
  const [extra, setExtra] = createSignal<Array<AuditRecord>>([])
  const [page, { refetch }] = createResource(filters, (f) => {
    setExtra([])
    return get<Page<AuditRecord>>("/audit", query(f))
  })
  const [cursor, setCursor] = createSignal<string | null>(null)
  const [exporting, setExporting] = createSignal(false)
  const records = () => [...(page()?.items ?? []), ...extra()]
  const next = () => (extra().length > 0 ? cursor() : (page()?.nextCursor ?? null))
  const set = (key: keyof Filters, value: string) => setFilters({ ...filters(), [key]: value })

  const more = async () => {
    const at = next()
    if (at === null) return
    const more = await get<Page<AuditRecord>>("/audit", query(filters(), at))
    setExtra([...extra(), ...more.items])
    setCursor(more.nextCursor)
  }

  const exportCsv = async () => {
    setExporting(true)
    try {
      const all: Array<AuditRecord> = []
      let at: string | undefined
      // Up to 10,000 rows (100 pages): enough for a support case, bounded for the browser.
      for (let i = 0; i < 100; i++) {
        const result: Page<AuditRecord> = await get<Page<AuditRecord>>("/audit", { ...query(filters(), at), limit: 500 })
        all.push(...result.items)
        if (result.nextCursor === null) break
        at = result.nextCursor
      }
      download(
        `audit-${new Date().toISOString().slice(0, 19)}.csv`,
        toCsv(
          ["at", "actor_kind", "actor", "action", "target_kind", "target_id", "outcome", "source_ip", "detail"],
          all.map((r) => [r.at, r.actorKind, r.actorLabel ?? r.actorId, r.action, r.targetKind, r.targetId, r.outcome, r.sourceIp, r.detail])
        )
      )
    } catch (failure) {
      toastError("Export failed", failure)
    } finally {
      setExporting(false)
    }
  }

  return (
    <div>
      <PageHeader title="Audit log" subtitle="Who changed what, from where, and whether it worked.">
        <Button variant="secondary" size="sm" pending={exporting()} onClick={() => void exportCsv()}>
          Export CSV
        </Button>
      </PageHeader>
      <div class="mb-3 flex flex-wrap gap-2">
        <input class={compact} placeholder="Action, or prefix ending in ." aria-label="Action" value={filters().action} onChange={(e) => set("action", e.currentTarget.value)} />
        <select class={compact} aria-label="Actor kind" value={filters().actorKind} onChange={(e) => set("actorKind", e.currentTarget.value)}>
          <option value="">Any actor</option>
          <option value="user">Users</option>
          <option value="api_key">API keys</option>
          <option value="system">System</option>
        </select>
        <select class={compact} aria-label="Outcome" value={filters().outcome} onChange={(e) => set("outcome", e.currentTarget.value)}>
          <option value="">Any outcome</option>
          <option value="success">Success</option>
          <option value="failure">Failure</option>
        </select>
        <input class={compact} placeholder="Target id" aria-label="Target id" value={filters().targetId} onChange={(e) => set("targetId", e.currentTarget.value)} />
        <input class={compact} type="datetime-local" aria-label="From" value={filters().from} onChange={(e) => set("from", e.currentTarget.value)} />
      </div>
      <Show when={!page.error} fallback={<ErrorBanner message={String(page.error?.message)} onRetry={() => void refetch()} />}>
        <Show when={page() !== undefined} fallback={<Skeleton rows={8} />}>
          <Show when={records().length > 0} fallback={<EmptyState title="No audit records match" />}>
            <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
              <table class={tableClass} data-testid="audit-table">
                <thead>
                  <tr>
                    <th class={thClass}>When</th>
                    <th class={thClass}>Actor</th>
                    <th class={thClass}>Action</th>
                    <th class={thClass}>Target</th>
                    <th class={thClass}>Outcome</th>
                    <th class={thClass}>Source</th>
                  </tr>
                </thead>
                <tbody>
                  <For each={records()}>
                    {(record) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800" data-action={record.action}>
                        <td class={`${tdClass} text-xs whitespace-nowrap`}>{dateTime(record.at)}</td>
                        <td class={tdClass}>
                          {record.actorLabel ?? record.actorId ?? "—"}
                          <div class="text-xs text-slate-500">{record.actorKind}</div>
                        </td>
                        <td class={`${tdClass} font-mono text-xs`}>{record.action}</td>
                        <td class={`${tdClass} font-mono text-xs`}>
                          {record.targetKind ?? ""} {record.targetId ?? ""}
                        </td>
                        <td class={tdClass}>
                          <Badge tone={record.outcome === "success" ? "green" : "red"}>{record.outcome}</Badge>
                        </td>
                        <td class={`${tdClass} text-xs`}>{record.sourceIp ?? "—"}</td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </div>
            <Show when={next() !== null}>
              <div class="mt-3">
                <Button variant="secondary" size="sm" onClick={() => void more()}>
                  Load more
                </Button>
              </div>
            </Show>
          </Show>
        </Show>
      </Show>
    </div>
  )
}
