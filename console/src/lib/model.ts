/** The admin API's JSON shapes as the console reads them (dates arrive as ISO strings). */
import type { CommandStatus } from "@nexmdm/protocol"

export type Role = "owner" | "admin" | "viewer"
export type Presence = "connected" | "overdue" | "grace" | "offline"

export interface AdminUser {
  readonly id: string
  readonly email: string
  readonly displayName: string
  readonly role: Role
  readonly createdAt: string
  readonly disabledAt: string | null
  readonly passwordChangedAt: string
}

export interface SessionBody {
  readonly tokenType: "Bearer"
  readonly accessToken: string
  readonly accessTokenExpiresAt: string
  readonly refreshToken: string
  readonly refreshTokenExpiresAt: string
  readonly user: AdminUser
}

export interface LatestHeartbeat {
  readonly recordedAt: string
  readonly batteryPct: number
  readonly charging: boolean
  readonly memFreeMb: number
  readonly memTotalMb: number
  readonly storageFreeMb: number
  readonly network: string
  readonly signalDbm: number | null
  readonly foregroundApp: string | null
  readonly agentVersion: string
}

export interface Device {
  readonly id: string
  readonly name: string | null
  readonly hardwareId: string
  readonly model: string | null
  readonly manufacturer: string | null
  readonly osVersion: string | null
  readonly agentVersion: string | null
  readonly tags: ReadonlyArray<string>
  readonly enrolledAt: string
  readonly retiredAt: string | null
  readonly presence: Presence
  readonly presenceReason: string | null
  readonly presenceSince: string | null
  readonly lastSeenAt: string | null
  readonly heartbeat: LatestHeartbeat | null
}

export interface DevicePage {
  readonly items: ReadonlyArray<Device>
  readonly nextCursor: string | null
}

export interface FleetSummary {
  readonly total: number
  readonly byPresence: Record<Presence, number>
  readonly lowBattery: number
  readonly agentVersions: ReadonlyArray<{ readonly version: string; readonly devices: number }>
  readonly retired: number
}

/** The agent's cost (PROTOCOL.md 9.6) in a bucket (sums) or point; absent where the agent sent none. */
export interface AgentCostFields {
  readonly intervalS?: number
  readonly wakeups?: number
  readonly txBytes?: number
  readonly reconnects?: number
}

/** The agent's cost over a heartbeat series' range. */
export interface AgentCost {
  /** From the device's latest heartbeat; null when it had none. */
  readonly intervalS: number | null
  readonly samples: number
  readonly wakeups: number | null
  readonly txBytes: number | null
  readonly reconnects: number | null
  /** Hours the sums cover. */
  readonly hours: number
  readonly wakeupsPerHour: number | null
  readonly txBytesPerHour: number | null
}

export interface HeartbeatBucket extends AgentCostFields {
  readonly bucketStart: string
  readonly samples: number
  readonly batteryPct: number
  readonly memFreeMb: number
  readonly storageFreeMb: number
  readonly signalDbm: number | null
}

export interface HeartbeatPoint extends AgentCostFields {
  readonly recordedAt: string
  readonly batteryPct: number
  readonly memFreeMb: number
  readonly memTotalMb: number
  readonly storageFreeMb: number
  readonly signalDbm: number | null
}

export interface HeartbeatSeries {
  readonly from: string
  readonly to: string
  readonly bucketSeconds: number | null
  readonly points: ReadonlyArray<HeartbeatPoint>
  readonly buckets: ReadonlyArray<HeartbeatBucket>
  /** Absent when the agent reports no cost (older agents). */
  readonly agentCost?: AgentCost
}

export interface DeviceEvent {
  readonly id: string
  readonly at: string
  readonly kind: string
  readonly presence: string | null
  readonly reason: string | null
  readonly detail: unknown
}

export interface Command {
  readonly id: string
  readonly deviceId: string
  readonly type: string
  readonly params: Record<string, unknown>
  readonly status: CommandStatus
  readonly bulkJobId: string | null
  readonly createdBy: string
  readonly createdAt: string
  readonly expiresAt: string
  readonly sentAt: string | null
  readonly deliveredAt: string | null
  readonly acknowledgedAt: string | null
  readonly completedAt: string | null
  readonly attempts: number
  readonly result: unknown
  readonly error: string | null
}

export interface BulkJobCreated {
  readonly jobId: string
  readonly total: number
  readonly created: boolean
}

export interface BulkJobProgress {
  readonly jobId: string
  readonly total: number
  readonly done: number
  readonly byStatus: Record<string, number>
}

export interface EnrollmentToken {
  readonly id: string
  readonly label: string | null
  readonly maxUses: number
  readonly uses: number
  readonly state: "active" | "expired" | "used_up" | "revoked"
  readonly expiresAt: string
  readonly revokedAt: string | null
  readonly createdAt: string
  /** Applied to every device that enrols with the token. */
  readonly tags: ReadonlyArray<string>
}

export interface CreatedEnrollmentToken {
  readonly id: string
  readonly token: string
  readonly expiresAt: string
  readonly maxUses: number
  readonly label: string | null
  readonly tags: ReadonlyArray<string>
}

export interface AuditRecord {
  readonly id: string
  readonly at: string
  readonly actorKind: "user" | "api_key" | "system"
  readonly actorId: string | null
  readonly actorLabel: string | null
  readonly action: string
  readonly targetKind: string | null
  readonly targetId: string | null
  readonly sourceIp: string | null
  readonly outcome: "success" | "failure"
  readonly detail: Record<string, unknown> | null
}

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

export interface ApiKeyInfo {
  readonly id: string
  readonly name: string
  readonly prefix: string
  readonly scopes: ReadonlyArray<string>
  readonly createdBy: string | null
  readonly createdAt: string
  readonly revokedAt: string | null
  readonly lastUsedAt: string | null
}

export interface Alert {
  readonly id: string
  readonly ruleId: string
  readonly kind: string
  readonly deviceId: string | null
  readonly state: "open" | "resolved"
  readonly [key: string]: unknown
}

export interface AlertRule {
  readonly id: string
  readonly name: string
  readonly kind: string
  readonly enabled: boolean
  readonly params: Record<string, unknown>
  readonly [key: string]: unknown
}
