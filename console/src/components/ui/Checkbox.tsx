import { Checkbox as KCheckbox } from "@kobalte/core/checkbox"

/** A checkbox (Kobalte) with an accessible label, visible or only for screen readers. */
export function Checkbox(props: {
  readonly checked: boolean
  readonly indeterminate?: boolean
  readonly onChange: (checked: boolean) => void
  readonly label: string
  readonly hideLabel?: boolean
  readonly class?: string
}) {
  return (
    <KCheckbox
      checked={props.checked}
      indeterminate={props.indeterminate ?? false}
      onChange={props.onChange}
      class={`inline-flex items-center gap-2 ${props.class ?? ""}`}
    >
      <KCheckbox.Input class="peer" />
      <KCheckbox.Control class="flex size-4 items-center justify-center rounded border border-slate-400 bg-white peer-focus-visible:ring-2 peer-focus-visible:ring-indigo-500 data-[checked]:border-indigo-600 data-[checked]:bg-indigo-600 data-[indeterminate]:border-indigo-600 data-[indeterminate]:bg-indigo-600 dark:border-slate-500 dark:bg-slate-900">
        <KCheckbox.Indicator class="text-[10px] leading-none text-white">{props.indeterminate === true ? "–" : "✓"}</KCheckbox.Indicator>
      </KCheckbox.Control>
      <KCheckbox.Label class={props.hideLabel === true ? "sr-only" : "text-sm"}>{props.label}</KCheckbox.Label>
    </KCheckbox>
  )
}
