import { createResource, createSignal, Show } from "solid-js"
import { Badge, Card, PageHeader } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { Field } from "../components/ui/Field"
import { toast } from "../components/ui/Toast"
import { ApiError, get, post } from "../lib/api"
import type { SessionBody } from "../lib/model"
import { adoptSession, can, user } from "../lib/session"
import { theme, toggleTheme } from "../lib/theme"

export default function SettingsPage() {
  const [current, setCurrent] = createSignal("")
  const [next, setNext] = createSignal("")
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const [pending, setPending] = createSignal(false)
  const [status] = createResource(() =>
    get<{ retentionHours: number; mail: { smtpConfigured: boolean; from: string }; push: { configured: boolean; lastDay: Record<string, number> } }>("/console/status")
  )
  const [mailTo, setMailTo] = createSignal("")
  const [mailError, setMailError] = createSignal<ApiError | undefined>(undefined)
  const [mailPending, setMailPending] = createSignal(false)
  const sendTestMail = async (event: SubmitEvent) => {
    event.preventDefault()
    setMailPending(true)
    setMailError(undefined)
    try {
      const sent = await post<{ via: "smtp" | "outbox" }>("/console/test-mail", { to: mailTo().trim() })
      toast(
        "success",
        "Test mail sent",
        sent.via === "smtp" ? `The SMTP server accepted it for ${mailTo().trim()}.` : "No SMTP server is configured: it was kept in the mail outbox."
      )
    } catch (failure) {
      setMailError(failure as ApiError)
    } finally {
      setMailPending(false)
    }
  }
  const [ready] = createResource(async () => {
    const response = await fetch("/readyz")
    return ((await response.json()) as { status: string }).status
  })

  const change = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      adoptSession(await post<SessionBody>("/me/password", { currentPassword: current(), newPassword: next() }))
      toast("success", "Password changed", "Your other sessions were signed out.")
      setCurrent("")
      setNext("")
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }

  return (
    <div>
      <PageHeader title="Settings" />
      <div class="grid gap-4 lg:grid-cols-2">
        <Card title="Your account">
          <p class="mb-3 text-sm">
            {user()?.displayName} · {user()?.email} · <Badge tone="indigo">{user()?.role}</Badge>
          </p>
          <form class="flex flex-col gap-3" onSubmit={change} noValidate>
            <Field label="Current password" name="currentPassword" type="password" autocomplete="current-password" value={current()} onInput={setCurrent} error={error()?.fieldError("currentPassword") ?? (error()?.code === "WRONG_PASSWORD" ? "that is not your current password" : undefined)} />
            <Field label="New password" name="newPassword" type="password" autocomplete="new-password" value={next()} onInput={setNext} description="At least 12 characters." error={error()?.fieldError("newPassword")} />
            <Show when={error() !== undefined && error()!.issues.length === 0 && error()!.code !== "WRONG_PASSWORD"}>
              <p class="text-sm text-red-600">{error()!.message}</p>
            </Show>
            <div>
              <Button type="submit" pending={pending()}>
                Change password
              </Button>
            </div>
          </form>
        </Card>
        <Card title="Engine">
          <dl class="grid grid-cols-2 gap-2 text-sm">
            <dt class="text-slate-500">Readiness</dt>
            <dd>
              <Badge tone={ready() === "ready" ? "green" : "amber"}>{ready() ?? "…"}</Badge>
            </dd>
            <dt class="text-slate-500">API reference</dt>
            <dd>
              <a href="/api/docs" class="text-indigo-700 underline dark:text-indigo-300">
                /api/docs
              </a>
            </dd>
            <dt class="text-slate-500">Metrics</dt>
            <dd>
              <a href="/metrics" class="text-indigo-700 underline dark:text-indigo-300">
                /metrics
              </a>
            </dd>
            <dt class="text-slate-500">Theme</dt>
            <dd>
              <Button size="sm" variant="secondary" onClick={toggleTheme}>
                {theme() === "dark" ? "Use light theme" : "Use dark theme"}
              </Button>
            </dd>
          </dl>
          <Show when={status()}>
            {(info) => (
              <dl class="mt-4 grid grid-cols-2 gap-2 border-t border-slate-100 pt-3 text-sm dark:border-slate-800" data-testid="engine-status">
                <dt class="text-slate-500">Mail</dt>
                <dd>
                  {info().mail.smtpConfigured ? <Badge tone="green">SMTP configured</Badge> : <Badge tone="amber">no SMTP: mails kept in the outbox</Badge>}
                  <div class="text-xs text-slate-500">from {info().mail.from}</div>
                </dd>
                <dt class="text-slate-500">Push (FCM)</dt>
                <dd>
                  {info().push.configured ? <Badge tone="green">configured</Badge> : <Badge tone="amber">disabled</Badge>}
                  <div class="text-xs text-slate-500">
                    last 24 h:{" "}
                    {Object.entries(info().push.lastDay)
                      .map(([outcome, count]) => `${count} ${outcome}`)
                      .join(", ") || "no wake-ups"}
                  </div>
                </dd>
                <dt class="text-slate-500">Heartbeat retention</dt>
                <dd>{info().retentionHours} hours</dd>
              </dl>
            )}
          </Show>
          <p class="mt-3 text-xs text-slate-500">Mail is set with NEXMDM_SMTP_URL and push with NEXMDM_FCM_SERVICE_ACCOUNT_FILE.</p>
          <Show when={can("admin")}>
            <form class="mt-3 flex flex-col gap-2 border-t border-slate-100 pt-3 dark:border-slate-800" onSubmit={sendTestMail} noValidate data-testid="test-mail">
              <Field
                label="Send a test mail to"
                name="to"
                type="email"
                value={mailTo()}
                onInput={setMailTo}
                placeholder="you@example.com"
                error={mailError()?.fieldError("to")}
              />
              <Show when={mailError() !== undefined && mailError()!.issues.length === 0}>
                <p class="text-sm text-red-600">{mailError()!.message}</p>
              </Show>
              <div>
                <Button type="submit" size="sm" variant="secondary" pending={mailPending()}>
                  Send test mail
                </Button>
              </div>
            </form>
          </Show>
        </Card>
      </div>
    </div>
  )
}
