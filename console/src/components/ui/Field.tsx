import { TextField } from "@kobalte/core/text-field"
import { type JSX, Show } from "solid-js"

export interface FieldProps {
  readonly label: string
  readonly name: string
  readonly type?: string
  readonly value?: string
  readonly placeholder?: string
  readonly description?: string
  readonly error?: string | undefined
  readonly required?: boolean
  readonly autocomplete?: string
  readonly multiline?: boolean
  readonly onInput?: (value: string) => void
  readonly class?: string
  readonly inputMode?: JSX.HTMLAttributes<HTMLInputElement>["inputMode"]
}

export const inputClass =
  "w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm text-slate-900 shadow-sm placeholder:text-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30 data-[invalid]:border-red-500 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100"

/** A labelled text input with its inline error (Kobalte TextField: label/description/error wired by ARIA). */
export function Field(props: FieldProps) {
  return (
    <TextField
      name={props.name}
      validationState={props.error === undefined ? "valid" : "invalid"}
      required={props.required ?? false}
      class={`flex flex-col gap-1 ${props.class ?? ""}`}
      {...(props.value === undefined ? {} : { value: props.value })}
      {...(props.onInput === undefined ? {} : { onChange: props.onInput })}
    >
      <TextField.Label class="text-sm font-medium text-slate-700 dark:text-slate-200">{props.label}</TextField.Label>
      <Show
        when={props.multiline === true}
        fallback={
          <TextField.Input
            class={inputClass}
            type={props.type ?? "text"}
            {...(props.placeholder === undefined ? {} : { placeholder: props.placeholder })}
            {...(props.autocomplete === undefined ? {} : { autocomplete: props.autocomplete })}
            {...(props.inputMode === undefined ? {} : { inputMode: props.inputMode })}
          />
        }
      >
        <TextField.TextArea class={inputClass} rows={4} {...(props.placeholder === undefined ? {} : { placeholder: props.placeholder })} />
      </Show>
      <Show when={props.description}>
        <TextField.Description class="text-xs text-slate-500 dark:text-slate-400">{props.description}</TextField.Description>
      </Show>
      <TextField.ErrorMessage class="text-xs text-red-600 dark:text-red-400">{props.error}</TextField.ErrorMessage>
    </TextField>
  )
}

/** A labelled native select (fast for long option lists, styled like the inputs). */
export function SelectField(props: {
  readonly label: string
  readonly name: string
  readonly value: string
  readonly options: ReadonlyArray<{ readonly value: string; readonly label: string }>
  readonly onChange: (value: string) => void
  readonly class?: string
}) {
  return (
    <label class={`flex flex-col gap-1 text-sm ${props.class ?? ""}`}>
      <span class="font-medium text-slate-700 dark:text-slate-200">{props.label}</span>
      <select name={props.name} class={inputClass} value={props.value} onChange={(event) => props.onChange(event.currentTarget.value)}>
        {props.options.map((option) => (
          <option value={option.value} selected={option.value === props.value}>
            {option.label}
          </option>
        ))}
      </select>
    </label>
  )
}
