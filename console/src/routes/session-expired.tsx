import { A, useSearchParams } from "@solidjs/router"
import { AuthLayout } from "../components/AuthLayout"

export default function SessionExpired() {
  const [params] = useSearchParams()
  const next = () => (typeof params["next"] === "string" ? params["next"] : "/")
  return (
    <AuthLayout title="Your session has ended">
      <p class="mb-4 text-sm text-slate-600 dark:text-slate-300" data-testid="session-expired">
        For your security you were signed out: the session expired, was revoked (a password or role change), or the account was disabled.
        Nothing you had saved is lost.
      </p>
      <A
        href={`/login?next=${encodeURIComponent(next())}`}
        class="inline-flex w-full justify-center rounded-md bg-indigo-600 px-3.5 py-2 text-sm font-medium text-white hover:bg-indigo-500"
      >
        Sign in again
      </A>
    </AuthLayout>
  )
}
