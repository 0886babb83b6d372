import { describe, expect, it } from "vitest"
import { ApiError, toApiError, toCsv, withQuery } from "../../src/lib/api"
import { paramFields, toParams, validateParams } from "../../src/lib/commandForm"
import { appendPoint, bucketFor, toColumns } from "../../src/lib/series"
import { mergeTimeline } from "../../src/lib/timeline"
import { tokenFromHash } from "../../src/routes/reset-password"
import { safeNext } from "../../src/routes/login"

describe("api", () => {
  it("reads both error shapes and keeps the field issues for inline errors", () => {
    const error = toApiError(400, { _tag: "ValidationError", code: "VALIDATION_FAILED", message: "bad", issues: [{ path: ["email"], message: "expected an email address" }] })
    expect(error).toBeInstanceOf(ApiError)
    expect([error.code, error.fieldError("email"), error.fieldError("password")]).toEqual(["VALIDATION_FAILED", "expected an email address", undefined])
    expect(toApiError(404, { error: { code: "NOT_FOUND", message: "no route" } }).code).toBe("NOT_FOUND")
    expect(toApiError(502, "<html>").code).toBe("HTTP_502")
  })

  it("writes CSV that spreadsheets cannot execute", () => {
    expect(toCsv(["a", "b"], [["=HYPERLINK(1)", 'say "hi", then']])).toBe('a,b\r\n\'=HYPERLINK(1),"say ""hi"", then"\r\n')
  })

  it("leaves empty query values out", () => {
    expect(withQuery("/devices", { q: "", tag: "x", limit: 5, cursor: undefined })).toBe("/devices?tag=x&limit=5")
  })
})

describe("command forms from the protocol's parameter schemas", () => {
  it("derives fields, kinds and requiredness", () => {
    expect(paramFields("ping")).toEqual([])
    expect(paramFields("set_auto_relaunch").map((f) => [f.name, f.kind, f.required])).toEqual([
      ["packageName", "text", true],
      ["enabled", "boolean", true],
      ["checkIntervalS", "integer", true]
    ])
    expect(paramFields("wipe")[0]).toMatchObject({ name: "confirm", kind: "confirm", literal: "WIPE", required: true })
    expect(paramFields("reset_password")[0]).toMatchObject({ name: "password", secret: true, hint: "4 to 64 characters" })
    expect(paramFields("set_heartbeat_interval")[0]).toMatchObject({ name: "intervalS", hint: "5 to 3600" })
    expect(paramFields("lock")[0]).toMatchObject({ name: "message", required: false, hint: "at most 200 characters" })
  })

  it("validates with the same schema the engine uses, per field", () => {
    const params = toParams("set_heartbeat_interval", { intervalS: "2" })
    expect(params).toEqual({ intervalS: 2 })
    expect(Object.keys(validateParams("set_heartbeat_interval", params))).toEqual(["intervalS"])
    expect(validateParams("set_heartbeat_interval", { intervalS: 60 })).toEqual({})
    expect(Object.keys(validateParams("launch_app", toParams("launch_app", { packageName: "not a package" })))).toEqual(["packageName"])
    expect(validateParams("lock", toParams("lock", { message: "" }))).toEqual({})
  })
})

describe("charts and timeline", () => {
  it("keeps a range under the point budget and appends only newer live points", () => {
    expect(bucketFor(48 * 3600_000, 600)).toBe(288)
    const columns = toColumns({
      from: "",
      to: "",
      bucketSeconds: 60,
      points: [],
      buckets: [{ bucketStart: "2026-01-01T00:00:00Z", samples: 3, batteryPct: 50.04, memFreeMb: 10.4, storageFreeMb: 20, signalDbm: null }]
    })
    expect(columns.battery).toEqual([50])
    const later = appendPoint(columns, { at: Date.parse("2026-01-01T00:01:00Z"), battery: 49, memFree: 9, storageFree: 20, signal: -70 })
    expect(later.time.length).toBe(2)
    expect(appendPoint(later, { at: Date.parse("2026-01-01T00:00:30Z"), battery: 1, memFree: 1, storageFree: 1, signal: null })).toBe(later)
  })

  it("merges events, commands, alerts and audit newest first", () => {
    const merged = mergeTimeline({
      events: [{ id: "e1", at: "2026-01-01T00:00:02Z", kind: "presence", presence: "offline", reason: "no heartbeat for 75s", detail: null }],
      commands: [
        {
          id: "cmd1",
          deviceId: "d",
          type: "ping",
          params: {},
          status: "succeeded",
          bulkJobId: null,
          createdBy: "owner@example.com",
          createdAt: "2026-01-01T00:00:03Z",
          expiresAt: "",
          sentAt: null,
          deliveredAt: null,
          acknowledgedAt: null,
          completedAt: null,
          attempts: 1,
          result: null,
          error: null
        }
      ],
      alerts: [{ id: "al1", openedAt: "2026-01-01T00:00:01Z", kind: "device_offline", state: "open", summary: "offline" }],
      audit: []
    })
    expect(merged.map((entry) => [entry.source, entry.id])).toEqual([
      ["command", "cmd1"],
      ["event", "e1"],
      ["alert", "al1"]
    ])
    expect(merged[1]!.detail).toBe("no heartbeat for 75s")
  })
})

describe("auth pages", () => {
  it("reads the reset token from the fragment and never redirects off-site after sign-in", () => {
    expect(tokenFromHash("#token=abc.def")).toBe("abc.def")
    expect(tokenFromHash("")).toBe("")
    expect(safeNext("/devices/x?y=1")).toBe("/devices/x?y=1")
    expect(safeNext("//evil.example")).toBe("/")
    expect(safeNext("https://evil.example")).toBe("/")
  })
})
