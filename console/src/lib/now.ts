/** A clock signal for "x ago" labels (one timer for the whole app). */
import { createSignal } from "solid-js"

const [now, setNow] = createSignal(Date.now())
if (typeof window !== "undefined") setInterval(() => setNow(Date.now()), 5000)
export { now }
