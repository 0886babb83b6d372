/**
 * QR-code provisioning: the JSON a factory-reset Android device reads in its setup wizard (tap the
 * welcome screen six times, scan) to download the agent, verify its signer, make it device owner
 * and hand it the admin extras (server URL, enrollment token), rendered as PNG or SVG.
 *
 * The signature checksum is the SHA-256 of the APK's signing certificate as URL-safe base64
 * without padding, which is what ManagedProvisioning compares against the downloaded APK.
 */
import { Data, Effect, Schema } from "effect"
import QRCode from "qrcode"
import { EXTRA_ENROLLMENT_TOKEN, EXTRA_SERVER_URL } from "./ProvisioningModel.js"
import { agentComponents } from "./EnrollmentScripts.js"

const EXTRA = "android.app.extra."

export const WifiSecurity = Schema.Literal("NONE", "WPA", "WEP")

/** Wi-Fi the device joins in the setup wizard to download the agent. */
export const WifiSettings = Schema.Struct({
  ssid: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(32), Schema.pattern(/^[^\x00-\x1F\x7F]*$/)),
  security: Schema.optionalWith(WifiSecurity, { default: () => "WPA" as const }),
  password: Schema.optional(Schema.String.pipe(Schema.maxLength(63), Schema.pattern(/^[^\x00-\x1F\x7F]*$/))),
  hidden: Schema.optional(Schema.Boolean)
})
export type WifiSettings = typeof WifiSettings.Type

export interface QrInput {
  readonly serverUrl: string
  readonly token: string
  readonly agent: {
    readonly packageName: string
    readonly apkUrl: string
    readonly signerCertSha256Hex: string
  }
  readonly wifi?: WifiSettings | undefined
  readonly skipEncryption?: boolean | undefined
  readonly leaveAllSystemAppsEnabled?: boolean | undefined
}

export class QrRenderFailed extends Data.TaggedError("QrRenderFailed")<{ readonly cause: unknown }> {}

/** Hex SHA-256 -> URL-safe base64 without padding (43 characters). */
export const signatureChecksum = (sha256Hex: string): string => {
  if (!/^[0-9a-fA-F]{64}$/.test(sha256Hex)) throw new Error("signer certificate SHA-256 must be 64 hex digits")
  return Buffer.from(sha256Hex, "hex").toString("base64url")
}

/** The provisioning JSON, as an object in the order Android's documentation lists the extras. */
export const provisioningPayload = (input: QrInput): Record<string, unknown> => {
  const payload: Record<string, unknown> = {
    [`${EXTRA}PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME`]: agentComponents(input.agent.packageName).admin,
    [`${EXTRA}PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION`]: input.agent.apkUrl,
    [`${EXTRA}PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM`]: signatureChecksum(input.agent.signerCertSha256Hex)
  }
  if (input.skipEncryption !== undefined) payload[`${EXTRA}PROVISIONING_SKIP_ENCRYPTION`] = input.skipEncryption
  if (input.leaveAllSystemAppsEnabled !== undefined) payload[`${EXTRA}PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED`] = input.leaveAllSystemAppsEnabled
  if (input.wifi !== undefined) {
    payload[`${EXTRA}PROVISIONING_WIFI_SSID`] = input.wifi.ssid
    payload[`${EXTRA}PROVISIONING_WIFI_SECURITY_TYPE`] = input.wifi.security
    if (input.wifi.password !== undefined && input.wifi.security !== "NONE") payload[`${EXTRA}PROVISIONING_WIFI_PASSWORD`] = input.wifi.password
    if (input.wifi.hidden !== undefined) payload[`${EXTRA}PROVISIONING_WIFI_HIDDEN`] = input.wifi.hidden
  }
  payload[`${EXTRA}PROVISIONING_ADMIN_EXTRAS_BUNDLE`] = {
    [EXTRA_SERVER_URL]: input.serverUrl,
    [EXTRA_ENROLLMENT_TOKEN]: input.token
  }
  return payload
}

/** The exact text the QR code carries. */
export const provisioningJson = (input: QrInput): string => JSON.stringify(provisioningPayload(input))

// Error correction M: a phone camera reads a ~600-byte payload at this size from a printed sheet.
const qrOptions = { errorCorrectionLevel: "M" as const, margin: 4 }

export const renderPng = (text: string, width = 600) =>
  Effect.tryPromise({
    try: () => QRCode.toBuffer(text, { ...qrOptions, type: "png", width }),
    catch: (cause) => new QrRenderFailed({ cause })
  })

export const renderSvg = (text: string) =>
  Effect.tryPromise({
    try: () => QRCode.toString(text, { ...qrOptions, type: "svg" }),
    catch: (cause) => new QrRenderFailed({ cause })
  })
