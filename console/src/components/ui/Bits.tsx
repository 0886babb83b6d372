import { Tabs as KTabs } from "@kobalte/core/tabs"
import { For, type JSX, Show } from "solid-js"

/** Grey placeholder blocks while data loads. */
export function Skeleton(props: { readonly rows?: number; readonly class?: string }) {
  return (
    <div class={`flex flex-col gap-2 ${props.class ?? ""}`} aria-busy="true" aria-label="Loading">
      <For each={Array.from({ length: props.rows ?? 3 })}>{() => <div class="h-8 animate-pulse rounded bg-slate-200 dark:bg-slate-800" />}</For>
    </div>
  )
}

/** What a list shows when it has nothing, with what to do about it. */
export function EmptyState(props: { readonly title: string; readonly children?: JSX.Element }) {
  return (
    <div class="rounded-lg border border-dashed border-slate-300 p-8 text-center dark:border-slate-700" data-testid="empty-state">
      <p class="font-medium text-slate-700 dark:text-slate-200">{props.title}</p>
      <Show when={props.children}>
        <div class="mt-2 text-sm text-slate-500 dark:text-slate-400">{props.children}</div>
      </Show>
    </div>
  )
}

export function ErrorBanner(props: { readonly message: string; readonly onRetry?: () => void }) {
  return (
    <div role="alert" class="flex items-center justify-between gap-4 rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200">
      <span>{props.message}</span>
      <Show when={props.onRetry}>
        <button class="underline" onClick={() => props.onRetry?.()}>
          Retry
        </button>
      </Show>
    </div>
  )
}

const tones = {
  green: "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-200",
  amber: "bg-amber-100 text-amber-800 dark:bg-amber-900/50 dark:text-amber-200",
  red: "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-200",
  slate: "bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
  indigo: "bg-indigo-100 text-indigo-800 dark:bg-indigo-900/50 dark:text-indigo-200"
} as const
export type Tone = keyof typeof tones

export function Badge(props: { readonly tone?: Tone; readonly children: JSX.Element; readonly title?: string }) {
  return (
    <span class={`inline-flex items-center rounded px-1.5 py-0.5 text-xs font-medium whitespace-nowrap ${tones[props.tone ?? "slate"]}`} title={props.title}>
      {props.children}
    </span>
  )
}

export function PageHeader(props: { readonly title: string; readonly children?: JSX.Element; readonly subtitle?: JSX.Element }) {
  return (
    <div class="mb-4 flex flex-wrap items-end justify-between gap-3">
      <div>
        <h1 class="text-xl font-semibold text-slate-900 dark:text-slate-50">{props.title}</h1>
        <Show when={props.subtitle}>
          <p class="text-sm text-slate-500 dark:text-slate-400">{props.subtitle}</p>
        </Show>
      </div>
      <div class="flex flex-wrap items-center gap-2">{props.children}</div>
    </div>
  )
}

export function Card(props: { readonly title?: string; readonly children: JSX.Element; readonly class?: string; readonly actions?: JSX.Element }) {
  return (
    <section class={`rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900 ${props.class ?? ""}`}>
      <Show when={props.title !== undefined || props.actions !== undefined}>
        <div class="mb-3 flex items-center justify-between gap-2">
          <h2 class="text-sm font-semibold text-slate-700 dark:text-slate-200">{props.title}</h2>
          {props.actions}
        </div>
      </Show>
      {props.children}
    </section>
  )
}

/** Tabs (Kobalte: arrow keys, roving focus). */
export function Tabs(props: {
  readonly value: string
  readonly onChange: (value: string) => void
  readonly tabs: ReadonlyArray<{ readonly value: string; readonly label: string }>
}) {
  return (
    <KTabs value={props.value} onChange={props.onChange}>
      <KTabs.List class="mb-4 flex gap-1 border-b border-slate-200 dark:border-slate-800">
        <For each={props.tabs}>
          {(tab) => (
            <KTabs.Trigger
              value={tab.value}
              class="-mb-px border-b-2 border-transparent px-3 py-2 text-sm text-slate-600 hover:text-slate-900 data-[selected]:border-indigo-600 data-[selected]:font-medium data-[selected]:text-indigo-700 dark:text-slate-400 dark:data-[selected]:text-indigo-300"
            >
              {tab.label}
            </KTabs.Trigger>
          )}
        </For>
      </KTabs.List>
    </KTabs>
  )
}

/** One labelled figure of a `<dl>` grid. */
export function Stat(props: { readonly label: string; readonly value: string; readonly testid?: string }) {
  return (
    <div>
      <dt class="text-xs text-slate-500 dark:text-slate-400">{props.label}</dt>
      <dd class="font-medium tabular-nums" data-testid={props.testid}>
        {props.value}
      </dd>
    </div>
  )
}

export const tableClass = "w-full text-left text-sm"
export const thClass = "px-3 py-2 text-xs font-semibold tracking-wide text-slate-500 uppercase dark:text-slate-400"
export const tdClass = "px-3 py-2 align-top"
