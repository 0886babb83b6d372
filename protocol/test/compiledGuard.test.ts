import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { agreesWithInterpreter, DeviceFrame, Heartbeat, isCompilable } from "../src/index.js"

const vectors: ReadonlyArray<{ readonly name: string; readonly frame: string }> = JSON.parse(
  readFileSync(new URL("../vectors/device-frames.json", import.meta.url), "utf8")
).vectors

const parsedObjects = vectors.flatMap((vector) => {
  try {
    const value: unknown = JSON.parse(vector.frame)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? [{ name: vector.name, value: value as Record<string, unknown> }] : []
  } catch {
    return []
  }
})

/** Values that probe each kind of check: types, ranges, integers, lengths, patterns, literals. */
const probes: ReadonlyArray<unknown> = [
  undefined, null, true, false, 0, -1, 1, 1.5, 101, -201, 2_147_483_648, Number.MAX_SAFE_INTEGER + 2, "", "x",
  "wifi", "satellite", "a\u0001b", "x".repeat(65), "x".repeat(256), "x".repeat(513), [], {}, "heartbeat", "1.4.0",
  { locked: true, nested: { a: [1, 2] } }, "succeeded", "failed", "received", "accepted"
]

describe("compiled frame guards", () => {
  it("compile for the frames a device sends all the time (the rest keep the interpreter)", () => {
    expect(isCompilable(Heartbeat)).toBe(true)
    const compiled = DeviceFrame.members.filter((member) => isCompilable(member)).map((member) => member.identifier)
    expect(compiled).toEqual(expect.arrayContaining(["Hello", "Heartbeat", "Ping", "RenewTicket", "CommandAck", "CommandResult"]))
  })

  it("agree with the Schema interpreter on every vector and on every single-field mutation of them", () => {
    let checked = 0
    for (const member of DeviceFrame.members) {
      for (const { name, value } of parsedObjects) {
        expect(agreesWithInterpreter(member, value), `${member.identifier} / ${name}`).toBe(true)
        checked++
        for (const key of [...Object.keys(value), "extra"]) {
          for (const probe of probes) {
            const mutated: Record<string, unknown> = { ...value }
            if (probe === undefined) delete mutated[key]
            else mutated[key] = probe
            expect(agreesWithInterpreter(member, mutated), `${member.identifier} / ${name} / ${key}=${JSON.stringify(probe)}`).toBe(true)
            checked++
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(1000)
  })
})
