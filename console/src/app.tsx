import { Router, useLocation } from "@solidjs/router"
import { FileRoutes } from "@solidjs/start/router"
import { type JSX, onMount, Show, Suspense } from "solid-js"
import { Shell } from "./components/Shell"
import { ToastRegion } from "./components/ui/Toast"
import { applyTheme } from "./lib/theme"
import "./app.css"

/** Pages anyone may open; every other page is inside the signed-in shell. */
const PUBLIC = ["/login", "/forgot-password", "/reset-password", "/session-expired"]

function Frame(props: { readonly children?: JSX.Element }) {
  const location = useLocation()
  onMount(applyTheme)
  return (
    <>
      <Show when={!PUBLIC.includes(location.pathname)} fallback={<Suspense>{props.children}</Suspense>}>
        <Shell>
          <Suspense>{props.children}</Suspense>
        </Shell>
      </Show>
      <ToastRegion />
    </>
  )
}

export default function App() {
  return (
    <Router root={Frame}>
      <FileRoutes />
    </Router>
  )
}
