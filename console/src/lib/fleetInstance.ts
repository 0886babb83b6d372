/** The app's one fleet store: kept across page changes so returning to the fleet is instant. */
import { createRoot } from "solid-js"
import { createFleet } from "./fleet"

export const fleet = createRoot(() => createFleet())
