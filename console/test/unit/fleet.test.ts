import { describe, expect, it } from "vitest"
import { compareVersions, type FleetQuery, type FleetRow, liveFields, orderRows, summarize } from "../../src/lib/fleet"

const row = (id: string, fields: Partial<FleetRow> = {}): FleetRow => ({
  id,
  name: null,
  model: null,
  tags: [],
  presence: "connected",
  presenceReason: null,
  battery: 80,
  charging: false,
  memFreeMb: 1000,
  memTotalMb: 4000,
  network: "wifi",
  signalDbm: -60,
  foregroundApp: null,
  agentVersion: "1.0.0",
  lastSeen: 0,
  retired: false,
  ...fields
})

const query = (fields: Partial<FleetQuery> = {}): FleetQuery => ({ search: "", quick: "all", tag: "", sort: "name", descending: false, ...fields })

describe("fleet", () => {
  it("compares agent versions numerically, not as text", () => {
    expect(compareVersions("1.10.0", "1.9.2")).toBeGreaterThan(0)
    expect(compareVersions("2.0", "2.0.0")).toBe(0)
    expect(compareVersions("0.9", "1.0")).toBeLessThan(0)
  })

  it("summarises online, offline, low battery (not charging) and outdated agents, leaving retired devices out", () => {
    const rows = [
      row("a", { presence: "connected", battery: 10, agentVersion: "1.10.0" }),
      row("b", { presence: "grace", battery: 10, charging: true, agentVersion: "1.9.0" }),
      row("c", { presence: "offline", agentVersion: "1.9.0" }),
      row("d", { presence: "offline", retired: true, agentVersion: "0.1" })
    ]
    expect(summarize(rows)).toEqual({ total: 3, online: 2, offline: 1, lowBattery: 1, outdated: 2, latestAgent: "1.10.0" })
  })

  it("filters by search, tag and quick filter, then sorts with a stable tie-break", () => {
    const rows = [
      row("dev_b", { name: "Kiosk B", tags: ["floor-1"], battery: 50 }),
      row("dev_a", { name: "kiosk a", tags: ["floor-1"], battery: 5 }),
      row("dev_c", { name: "Scanner", tags: ["dock"], battery: 50, presence: "offline" })
    ]
    expect(orderRows(rows, query(), null)).toEqual(["dev_a", "dev_b", "dev_c"])
    expect(orderRows(rows, query({ search: "KIOSK" }), null)).toEqual(["dev_a", "dev_b"])
    expect(orderRows(rows, query({ tag: "dock" }), null)).toEqual(["dev_c"])
    expect(orderRows(rows, query({ quick: "offline" }), null)).toEqual(["dev_c"])
    expect(orderRows(rows, query({ quick: "lowBattery" }), null)).toEqual(["dev_a"])
    expect(orderRows(rows, query({ sort: "battery", descending: true }), null)).toEqual(["dev_b", "dev_c", "dev_a"])
  })

  it("takes only what a live view knows: no heartbeat leaves the telemetry fields alone", () => {
    expect(liveFields({ id: "d", presence: "offline", presenceReason: "socket closed", presenceSince: 1, acceptedSeq: 0, durableSeq: 0 })).toEqual({
      presence: "offline",
      presenceReason: "socket closed"
    })
    const fields = liveFields({
      id: "d",
      presence: "connected",
      presenceReason: "heartbeat",
      presenceSince: 1,
      lastHeartbeatAt: 5,
      acceptedSeq: 3,
      durableSeq: 3,
      lastHeartbeat: {
        seq: 3,
        batteryPct: 42,
        charging: true,
        memFreeMb: 1,
        memTotalMb: 2,
        storageFreeMb: 3,
        network: "wifi",
        agentVersion: "2.0.0",
        uptimeS: 9,
        recordedAt: 5
      }
    })
    expect(fields).toMatchObject({ battery: 42, charging: true, lastSeen: 5, signalDbm: null, foregroundApp: null, agentVersion: "2.0.0" })
  })
})
