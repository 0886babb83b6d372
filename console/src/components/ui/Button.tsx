import { Button as KButton } from "@kobalte/core/button"
import { type JSX, splitProps } from "solid-js"

export type ButtonVariant = "primary" | "secondary" | "danger" | "ghost"

const variants: Record<ButtonVariant, string> = {
  primary: "bg-indigo-600 text-white hover:bg-indigo-500 data-[disabled]:bg-indigo-300 dark:data-[disabled]:bg-indigo-900",
  secondary:
    "border border-slate-300 bg-white text-slate-800 hover:bg-slate-50 dark:border-slate-600 dark:bg-slate-800 dark:text-slate-100 dark:hover:bg-slate-700",
  danger: "bg-red-600 text-white hover:bg-red-500 data-[disabled]:bg-red-300",
  ghost: "text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
}

export interface ButtonProps extends JSX.ButtonHTMLAttributes<HTMLButtonElement> {
  readonly variant?: ButtonVariant
  readonly size?: "sm" | "md"
  readonly pending?: boolean
}

/** A button (Kobalte: keyboard and disabled semantics); `pending` disables it and shows a spinner. */
export function Button(props: ButtonProps) {
  const [local, rest] = splitProps(props, ["variant", "size", "pending", "class", "children", "disabled"])
  return (
    <KButton
      {...(rest as object)}
      disabled={local.disabled === true || local.pending === true}
      class={`inline-flex items-center justify-center gap-2 rounded-md font-medium transition-colors focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-500 data-[disabled]:cursor-not-allowed data-[disabled]:opacity-60 ${
        local.size === "sm" ? "px-2.5 py-1 text-xs" : "px-3.5 py-2 text-sm"
      } ${variants[local.variant ?? "primary"]} ${local.class ?? ""}`}
    >
      {local.pending === true ? <span class="size-3 animate-spin rounded-full border-2 border-current border-t-transparent" aria-hidden="true" /> : null}
      {local.children}
    </KButton>
  )
}
