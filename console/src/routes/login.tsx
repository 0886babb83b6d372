import { A, useNavigate, useSearchParams } from "@solidjs/router"
import { createSignal, Show } from "solid-js"
import { AuthLayout } from "../components/AuthLayout"
import { Button } from "../components/ui/Button"
import { Field } from "../components/ui/Field"
import { ApiError } from "../lib/api"
import { signIn } from "../lib/session"

/** Only same-origin paths: `next` comes from the URL and must not send people elsewhere. */
export const safeNext = (next: unknown): string => (typeof next === "string" && next.startsWith("/") && !next.startsWith("//") ? next : "/")

export default function Login() {
  const navigate = useNavigate()
  const [params] = useSearchParams()
  const [email, setEmail] = createSignal("")
  const [password, setPassword] = createSignal("")
  const [pending, setPending] = createSignal(false)
  const [error, setError] = createSignal<ApiError | undefined>(undefined)

  const submit = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      await signIn(email(), password())
      navigate(safeNext(params["next"]), { replace: true })
    } catch (failure) {
      setError(failure instanceof ApiError ? failure : new ApiError(0, "NETWORK", String(failure)))
    } finally {
      setPending(false)
    }
  }

  const message = () => {
    const failure = error()
    if (failure === undefined) return undefined
    if (failure.code === "INVALID_CREDENTIALS") return "Wrong email or password."
    if (failure.code === "ACCOUNT_DISABLED") return "This account is disabled. Ask an owner to enable it."
    if (failure.code === "RATE_LIMITED") return `Too many attempts. Try again in ${failure.retryAfterSeconds ?? 60} s.`
    return failure.message
  }

  return (
    <AuthLayout title="Sign in">
      <form class="flex flex-col gap-4" onSubmit={submit} noValidate>
        <Field label="Email" name="email" type="email" autocomplete="username" value={email()} onInput={setEmail} error={error()?.fieldError("email")} />
        <Field
          label="Password"
          name="password"
          type="password"
          autocomplete="current-password"
          value={password()}
          onInput={setPassword}
          error={error()?.fieldError("password")}
        />
        <Show when={message() !== undefined && error()?.issues.length === 0}>
          <p role="alert" class="text-sm text-red-600 dark:text-red-400" data-testid="login-error">
            {message()}
          </p>
        </Show>
        <Button type="submit" pending={pending()}>
          Sign in
        </Button>
        <A href="/forgot-password" class="text-center text-sm text-indigo-700 hover:underline dark:text-indigo-300">
          Forgot your password?
        </A>
      </form>
    </AuthLayout>
  )
}
