/**
 * Canonical encodings for command and result signatures (PROTOCOL.md, "Signing").
 *
 *   command: "nexmdm-cmd-v1\n" + id + "\n" + deviceId + "\n" + commandType + "\n" + issuedAt + "\n"
 *            + expiresAt + "\n" + canonicalJson(params)
 *   result:  "nexmdm-result-v1\n" + id + "\n" + deviceId + "\n" + status + "\n" + completedAt + "\n"
 *            + canonicalJson(result ?? null) + "\n" + (error ?? "")
 *
 * signature = base64url(HMAC-SHA256(key, utf8(string))), no padding; key = the enrollment `hmacKey`
 * (base64-decoded). Binding the device id stops a command for one device from being replayed to
 * another; issuedAt/expiresAt bound replay in time, and devices remember executed ids.
 */
import { createHmac, timingSafeEqual } from "node:crypto"

/**
 * JSON with object keys sorted (by UTF-16 code units, as JavaScript sorts), no whitespace, and
 * numbers as JSON.stringify writes them. Parameters hold only strings, booleans, integers,
 * null, arrays and objects, so every implementation can reproduce it byte for byte.
 */
export const canonicalJson = (value: unknown): string => {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("non-finite number in signed data")
    return JSON.stringify(value) ?? "null"
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`
}

export interface SignedCommandFields {
  readonly id: string
  readonly deviceId: string
  readonly commandType: string
  readonly issuedAt: number
  readonly expiresAt: number
  readonly params: unknown
}

export interface SignedResultFields {
  readonly id: string
  readonly deviceId: string
  readonly status: string
  readonly completedAt: number
  readonly result?: unknown
  readonly error?: string | undefined
}

export const commandSigningString = (c: SignedCommandFields): string =>
  `nexmdm-cmd-v1\n${c.id}\n${c.deviceId}\n${c.commandType}\n${c.issuedAt}\n${c.expiresAt}\n${canonicalJson(c.params)}`

export const resultSigningString = (r: SignedResultFields): string =>
  `nexmdm-result-v1\n${r.id}\n${r.deviceId}\n${r.status}\n${r.completedAt}\n${canonicalJson(r.result ?? null)}\n${r.error ?? ""}`

export const sign = (key: Uint8Array, text: string): string => createHmac("sha256", key).update(text, "utf8").digest("base64url")

export const verifySignature = (key: Uint8Array, text: string, signature: string): boolean => {
  const expected = createHmac("sha256", key).update(text, "utf8").digest()
  const given = Buffer.from(signature, "base64url")
  return given.length === expected.length && timingSafeEqual(given, expected)
}
