/**
 * Commands as the device actor holds them: pure functions over a device's open commands, used by
 * DeviceActor.step. A command is signed once, when the actor first takes it, with the device's key;
 * the frame is kept so every resend is byte-identical (the device dedups by id).
 */
import type { CommandStatus, CommandType } from "@nexmdm/protocol"
import { commandSigningString, resultSigningString, sign, verifySignature } from "@nexmdm/protocol/signing"
import type { CommandAck, CommandResult } from "@nexmdm/protocol"

export interface OpenCommand {
  readonly id: string
  readonly type: CommandType
  readonly params: Readonly<Record<string, unknown>>
  readonly issuedAt: number
  readonly expiresAt: number
  readonly status: Exclude<CommandStatus, "succeeded" | "failed" | "expired" | "cancelled">
  readonly attempts: number
  /** The signed frame, as sent. */
  readonly frame: string
  /** Push wake-ups sent for it while the device was away, and when the last one went. */
  readonly wakeups: number
  readonly lastWakeAt: number | undefined
}

/** One change of a command, persisted by the command log and shown to watchers. */
export interface CommandTransition {
  readonly commandId: string
  readonly deviceId: string
  readonly status: CommandStatus
  readonly at: number
  readonly sentVia?: "socket" | "poll"
  readonly attempts?: number
  readonly result?: Readonly<Record<string, unknown>>
  readonly error?: string
  readonly unreachable?: boolean
}

export interface NewCommand {
  readonly id: string
  readonly type: CommandType
  readonly params: Readonly<Record<string, unknown>>
  readonly issuedAt: number
  readonly expiresAt: number
  readonly status?: OpenCommand["status"]
  readonly attempts?: number
}

export const openCommand = (deviceId: string, key: Uint8Array, command: NewCommand): OpenCommand => {
  const signed = { id: command.id, deviceId, commandType: command.type, issuedAt: command.issuedAt, expiresAt: command.expiresAt, params: command.params }
  const sig = sign(key, commandSigningString(signed))
  const frame = JSON.stringify({
    type: "command",
    id: command.id,
    commandType: command.type,
    params: command.params,
    issuedAt: command.issuedAt,
    expiresAt: command.expiresAt,
    sig
  })
  return {
    id: command.id,
    type: command.type,
    params: command.params,
    issuedAt: command.issuedAt,
    expiresAt: command.expiresAt,
    status: command.status ?? "queued",
    attempts: command.attempts ?? 0,
    frame,
    wakeups: 0,
    lastWakeAt: undefined
  }
}

/** Statuses a device report can move a command to, and the order they come in. */
const rank: Record<CommandStatus, number> = {
  queued: 0,
  sent: 1,
  delivered: 2,
  acknowledged: 3,
  succeeded: 4,
  failed: 4,
  expired: 4,
  cancelled: 4
}
export const statusRank = (status: CommandStatus) => rank[status]

export type DeviceReport =
  | { readonly _tag: "Advanced"; readonly command: OpenCommand; readonly transition: CommandTransition }
  | { readonly _tag: "Completed"; readonly transition: CommandTransition }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Rejected"; readonly code: "SIGNATURE_INVALID" | "UNKNOWN_COMMAND"; readonly message: string }

/** Applies a device's ack or result to one of its open commands. */
export const applyReport = (
  deviceId: string,
  key: Uint8Array,
  commands: ReadonlyArray<OpenCommand>,
  report: CommandAck | CommandResult,
  now: number
): DeviceReport => {
  const command = commands.find((c) => c.id === report.id)
  if (command === undefined) {
    return { _tag: "Rejected", code: "UNKNOWN_COMMAND", message: `no open command ${report.id.slice(0, 40)} (finished, expired or cancelled)` }
  }
  if (report.type === "command_ack") {
    const status = report.stage === "received" ? "delivered" : "acknowledged"
    if (rank[status] <= rank[command.status]) return { _tag: "Ignored" }
    return {
      _tag: "Advanced",
      command: { ...command, status },
      transition: { commandId: command.id, deviceId, status, at: now }
    }
  }
  const signed = resultSigningString({
    id: report.id,
    deviceId,
    status: report.status,
    completedAt: report.completedAt,
    result: report.result,
    error: report.error
  })
  if (!verifySignature(key, signed, report.sig)) {
    return { _tag: "Rejected", code: "SIGNATURE_INVALID", message: "result signature does not verify with this device's key" }
  }
  return {
    _tag: "Completed",
    transition: {
      commandId: command.id,
      deviceId,
      status: report.status,
      at: now,
      ...(report.result === undefined ? {} : { result: report.result }),
      ...(report.error === undefined ? {} : { error: report.error })
    }
  }
}
