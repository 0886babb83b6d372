import { A } from "@solidjs/router"
import { createSignal, Show } from "solid-js"
import { AuthLayout } from "../components/AuthLayout"
import { Button } from "../components/ui/Button"
import { Field } from "../components/ui/Field"
import { ApiError, request } from "../lib/api"

export default function ForgotPassword() {
  const [email, setEmail] = createSignal("")
  const [sent, setSent] = createSignal(false)
  const [pending, setPending] = createSignal(false)
  const [error, setError] = createSignal<ApiError | undefined>(undefined)

  const submit = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      await request("POST", "/auth/password-reset", { email: email() }, { anonymous: true })
      setSent(true)
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }

  return (
    <AuthLayout title="Reset your password">
      <Show
        when={!sent()}
        fallback={
          <p class="text-sm" role="status">
            If an account exists for <strong>{email()}</strong>, a reset link is on its way. The link works once and expires soon.{" "}
            <A href="/login" class="text-indigo-700 hover:underline dark:text-indigo-300">
              Back to sign in
            </A>
          </p>
        }
      >
        <form class="flex flex-col gap-4" onSubmit={submit} noValidate>
          <Field label="Email" name="email" type="email" autocomplete="username" value={email()} onInput={setEmail} error={error()?.fieldError("email")} />
          <Show when={error() !== undefined && error()!.issues.length === 0}>
            <p role="alert" class="text-sm text-red-600">
              {error()!.code === "RATE_LIMITED" ? "Too many requests: wait a minute and try again." : error()!.message}
            </p>
          </Show>
          <Button type="submit" pending={pending()}>
            Send reset link
          </Button>
          <A href="/login" class="text-center text-sm text-indigo-700 hover:underline dark:text-indigo-300">
            Back to sign in
          </A>
        </form>
      </Show>
    </AuthLayout>
  )
}
