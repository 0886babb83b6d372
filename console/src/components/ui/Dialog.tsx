import { Dialog as KDialog } from "@kobalte/core/dialog"
import type { JSX } from "solid-js"

/** A modal dialog (Kobalte: focus trap, Escape, aria-labelledby). Controlled by `open`. */
export function Dialog(props: {
  readonly open: boolean
  readonly onOpenChange: (open: boolean) => void
  readonly title: string
  readonly description?: string
  readonly children: JSX.Element
}) {
  return (
    <KDialog open={props.open} onOpenChange={props.onOpenChange}>
      <KDialog.Portal>
        <KDialog.Overlay class="fixed inset-0 z-40 bg-slate-950/50" />
        <div class="fixed inset-0 z-50 flex items-center justify-center p-4">
          <KDialog.Content class="max-h-[90vh] w-full max-w-lg overflow-y-auto rounded-lg bg-white p-5 shadow-xl dark:bg-slate-900 dark:text-slate-100">
            <div class="mb-3 flex items-start justify-between gap-4">
              <KDialog.Title class="text-lg font-semibold">{props.title}</KDialog.Title>
              <KDialog.CloseButton class="rounded p-1 text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-800" aria-label="Close">
                ✕
              </KDialog.CloseButton>
            </div>
            {props.description === undefined ? null : (
              <KDialog.Description class="mb-3 text-sm text-slate-600 dark:text-slate-400">{props.description}</KDialog.Description>
            )}
            {props.children}
          </KDialog.Content>
        </div>
      </KDialog.Portal>
    </KDialog>
  )
}
