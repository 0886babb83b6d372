package com.nexmdm.agent.core.protocol

/**
 * The frames of protocol/PROTOCOL.md (sections 7 and 8), as plain data. `toJson()` gives the
 * wire object as plain values (see [Json]); [ProtocolCodec] decodes and validates.
 */
const val PROTOCOL_VERSION = 1

/** PROTOCOL.md 2.1: the largest frame either side accepts, in UTF-8 bytes. */
const val MAX_FRAME_BYTES = 16 * 1024

/** PROTOCOL.md 10, `ErrorCode` in DeviceFrames.ts. */
val ERROR_CODES: Set<String> = setOf(
    "BAD_FRAME", "BAD_REQUEST", "UNKNOWN_TYPE", "FRAME_TOO_LARGE", "UNAUTHENTICATED", "AUTH_TIMEOUT",
    "TICKET_INVALID", "TICKET_EXPIRED", "DEVICE_RETIRED", "SUPERSEDED", "RATE_LIMITED", "BACKPRESSURE",
    "PROTOCOL_VERSION", "TOKEN_INVALID", "TOKEN_EXHAUSTED", "TOKEN_EXPIRED", "CREDENTIALS_INVALID",
    "NOT_FOUND", "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE", "SHUTTING_DOWN", "SIGNATURE_INVALID",
    "UNKNOWN_COMMAND", "INTERNAL"
)

val NETWORK_TYPES: Set<String> = setOf("wifi", "cellular", "ethernet", "vpn", "none", "other")

/** WebSocket close codes (PROTOCOL.md 11). */
object CloseCode {
    const val NORMAL = 1000
    const val GOING_AWAY = 1001
    const val TOO_LARGE = 1009
    const val INTERNAL = 1011
    const val TRY_AGAIN_LATER = 1013
    const val UNAUTHENTICATED = 4001
    const val TICKET_EXPIRED = 4002
    const val DEVICE_RETIRED = 4003
    const val SUPERSEDED = 4004
    const val AUTH_TIMEOUT = 4005
    const val RATE_LIMITED = 4008
    const val TOO_MANY_BAD_FRAMES = 4009
    const val SLOW_CONSUMER = 4010
}

// ---------------------------------------------------------------------------------------------
// Device -> engine

sealed interface DeviceFrame {
    fun toJson(): Map<String, Any?>
}

data class Hello(val ticket: String, val v: Int = PROTOCOL_VERSION) : DeviceFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "hello", "v" to v, "ticket" to ticket)
}

/**
 * One telemetry sample (7.2). Over HTTP the same fields travel without `type` ([toHttpJson]).
 * The last four (9.6) are the interval the agent was using and its own cost since its previous
 * sample; they are fixed when the sample is taken, so a resend carries the same values.
 */
data class Heartbeat(
    val seq: Long,
    val ts: Long,
    val batteryPct: Int,
    val charging: Boolean,
    val memFreeMb: Int,
    val memTotalMb: Int,
    val storageFreeMb: Int,
    val network: String,
    val signalDbm: Int? = null,
    val foregroundApp: String? = null,
    val agentVersion: String,
    val uptimeS: Int,
    val intervalS: Int? = null,
    val wakeups: Int? = null,
    val txBytes: Int? = null,
    val reconnects: Int? = null,
) : DeviceFrame {
    override fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>("type" to "heartbeat").apply { putAll(toHttpJson()) }

    fun toHttpJson(): Map<String, Any?> = linkedMapOf<String, Any?>(
        "seq" to seq, "ts" to ts, "batteryPct" to batteryPct, "charging" to charging,
        "memFreeMb" to memFreeMb, "memTotalMb" to memTotalMb, "storageFreeMb" to storageFreeMb, "network" to network,
    ).apply {
        if (signalDbm != null) put("signalDbm", signalDbm)
        if (foregroundApp != null) put("foregroundApp", foregroundApp)
        put("agentVersion", agentVersion)
        put("uptimeS", uptimeS)
        if (intervalS != null) put("intervalS", intervalS)
        if (wakeups != null) put("wakeups", wakeups)
        if (txBytes != null) put("txBytes", txBytes)
        if (reconnects != null) put("reconnects", reconnects)
    }
}

data class Ping(val nonce: String? = null) : DeviceFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "ping").apply { if (nonce != null) put("nonce", nonce) }
}

object RenewTicket : DeviceFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "renew_ticket")
    override fun toString() = "RenewTicket"
}

enum class AckStage(val wire: String) { RECEIVED("received"), ACCEPTED("accepted") }

data class CommandAck(val id: String, val stage: AckStage) : DeviceFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "command_ack", "id" to id, "stage" to stage.wire)
}

enum class CommandOutcome(val wire: String) { SUCCEEDED("succeeded"), FAILED("failed") }

/** A signed command result (7.6); build it with [com.nexmdm.agent.core.Signing.signResult]. */
data class CommandResult(
    val id: String,
    val status: CommandOutcome,
    val completedAt: Long,
    val result: Map<String, Any?>? = null,
    val error: String? = null,
    val sig: String,
) : DeviceFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "command_result", "id" to id, "status" to status.wire, "completedAt" to completedAt).apply {
        if (result != null) put("result", result)
        if (error != null) put("error", error)
        put("sig", sig)
    }
}

// ---------------------------------------------------------------------------------------------
// Engine -> device

sealed interface EngineFrame {
    fun toJson(): Map<String, Any?>
}

data class Welcome(
    val deviceId: String,
    val serverTime: Long,
    val heartbeatIntervalS: Int,
    val durableSeq: Long,
    val ticketExpiresAt: Long,
    val heartbeatPolicy: HeartbeatPolicy? = null,
) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>(
        "type" to "welcome", "deviceId" to deviceId, "serverTime" to serverTime, "heartbeatIntervalS" to heartbeatIntervalS,
        "durableSeq" to durableSeq, "ticketExpiresAt" to ticketExpiresAt,
    ).apply { if (heartbeatPolicy != null) put("heartbeatPolicy", heartbeatPolicy.toJson()) }
}

data class Ack(val seq: Long, val durableSeq: Long) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "ack", "seq" to seq, "durableSeq" to durableSeq)
}

data class Pong(val nonce: String?, val serverTime: Long) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "pong").apply {
        if (nonce != null) put("nonce", nonce)
        put("serverTime", serverTime)
    }
}

data class TicketIssued(val ticket: String, val expiresAt: Long) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "ticket", "ticket" to ticket, "expiresAt" to expiresAt)
}

data class Durable(val durableSeq: Long) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "durable", "durableSeq" to durableSeq)
}

data class ErrorFrame(
    val code: String,
    val message: String,
    val seq: Long? = null,
    val retryAfterMs: Int? = null,
    val commandId: String? = null,
) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>("type" to "error", "code" to code, "message" to message).apply {
        if (seq != null) put("seq", seq)
        if (retryAfterMs != null) put("retryAfterMs", retryAfterMs)
        if (commandId != null) put("commandId", commandId)
    }
}

/**
 * A signed command (8.7). [params] keep the plain JSON values of the frame: integers as Long,
 * so that the canonical form (and therefore the signature) is reproduced exactly.
 */
data class CommandFrame(
    val id: String,
    val commandType: String,
    val params: Map<String, Any?>,
    val issuedAt: Long,
    val expiresAt: Long,
    val sig: String,
) : EngineFrame {
    override fun toJson() = linkedMapOf<String, Any?>(
        "type" to "command", "id" to id, "commandType" to commandType, "params" to params,
        "issuedAt" to issuedAt, "expiresAt" to expiresAt, "sig" to sig,
    )
}
