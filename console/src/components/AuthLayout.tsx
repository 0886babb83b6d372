import type { JSX } from "solid-js"

/** The frame of the signed-out pages. */
export function AuthLayout(props: { readonly title: string; readonly children: JSX.Element }) {
  return (
    <main class="flex min-h-screen items-center justify-center p-4">
      <div class="w-full max-w-sm rounded-xl border border-slate-200 bg-white p-6 shadow-sm dark:border-slate-800 dark:bg-slate-900">
        <p class="mb-1 text-sm font-bold tracking-tight text-indigo-700 dark:text-indigo-300">NexMDM</p>
        <h1 class="mb-5 text-xl font-semibold">{props.title}</h1>
        {props.children}
      </div>
    </main>
  )
}
