/**
 * QR provisioning: the Android Enterprise JSON, and the QR code it is rendered to, read back with a
 * decoder (jsQR over the PNG's pixels) to exactly the same text.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { decodePng } from "./support/QrDecode.js"
import { provisioningJson, provisioningPayload, renderPng, renderSvg, signatureChecksum } from "../src/provisioning/QrProvisioning.js"

const SIGNER = "c0ffee00".repeat(8)

const input = {
  serverUrl: "https://mdm.example.com",
  token: "et_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  agent: { packageName: "com.nexmdm.agent", apkUrl: "https://mdm.example.com/v1/releases/rel_1/agent.apk", signerCertSha256Hex: SIGNER },
  wifi: { ssid: "Store 12 \"back office\"", security: "WPA" as const, password: "p@ss'word\\1" },
  skipEncryption: false,
  leaveAllSystemAppsEnabled: true
}

describe("QR provisioning", () => {
  it("builds the provisioning extras Android's setup wizard reads", () => {
    expect(provisioningPayload(input)).toEqual({
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME": "com.nexmdm.agent/.AdminReceiver",
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION": "https://mdm.example.com/v1/releases/rel_1/agent.apk",
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM": "wP_uAMD_7gDA_-4AwP_uAMD_7gDA_-4AwP_uAMD_7gA",
      "android.app.extra.PROVISIONING_SKIP_ENCRYPTION": false,
      "android.app.extra.PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED": true,
      "android.app.extra.PROVISIONING_WIFI_SSID": "Store 12 \"back office\"",
      "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE": "WPA",
      "android.app.extra.PROVISIONING_WIFI_PASSWORD": "p@ss'word\\1",
      "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE": {
        server_url: "https://mdm.example.com",
        enrollment_token: "et_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      }
    })
    // URL-safe base64 of the 32 certificate-digest bytes, without padding.
    expect(signatureChecksum(SIGNER)).toHaveLength(43)
    expect(Buffer.from(signatureChecksum(SIGNER), "base64url").toString("hex")).toBe(SIGNER)
    expect(() => signatureChecksum("abc")).toThrow()
    // Optional extras are left out when not given; an open network carries no password.
    const minimal = provisioningPayload({ ...input, wifi: { ssid: "Guest", security: "NONE", password: "ignored" }, skipEncryption: undefined, leaveAllSystemAppsEnabled: undefined })
    expect(Object.keys(minimal).filter((key) => key.includes("SKIP_ENCRYPTION") || key.includes("LEAVE_ALL") || key.includes("WIFI_PASSWORD"))).toEqual([])
  })

  it("renders a PNG that decodes back to exactly the provisioning JSON", async () => {
    const text = provisioningJson(input)
    const png = await Effect.runPromise(renderPng(text))
    expect(Buffer.from(png).subarray(1, 4).toString("latin1")).toBe("PNG")
    expect(decodePng(png)).toBe(text)
    expect(JSON.parse(decodePng(png))).toEqual(provisioningPayload(input))
  })

  it("a second, independent decoder (zbarimg) reads the same text", async (context) => {
    // An extra check (jsQR above is the required one), so it skips without zbar-tools even in CI.
    if (spawnSync("sh", ["-c", "command -v zbarimg"]).status !== 0) {
      console.warn("zbarimg not installed: skipping the second decoder (apt-get install zbar-tools)")
      return context.skip()
    }
    const text = provisioningJson(input)
    const dir = await mkdtemp(join(tmpdir(), "nexmdm-qr-"))
    try {
      await writeFile(join(dir, "qr.png"), await Effect.runPromise(renderPng(text)))
      const result = spawnSync("zbarimg", ["--raw", "-q", join(dir, "qr.png")], { encoding: "utf8" })
      expect(result.status, result.stderr).toBe(0)
      expect(result.stdout.replace(/\n$/, "")).toBe(text)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("renders a well-formed SVG", async () => {
    const svg = await Effect.runPromise(renderSvg(provisioningJson(input)))
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true)
    expect(svg).toMatch(/viewBox="0 0 (\d+) \1"/)
    // Every element is closed, in order.
    const stack: Array<string> = []
    for (const [, closing, name, selfClosing] of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
      if (closing === "/") expect(stack.pop()).toBe(name)
      else if (selfClosing !== "/") stack.push(name!)
    }
    expect(stack).toEqual([])
    expect(svg.match(/<path /g)?.length).toBeGreaterThanOrEqual(1)
  })
})
