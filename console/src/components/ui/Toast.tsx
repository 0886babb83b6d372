import { Toast, toaster } from "@kobalte/core/toast"
import { Portal } from "solid-js/web"

export type ToastKind = "success" | "error" | "info"

const styles: Record<ToastKind, string> = {
  success: "border-emerald-500",
  error: "border-red-500",
  info: "border-indigo-500"
}

/** Shows a toast (Kobalte: announced politely, swipe/Escape to dismiss, paused on hover). */
export const toast = (kind: ToastKind, title: string, description?: string) =>
  toaster.show((props) => (
    <Toast
      toastId={props.toastId}
      class={`flex w-80 items-start gap-3 rounded-md border-l-4 bg-white p-3 shadow-lg dark:bg-slate-800 dark:text-slate-100 ${styles[kind]}`}
      data-kind={kind}
    >
      <div class="flex-1">
        <Toast.Title class="text-sm font-semibold">{title}</Toast.Title>
        {description === undefined ? null : <Toast.Description class="mt-1 text-xs text-slate-600 dark:text-slate-300">{description}</Toast.Description>}
      </div>
      <Toast.CloseButton class="text-slate-400 hover:text-slate-600" aria-label="Dismiss">
        ✕
      </Toast.CloseButton>
    </Toast>
  ))

/** A toast for a failed action: the engine's message and code. */
export const toastError = (title: string, error: unknown) => {
  const message = error instanceof Error ? error.message : String(error)
  const code = typeof error === "object" && error !== null && "code" in error ? ` (${String((error as { code: unknown }).code)})` : ""
  toast("error", title, `${message}${code}`)
}

/** Where toasts appear; rendered once by the app shell. */
export function ToastRegion() {
  return (
    <Portal>
      <Toast.Region duration={5000}>
        <Toast.List class="fixed right-4 bottom-4 z-[100] flex flex-col gap-2" />
      </Toast.Region>
    </Portal>
  )
}
