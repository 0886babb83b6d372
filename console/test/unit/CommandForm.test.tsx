import { cleanup, fireEvent, render, screen, waitFor } from "@solidjs/testing-library"
import { afterEach, describe, expect, it, vi } from "vitest"
import { CommandForm } from "../../src/components/CommandForm"

afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
})

const select = (value: string) => {
  const element = screen.getByLabelText("Command") as HTMLSelectElement
  fireEvent.change(element, { target: { value } })
}

describe("CommandForm", () => {
  it("renders the fields of the chosen command's schema and refuses bad values inline, without calling the API", async () => {
    const fetch = vi.fn()
    vi.stubGlobal("fetch", fetch)
    render(() => <CommandForm target={{ deviceId: "dev_aaaaaaaaaaaaaaaaaaaa" }} />)
    select("set_heartbeat_interval")
    const input = (await screen.findByLabelText("Interval s")) as HTMLInputElement
    fireEvent.input(input, { target: { value: "2" } })
    fireEvent.submit(screen.getByTestId("command-form"))
    await waitFor(() => expect(input.getAttribute("aria-invalid")).toBe("true"))
    // The schema's own message, tied to the input (Kobalte's error message is in aria-describedby).
    const described = (input.getAttribute("aria-describedby") ?? "").split(" ").map((id) => document.getElementById(id)?.textContent ?? "")
    expect(described.join(" ")).toContain("Expected a number between 5 and 3600, actual 2")
    expect(fetch).not.toHaveBeenCalled()
  })

  it("shows the engine's field error when the API refuses the parameters", async () => {
    const fetch = vi.fn(async () =>
      new Response(
        JSON.stringify({ _tag: "ValidationError", code: "VALIDATION_FAILED", message: "bad", issues: [{ path: ["params", "packageName"], message: "no such package here" }] }),
        { status: 400, headers: { "content-type": "application/json" } }
      )
    )
    vi.stubGlobal("fetch", fetch)
    render(() => <CommandForm target={{ deviceId: "dev_aaaaaaaaaaaaaaaaaaaa" }} />)
    select("launch_app")
    fireEvent.input(await screen.findByLabelText("Package name"), { target: { value: "com.example.app" } })
    fireEvent.submit(screen.getByTestId("command-form"))
    await waitFor(() => expect(screen.getByText("no such package here")).toBeTruthy())
    expect(fetch).toHaveBeenCalledTimes(1)
  })

  it("asks to confirm a wipe before sending it", async () => {
    const fetch = vi.fn()
    vi.stubGlobal("fetch", fetch)
    render(() => <CommandForm target={{ deviceIds: ["dev_aaaaaaaaaaaaaaaaaaaa", "dev_bbbbbbbbbbbbbbbbbbbb"] }} />)
    select("wipe")
    fireEvent.input(await screen.findByLabelText("Confirm"), { target: { value: "WIPE" } })
    fireEvent.submit(screen.getByTestId("command-form"))
    await waitFor(() => expect(screen.getByText("confirm that you mean it")).toBeTruthy())
    expect(screen.getByRole("button", { name: /send wipe to 2 devices/i })).toBeTruthy()
    expect(fetch).not.toHaveBeenCalled()
  })
})
