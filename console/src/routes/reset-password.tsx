import { A } from "@solidjs/router"
import { createSignal, Show } from "solid-js"
import { AuthLayout } from "../components/AuthLayout"
import { Button } from "../components/ui/Button"
import { Field } from "../components/ui/Field"
import { ApiError, request } from "../lib/api"

/** The reset link is /reset-password#token=...: the token stays out of server logs and referrers. */
export const tokenFromHash = (hash: string): string => new URLSearchParams(hash.replace(/^#/, "")).get("token") ?? ""

export default function ResetPassword() {
  const token = typeof location === "undefined" ? "" : tokenFromHash(location.hash)
  const [password, setPassword] = createSignal("")
  const [confirm, setConfirm] = createSignal("")
  const [done, setDone] = createSignal(false)
  const [pending, setPending] = createSignal(false)
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const [mismatch, setMismatch] = createSignal(false)

  const submit = async (event: SubmitEvent) => {
    event.preventDefault()
    setMismatch(password() !== confirm())
    if (mismatch()) return
    setPending(true)
    setError(undefined)
    try {
      await request("POST", "/auth/password-reset/confirm", { token, password: password() }, { anonymous: true })
      setDone(true)
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }

  return (
    <AuthLayout title="Choose a new password">
      <Show when={token !== ""} fallback={<p class="text-sm">This page needs the link from the reset mail. <A href="/forgot-password" class="text-indigo-700 underline">Ask for a new one</A>.</p>}>
        <Show
          when={!done()}
          fallback={
            <p role="status" class="text-sm">
              Your password was changed and every session signed out.{" "}
              <A href="/login" class="text-indigo-700 hover:underline dark:text-indigo-300">
                Sign in
              </A>
            </p>
          }
        >
          <form class="flex flex-col gap-4" onSubmit={submit} noValidate>
            <Field
              label="New password"
              name="password"
              type="password"
              autocomplete="new-password"
              description="At least 12 characters."
              value={password()}
              onInput={setPassword}
              error={error()?.fieldError("password")}
            />
            <Field
              label="Repeat it"
              name="confirm"
              type="password"
              autocomplete="new-password"
              value={confirm()}
              onInput={setConfirm}
              error={mismatch() ? "the passwords differ" : undefined}
            />
            <Show when={error() !== undefined && error()!.fieldError("password") === undefined}>
              <p role="alert" class="text-sm text-red-600">
                {error()!.code === "RESET_TOKEN_INVALID" ? "This link was used already or has expired. Ask for a new one." : error()!.message}
              </p>
            </Show>
            <Button type="submit" pending={pending()}>
              Set password
            </Button>
          </form>
        </Show>
      </Show>
    </AuthLayout>
  )
}
