import { createResource, createSignal, For, Show } from "solid-js"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { toast, toastError } from "../components/ui/Toast"
import { get, post, toApiError } from "../lib/api"
import { dateTime, megabytes } from "../lib/format"
import { authorizedFetch, can } from "../lib/session"

interface Release {
  readonly id: string
  readonly packageName: string
  readonly versionCode: number
  readonly versionName: string
  readonly channel: "stable" | "beta"
  readonly sha256Hex: string
  readonly sizeBytes: number
  readonly signerCertSha256Hex: string
  readonly status: "active" | "rolled_back"
  readonly uploadedBy: string
  readonly createdAt: string
  readonly servedOn: ReadonlyArray<"stable" | "beta">
  readonly downloads: number
}

interface AdoptionRow {
  readonly channel: string
  readonly agentVersion: string | null
  readonly devices: number
}

export default function ReleasesPage() {
  const [releases, { refetch }] = createResource(() => get<Array<Release>>("/releases", { limit: 100 }))
  const [adoption, { refetch: refetchAdoption }] = createResource(() => get<Array<AdoptionRow>>("/releases/adoption"))
  const [uploading, setUploading] = createSignal(false)
  const [channel, setChannel] = createSignal<"stable" | "beta">("beta")

  const upload = async (file: File) => {
    setUploading(true)
    try {
      const response = await authorizedFetch(`/api/v1/releases?channel=${channel()}`, {
        method: "POST",
        headers: { "content-type": "application/vnd.android.package-archive" },
        body: file
      })
      if (!response.ok) throw toApiError(response.status, await response.json().catch(() => undefined))
      toast("success", `Uploaded ${file.name} to ${channel()}`)
      void refetch()
    } catch (failure) {
      toastError("Upload refused", failure)
    } finally {
      setUploading(false)
    }
  }
  const act = async (label: string, path: string, body?: unknown) => {
    try {
      await post(path, body)
      toast("success", label)
      void refetch()
      void refetchAdoption()
    } catch (failure) {
      toastError(`Could not ${label.toLowerCase()}`, failure)
    }
  }

  return (
    <div>
      <PageHeader title="Releases" subtitle="Agent APKs per channel: signer, upload time, adoption; promote and roll back.">
        <Show when={can("admin")}>
          <select class="rounded border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-600 dark:bg-slate-900" aria-label="Upload channel" value={channel()} onChange={(e) => setChannel(e.currentTarget.value as "stable" | "beta")}>
            <option value="beta">beta</option>
            <option value="stable">stable</option>
          </select>
          <label class="inline-flex cursor-pointer items-center rounded-md bg-indigo-600 px-3.5 py-2 text-sm font-medium text-white hover:bg-indigo-500">
            {uploading() ? "Uploading…" : "Upload APK"}
            <input type="file" accept=".apk,application/vnd.android.package-archive" class="sr-only" disabled={uploading()} onChange={(e) => e.currentTarget.files?.[0] && void upload(e.currentTarget.files[0])} />
          </label>
          <Button variant="secondary" size="sm" onClick={() => void act("Stable rolled back", "/releases/channels/stable/rollback")}>
            Roll back stable
          </Button>
          <Button variant="secondary" size="sm" onClick={() => void act("Beta rolled back", "/releases/channels/beta/rollback")}>
            Roll back beta
          </Button>
        </Show>
      </PageHeader>
      <div class="grid gap-4 lg:grid-cols-3">
        <Card title="Releases" class="lg:col-span-2">
          <Show when={!releases.error} fallback={<ErrorBanner message={String(releases.error?.message)} onRetry={() => void refetch()} />}>
            <Show when={releases() !== undefined} fallback={<Skeleton rows={4} />}>
              <Show when={releases()!.length > 0} fallback={<EmptyState title="No agent release uploaded yet">Upload a signed agent APK to serve it to devices.</EmptyState>}>
                <div class="overflow-x-auto">
                  <table class={tableClass}>
                    <thead>
                      <tr>
                        <th class={thClass}>Version</th>
                        <th class={thClass}>Served on</th>
                        <th class={thClass}>Signer</th>
                        <th class={thClass}>Uploaded</th>
                        <th class={thClass} />
                      </tr>
                    </thead>
                    <tbody>
                      <For each={releases()}>
                        {(release) => (
                          <tr class="border-t border-slate-100 dark:border-slate-800">
                            <td class={tdClass}>
                              <div class="font-medium">
                                {release.versionName} <span class="text-xs text-slate-500">({release.versionCode})</span>
                              </div>
                              <div class="text-xs text-slate-500">
                                {release.packageName} · {megabytes(release.sizeBytes / 1048576)} · {release.downloads} downloads
                              </div>
                            </td>
                            <td class={tdClass}>
                              <For each={release.servedOn}>{(c) => <Badge tone="green">{c}</Badge>}</For>
                              <Show when={release.status === "rolled_back"}>
                                <Badge tone="red">rolled back</Badge>
                              </Show>
                            </td>
                            <td class={`${tdClass} font-mono text-xs`} title={release.signerCertSha256Hex}>
                              {release.signerCertSha256Hex.slice(0, 16)}…
                            </td>
                            <td class={`${tdClass} text-xs`}>
                              {dateTime(release.createdAt)}
                              <div class="text-slate-500">by {release.uploadedBy}</div>
                            </td>
                            <td class={tdClass}>
                              <Show when={can("admin") && !release.servedOn.includes("stable") && release.status === "active"}>
                                <Button size="sm" variant="ghost" onClick={() => void act("Promoted to stable", `/releases/${release.id}/promote`, { channel: "stable" })}>
                                  Promote to stable
                                </Button>
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
          </Show>
        </Card>
        <Card title="Adoption (devices per agent version)">
          <Show when={adoption() !== undefined} fallback={<Skeleton rows={3} />}>
            <Show when={adoption()!.length > 0} fallback={<EmptyState title="No devices report a version yet" />}>
              <table class={tableClass}>
                <tbody>
                  <For each={adoption()}>
                    {(row) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800">
                        <td class={tdClass}>{row.channel}</td>
                        <td class={`${tdClass} font-mono text-xs`}>{row.agentVersion ?? "unknown"}</td>
                        <td class={`${tdClass} text-right tabular-nums`}>{row.devices}</td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </Show>
          </Show>
        </Card>
      </div>
    </div>
  )
}
