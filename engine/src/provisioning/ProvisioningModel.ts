/**
 * Bodies of the provisioning endpoints of the device plane (what enrollment scripts send), the
 * names the agent contract fixes (AGENT-CONTRACT.md), and the admin API's provisioning payloads.
 */
import { Schema } from "effect"

/** The agent's package and components: AGENT-CONTRACT.md is the prose of the same values. */
export const AGENT_PACKAGE = "com.nexmdm.agent"
/** Class names: fixed whatever the release's package (a build may add a suffix to the package). */
export const ADMIN_RECEIVER_CLASS = `${AGENT_PACKAGE}.AdminReceiver`
export const ENROLL_RECEIVER_CLASS = `${AGENT_PACKAGE}.EnrollReceiver`
export const AGENT_SERVICE_CLASS = `${AGENT_PACKAGE}.AgentService`
export const ENROLL_ACTION = `${AGENT_PACKAGE}.ENROLL`
export const EXTRA_SERVER_URL = "server_url"
export const EXTRA_ENROLLMENT_TOKEN = "enrollment_token"
export const EXTRA_DEVICE_SERIAL = "device_serial"
/** Device-plane routes of ProvisioningRoutes.ts. */
export const REPORTS_PATH = "/v1/provisioning/reports"
export const STATUS_PATH = "/v1/provisioning/status"
/** Oldest Android the agent supports (8.0). */
export const MIN_SDK = 26
/** Runtime permissions the scripts grant (POST_NOTIFICATIONS only from SDK 33, where it exists). */
export const RUNTIME_PERMISSIONS = [
  "android.permission.READ_PHONE_STATE",
  "android.permission.ACCESS_FINE_LOCATION",
  "android.permission.ACCESS_COARSE_LOCATION"
] as const
export const NOTIFICATION_PERMISSION = "android.permission.POST_NOTIFICATIONS"

const Printable = (min: number, max: number) =>
  Schema.String.pipe(Schema.minLength(min), Schema.maxLength(max), Schema.pattern(/^[\x20-\x7E]*$/))

/** An adb serial as the scripts accept it (they refuse a device whose serial has other characters). */
export const DeviceSerial = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._:-]{1,128}$/)).annotations({ identifier: "DeviceSerial" })

export const ReportStage = Schema.Literal("preflight", "install", "device_owner", "permissions", "handoff", "enroll")
export type ReportStage = typeof ReportStage.Type

export const ProvisioningProblem = Schema.Struct({
  /** Stable, e.g. ACCOUNTS_PRESENT, DEVICE_OWNER_EXISTS, MULTIPLE_USERS, ANDROID_TOO_OLD, INSTALL_FAILED. */
  code: Schema.String.pipe(Schema.pattern(/^[A-Z][A-Z0-9_]{0,47}$/)),
  message: Printable(0, 500)
})
export type ProvisioningProblem = typeof ProvisioningProblem.Type

export const DeviceFacts = Schema.Struct({
  model: Schema.optional(Printable(0, 128)),
  androidRelease: Schema.optional(Printable(0, 32)),
  sdk: Schema.optional(Schema.Int.pipe(Schema.between(0, 1000))),
  accounts: Schema.optional(Schema.Int.pipe(Schema.between(0, 10000))),
  users: Schema.optional(Schema.Int.pipe(Schema.between(0, 10000))),
  deviceOwner: Schema.optional(Printable(0, 255))
})
export type DeviceFacts = typeof DeviceFacts.Type

/** POST /v1/provisioning/reports: a script's finding about one device (a failed preflight, mostly). */
export class ProvisioningReportRequest extends Schema.Class<ProvisioningReportRequest>("ProvisioningReportRequest")({
  token: Printable(1, 256),
  serial: DeviceSerial,
  stage: ReportStage,
  ok: Schema.Boolean,
  problems: Schema.Array(ProvisioningProblem).pipe(Schema.maxItems(20)),
  facts: Schema.optionalWith(DeviceFacts, { default: () => ({}) })
}) {}

/** POST /v1/provisioning/status: the token's state, and which of `serials` enrolled with it. */
export class ProvisioningStatusRequest extends Schema.Class<ProvisioningStatusRequest>("ProvisioningStatusRequest")({
  token: Printable(1, 256),
  serials: Schema.optionalWith(Schema.Array(DeviceSerial).pipe(Schema.maxItems(1000)), { default: () => [] })
}) {}

export const TokenState = Schema.Literal("active", "expired", "used_up", "revoked")
export type TokenState = typeof TokenState.Type

export interface TokenStatus {
  readonly id: string
  readonly label: string | null
  readonly state: TokenState
  readonly maxUses: number
  readonly uses: number
  readonly expiresAt: Date
}

export interface EnrolledSerial {
  readonly serial: string
  readonly deviceId: string
  readonly enrolledAt: Date
}

export class ProvisioningReport extends Schema.Class<ProvisioningReport>("ProvisioningReport")({
  id: Schema.Number,
  serial: Schema.String,
  at: Schema.Date,
  stage: ReportStage,
  ok: Schema.Boolean,
  problems: Schema.Array(ProvisioningProblem),
  facts: DeviceFacts,
  sourceIp: Schema.NullOr(Schema.String)
}) {}
