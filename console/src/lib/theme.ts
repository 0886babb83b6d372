/** Light/dark theme: the user's choice in localStorage, else the system's. */
import { createSignal } from "solid-js"

export type Theme = "light" | "dark"
const KEY = "nexmdm.theme"

const initial = (): Theme => {
  if (typeof window === "undefined") return "light"
  const saved = localStorage.getItem(KEY)
  if (saved === "light" || saved === "dark") return saved
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light"
}

const [theme, setThemeSignal] = createSignal<Theme>(initial())
export { theme }

export const applyTheme = () => document.documentElement.classList.toggle("dark", theme() === "dark")

export const toggleTheme = () => {
  setThemeSignal(theme() === "dark" ? "light" : "dark")
  localStorage.setItem(KEY, theme())
  applyTheme()
}
