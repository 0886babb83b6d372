import { A, useLocation, useNavigate } from "@solidjs/router"
import { createEffect, createSignal, For, type JSX, Match, onMount, Show, Switch } from "solid-js"
import { liveStatus } from "../lib/live"
import { can, resume, sessionEnded, signOut, user } from "../lib/session"
import { theme, toggleTheme } from "../lib/theme"
import type { Role } from "../lib/model"
import { Badge, Skeleton } from "./ui/Bits"

const nav: ReadonlyArray<{ readonly href: string; readonly label: string; readonly role: Role }> = [
  { href: "/", label: "Fleet", role: "viewer" },
  { href: "/commands", label: "Commands", role: "viewer" },
  { href: "/enrollment", label: "Enrollment", role: "viewer" },
  { href: "/releases", label: "Releases", role: "viewer" },
  { href: "/alerts", label: "Alerts", role: "viewer" },
  { href: "/audit", label: "Audit", role: "admin" },
  { href: "/users", label: "Users", role: "viewer" },
  { href: "/settings", label: "Settings", role: "viewer" }
]

/** The signed-in frame: navigation, connection state, user menu; sends the signed-out to /login. */
export function Shell(props: { readonly children: JSX.Element }) {
  const navigate = useNavigate()
  const location = useLocation()
  const [checked, setChecked] = createSignal(false)
  const [menuOpen, setMenuOpen] = createSignal(false)

  onMount(async () => {
    const ok = await resume()
    setChecked(true)
    if (!ok && sessionEnded() !== "expired") navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true })
  })
  createEffect(() => {
    if (sessionEnded() === "expired") navigate(`/session-expired?next=${encodeURIComponent(location.pathname)}`, { replace: true })
    else if (checked() && sessionEnded() === "signed-out") navigate("/login", { replace: true })
  })

  const isActive = (href: string) => (href === "/" ? location.pathname === "/" || location.pathname.startsWith("/devices") : location.pathname.startsWith(href))

  return (
    <Show
      when={user()}
      fallback={
        <div class="mx-auto max-w-5xl p-8">
          <Skeleton rows={6} />
        </div>
      }
    >
      {(who) => (
        <div class="flex min-h-screen flex-col md:flex-row">
          <aside class="flex shrink-0 flex-col border-slate-200 bg-white md:w-52 md:border-r dark:border-slate-800 dark:bg-slate-900">
            <div class="flex items-center justify-between px-4 py-3">
              <A href="/" class="text-lg font-bold tracking-tight text-indigo-700 dark:text-indigo-300">
                NexMDM
              </A>
              <button class="rounded p-1 md:hidden" aria-label="Menu" aria-expanded={menuOpen()} onClick={() => setMenuOpen(!menuOpen())}>
                ☰
              </button>
            </div>
            <nav class={`${menuOpen() ? "flex" : "hidden"} flex-col gap-0.5 px-2 pb-3 md:flex`} aria-label="Main">
              <For each={nav.filter((item) => can(item.role))}>
                {(item) => (
                  <A
                    href={item.href}
                    onClick={() => setMenuOpen(false)}
                    class={`rounded-md px-3 py-2 text-sm ${
                      isActive(item.href)
                        ? "bg-indigo-50 font-medium text-indigo-700 dark:bg-indigo-950 dark:text-indigo-200"
                        : "text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800"
                    }`}
                    aria-current={isActive(item.href) ? "page" : undefined}
                  >
                    {item.label}
                  </A>
                )}
              </For>
            </nav>
          </aside>
          <div class="flex min-w-0 flex-1 flex-col">
            <header class="flex items-center justify-end gap-3 border-b border-slate-200 bg-white px-4 py-2 text-sm dark:border-slate-800 dark:bg-slate-900">
              <span data-testid="live-status" data-status={liveStatus()}>
                <Switch>
                  <Match when={liveStatus() === "live"}>
                    <Badge tone="green">● Live</Badge>
                  </Match>
                  <Match when={liveStatus() === "reconnecting"}>
                    <Badge tone="amber">Reconnecting…</Badge>
                  </Match>
                </Switch>
              </span>
              <button class="rounded px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800" onClick={toggleTheme} aria-label="Toggle dark mode">
                {theme() === "dark" ? "☀" : "☾"}
              </button>
              <span class="hidden text-slate-600 sm:inline dark:text-slate-300" data-testid="whoami">
                {who().email} · <span class="font-medium">{who().role}</span>
              </span>
              <button
                class="rounded-md border border-slate-300 px-2.5 py-1 hover:bg-slate-50 dark:border-slate-600 dark:hover:bg-slate-800"
                onClick={() => void signOut()}
              >
                Sign out
              </button>
            </header>
            <main class="min-w-0 flex-1 p-4 md:p-6">{props.children}</main>
          </div>
        </div>
      )}
    </Show>
  )
}
