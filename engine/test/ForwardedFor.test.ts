import { describe, expect, it } from "vitest"
import { lastForwardedAddress } from "../src/internal/ForwardedFor.js"

describe("trusted forwarding header", () => {
  it("takes the entry the proxy appended, never one the client wrote before it", () => {
    expect(lastForwardedAddress("203.0.113.9")).toBe("203.0.113.9")
    expect(lastForwardedAddress("6.6.6.6, 203.0.113.9")).toBe("203.0.113.9")
    expect(lastForwardedAddress("6.6.6.6,203.0.113.9 ")).toBe("203.0.113.9")
  })

  it("falls back to the socket address when the header is absent or ends empty", () => {
    expect(lastForwardedAddress(undefined)).toBeUndefined()
    expect(lastForwardedAddress("")).toBeUndefined()
    expect(lastForwardedAddress("6.6.6.6, ")).toBeUndefined()
  })
})
