import type { CommandType } from "@nexmdm/protocol"
import { createMemo, createSignal, For, Match, Show, Switch } from "solid-js"
import { ApiError, post } from "../lib/api"
import { commandTypes, destructive, type FormValues, humanize, paramFields, toParams, validateParams } from "../lib/commandForm"
import type { BulkJobCreated, Command } from "../lib/model"
import { Button } from "./ui/Button"
import { Checkbox } from "./ui/Checkbox"
import { Field, SelectField } from "./ui/Field"
import { toast } from "./ui/Toast"

export type CommandTarget = { readonly deviceId: string } | { readonly deviceIds: ReadonlyArray<string> } | { readonly tag: string }

/**
 * Send a command: pick a type, fill the form generated from its parameter schema, confirm the
 * destructive ones. Field errors come from the schema first, then from the engine's answer.
 */
export function CommandForm(props: {
  readonly target: CommandTarget
  readonly onSent?: (result: { readonly command?: Command; readonly job?: BulkJobCreated }) => void
}) {
  const [type, setType] = createSignal<CommandType>("ping")
  const [values, setValues] = createSignal<FormValues>({})
  const [errors, setErrors] = createSignal<Record<string, string>>({})
  const [confirmed, setConfirmed] = createSignal(false)
  const [pending, setPending] = createSignal(false)
  const fields = createMemo(() => paramFields(type()))
  const set = (name: string, value: string | boolean) => setValues({ ...values(), [name]: value })
  const count = () => ("deviceIds" in props.target ? props.target.deviceIds.length : undefined)

  const submit = async (event: SubmitEvent) => {
    event.preventDefault()
    const params = toParams(type(), values())
    const problems = validateParams(type(), params)
    setErrors(problems)
    if (Object.keys(problems).length > 0) return
    if (destructive.has(type()) && !confirmed()) {
      setErrors({ _confirm: "confirm that you mean it" })
      return
    }
    setPending(true)
    try {
      if ("deviceId" in props.target) {
        const created = await post<{ command: Command; created: boolean }>(`/devices/${props.target.deviceId}/commands`, { type: type(), params })
        toast("success", `${humanize(type())} queued`, `Command ${created.command.id}`)
        props.onSent?.({ command: created.command })
      } else {
        const target = "deviceIds" in props.target ? { deviceIds: props.target.deviceIds } : { tag: props.target.tag }
        const job = await post<BulkJobCreated>("/commands/bulk", { type: type(), params, target })
        toast("success", `${humanize(type())} sent to ${job.total} devices`, `Bulk job ${job.jobId}`)
        props.onSent?.({ job })
      }
      setValues({})
      setConfirmed(false)
    } catch (failure) {
      const error = failure instanceof ApiError ? failure : new ApiError(0, "NETWORK", String(failure))
      const byField: Record<string, string> = {}
      for (const issue of error.issues) {
        const key = issue.path[0] === "params" && issue.path[1] !== undefined ? String(issue.path[1]) : "_"
        byField[key] ??= issue.message
      }
      if (Object.keys(byField).length === 0) byField["_"] = `${error.message} (${error.code})`
      setErrors(byField)
    } finally {
      setPending(false)
    }
  }

  return (
    <form class="flex flex-col gap-3" onSubmit={submit} noValidate data-testid="command-form">
      <SelectField
        label="Command"
        name="type"
        value={type()}
        options={commandTypes.map((value) => ({ value, label: humanize(value) }))}
        onChange={(value) => {
          setType(value as CommandType)
          setValues({})
          setErrors({})
          setConfirmed(false)
        }}
      />
      <For each={fields()}>
        {(field) => (
          <Switch>
            <Match when={field.kind === "boolean"}>
              <Checkbox label={humanize(field.name)} checked={values()[field.name] === true} onChange={(checked) => set(field.name, checked)} />
            </Match>
            <Match when={field.kind !== "boolean"}>
              <Field
                label={`${humanize(field.name)}${field.required ? "" : " (optional)"}`}
                name={field.name}
                type={field.secret ? "password" : field.kind === "integer" ? "number" : "text"}
                value={String(values()[field.name] ?? "")}
                onInput={(value) => set(field.name, value)}
                error={errors()[field.name]}
                {...(field.kind === "confirm" ? { description: `Type ${field.literal} to confirm.` } : field.hint === undefined ? {} : { description: field.hint })}
              />
            </Match>
          </Switch>
        )}
      </For>
      <Show when={fields().length === 0}>
        <p class="text-xs text-slate-500">This command takes no parameters.</p>
      </Show>
      <Show when={destructive.has(type())}>
        <Checkbox label={`I understand: ${humanize(type()).toLowerCase()} affects ${count() === undefined ? "this device" : `${count()} devices`}`} checked={confirmed()} onChange={setConfirmed} />
        <Show when={errors()["_confirm"]}>
          <p class="text-xs text-red-600">{errors()["_confirm"]}</p>
        </Show>
      </Show>
      <Show when={errors()["_"]}>
        <p role="alert" class="text-sm text-red-600">
          {errors()["_"]}
        </p>
      </Show>
      <div>
        <Button type="submit" pending={pending()} variant={destructive.has(type()) ? "danger" : "primary"}>
          Send {humanize(type()).toLowerCase()}
          {count() === undefined ? "" : ` to ${count()} devices`}
        </Button>
      </div>
    </form>
  )
}
