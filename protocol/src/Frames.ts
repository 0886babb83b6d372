/** The unions of every frame each side may send (see DeviceFrames.ts and Commands.ts). */
import { Schema } from "effect"
import { CommandAck, CommandFrame, CommandResult } from "./Commands.js"
import { Ack, Durable, ErrorFrame, Heartbeat, Hello, Ping, Pong, RenewTicket, TicketIssued, Welcome } from "./DeviceFrames.js"

export const DeviceFrame = Schema.Union(Hello, Heartbeat, Ping, RenewTicket, CommandAck, CommandResult)
export type DeviceFrame = typeof DeviceFrame.Type
export const DEVICE_FRAME_TYPES = ["hello", "heartbeat", "ping", "renew_ticket", "command_ack", "command_result"] as const

export const EngineFrame = Schema.Union(Welcome, Ack, Pong, TicketIssued, Durable, ErrorFrame, CommandFrame)
export type EngineFrame = typeof EngineFrame.Type
