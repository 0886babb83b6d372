import { describe, expect, it } from "vitest"
import { commandSigningString, resultSigningString, sign, verifySignature } from "@nexmdm/protocol/signing"
import { computeCommandFigures, type CommandRow } from "../src/Commands.js"

describe("computeCommandFigures", () => {
  const rows: Array<CommandRow> = [
    { id: "cmd_a", deviceId: "dev_1", status: "succeeded", bulkJobId: null, completedMs: 1_000_120 },
    { id: "cmd_b", deviceId: "dev_2", status: "sent", bulkJobId: null, completedMs: null },
    { id: "cmd_c", deviceId: "dev_1", status: "succeeded", bulkJobId: "bulk_x", completedMs: 2_000_300 },
    { id: "cmd_d", deviceId: "dev_2", status: "succeeded", bulkJobId: "bulk_x", completedMs: 2_000_400 }
  ]
  const roundTrips = {
    sent: [
      { id: "cmd_a", deviceId: "dev_1", postAtEpochMs: 1_000_000, postMs: 5 },
      { id: "cmd_b", deviceId: "dev_2", postAtEpochMs: 1_000_050, postMs: 5 }
    ],
    failures: [],
    failedPosts: 0
  }
  const fanOut = { jobId: "bulk_x", total: 2, postAtEpochMs: 2_000_000, doneAtEpochMs: 2_000_500, lastProgress: null }

  it("measures round trips to completed_at and flags commands that did not succeed", () => {
    const figures = computeCommandFigures(rows, roundTrips, fanOut, new Map([["cmd_c", 2_000_100], ["cmd_d", 2_000_250]]))
    expect(figures.rttCount).toBe(1)
    expect(figures.rtt.max).toBe(120)
    expect(figures.notSucceeded).toBe(1)
    expect(figures.fanoutDelivered).toBe(2)
    expect(figures.fanoutAllMs).toBe(250)
    expect(figures.fanoutNotSucceeded).toBe(0)
    expect(figures.fanoutCompletedMs).toBe(400)
  })

  it("has no fan-out total while a device never received the bulk command", () => {
    const figures = computeCommandFigures(rows, roundTrips, fanOut, new Map([["cmd_c", 2_000_100]]))
    expect(figures.fanoutDelivered).toBe(1)
    expect(figures.fanoutAllMs).toBeNull()
  })
})

describe("the simulated device's signing", () => {
  it("verifies an engine signature and signs a result the engine can verify", () => {
    const key = Buffer.alloc(32, 7)
    const command = { id: "cmd_aaaaaaaaaaaaaaaaaaaaaaaa", deviceId: "dev_bbbbbbbbbbbbbbbbbbbbbbbb", commandType: "ping", issuedAt: 1, expiresAt: 2, params: {} }
    const sig = sign(key, commandSigningString(command))
    expect(verifySignature(key, commandSigningString(command), sig)).toBe(true)
    expect(verifySignature(key, commandSigningString({ ...command, deviceId: "dev_cccccccccccccccccccccccc" }), sig)).toBe(false)
    const result = { id: command.id, deviceId: command.deviceId, status: "succeeded", completedAt: 3, result: { agentVersion: "bench" } }
    expect(verifySignature(key, resultSigningString(result), sign(key, resultSigningString(result)))).toBe(true)
  })
})
