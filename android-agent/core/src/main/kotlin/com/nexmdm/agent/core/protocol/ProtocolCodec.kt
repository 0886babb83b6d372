package com.nexmdm.agent.core.protocol

/** Why a frame was rejected, with the code the engine answers with (`BAD_FRAME`, `UNKNOWN_TYPE`). */
class FrameError(val code: String, override val message: String) : Exception(message)

/** A decode outcome: the frame, or the error that a strict decoder reports. */
sealed class Decoded<out T> {
    data class Ok<T>(val frame: T) : Decoded<T>()
    data class Rejected(val error: FrameError, val type: String?) : Decoded<Nothing>()
}

/**
 * Encodes and decodes every device <-> engine frame with the validation rules of
 * protocol/src (DeviceFrames.ts, Commands.ts), pinned by the files in protocol/vectors.
 * Unknown fields are dropped; optional fields are absent or valid, never `null`.
 */
object ProtocolCodec {
    val DEVICE_FRAME_TYPES = setOf("hello", "heartbeat", "ping", "renew_ticket", "command_ack", "command_result")
    val ENGINE_FRAME_TYPES = setOf("welcome", "ack", "pong", "ticket", "durable", "error", "command")

    private const val EPOCH_MAX = 8_640_000_000_000_000L
    private const val INT_MAX = 2_147_483_647L

    // ---------------------------------------------------------------------------------------
    // Encoding

    /** The wire text of a device frame; throws [FrameError] when the frame breaks a rule (a bug). */
    fun encode(frame: DeviceFrame): String {
        val json = frame.toJson()
        decodeDeviceObject(json) // the agent validates what it sends (vectors are its checklist)
        val text = Json.write(json)
        if (text.toByteArray(Charsets.UTF_8).size > MAX_FRAME_BYTES) throw FrameError("FRAME_TOO_LARGE", "frame over $MAX_FRAME_BYTES bytes")
        return text
    }

    /** The wire text of an engine frame (used by tests and fakes). */
    fun encode(frame: EngineFrame): String = Json.write(frame.toJson())

    // ---------------------------------------------------------------------------------------
    // Decoding

    fun decodeDeviceFrame(text: String): Decoded<DeviceFrame> = decodeText(text) { obj ->
        val type = obj["type"]
        if (type !is String) throw FrameError("BAD_FRAME", "type: missing or not a string")
        if (type !in DEVICE_FRAME_TYPES) throw FrameError("UNKNOWN_TYPE", "unknown frame type \"${type.take(40)}\"")
        decodeDeviceObject(obj)
    }

    /**
     * Strict decoding of an engine frame, as the vectors expect: unknown types, unknown error codes
     * and unknown command types are rejected with `BAD_FRAME`. The agent ignores such frames,
     * except a `command` of an unknown type, which it answers (see [decodeCommandLenient]). The
     * agent decodes with [lenientPolicy] (see [decodeEngineObject]).
     */
    fun decodeEngineFrame(text: String, lenientPolicy: Boolean = false): Decoded<EngineFrame> = decodeText(text) { decodeEngineObject(it, lenientPolicy) }

    fun decodeDeviceObject(obj: Map<String, Any?>): DeviceFrame {
        val f = Fields(obj)
        return when (val type = f.string("type")) {
            "hello" -> {
                val v = f.long("v", Long.MIN_VALUE, Long.MAX_VALUE)
                if (v != PROTOCOL_VERSION.toLong()) throw FrameError("BAD_FRAME", "v: expected $PROTOCOL_VERSION, got $v")
                Hello(ticket = f.string("ticket", 1, 512))
            }
            "heartbeat" -> decodeHeartbeat(f)
            "ping" -> Ping(f.optString("nonce", 0, 64))
            "renew_ticket" -> RenewTicket
            "command_ack" -> CommandAck(
                id = f.string("id", 0, 64),
                stage = f.literal("stage", AckStage.entries.associateBy { it.wire }),
            )
            "command_result" -> CommandResult(
                id = f.string("id", 0, 64),
                status = f.literal("status", CommandOutcome.entries.associateBy { it.wire }),
                completedAt = f.long("completedAt", 0, EPOCH_MAX),
                result = f.optObject("result"),
                error = f.optString("error", 0, 500, printable = true),
                sig = f.string("sig", 0, 128),
            )
            else -> throw FrameError("UNKNOWN_TYPE", "unknown frame type \"${type.take(40)}\"")
        }
    }

    /** The fields of 7.2; also the element of an HTTP heartbeat batch (which has no `type`). */
    fun decodeHeartbeat(f: Fields): Heartbeat = Heartbeat(
        seq = f.long("seq", 1, Json.MAX_SAFE_INTEGER),
        ts = f.long("ts", 0, EPOCH_MAX),
        batteryPct = f.int("batteryPct", 0, 100),
        charging = f.bool("charging"),
        memFreeMb = f.int("memFreeMb", 0, INT_MAX),
        memTotalMb = f.int("memTotalMb", 0, INT_MAX),
        storageFreeMb = f.int("storageFreeMb", 0, INT_MAX),
        network = f.literal("network", NETWORK_TYPES.associateBy { it }),
        signalDbm = f.optInt("signalDbm", -200, 0),
        foregroundApp = f.optString("foregroundApp", 1, 255, printable = true),
        agentVersion = f.string("agentVersion", 1, 64, printable = true),
        uptimeS = f.int("uptimeS", 0, INT_MAX),
        intervalS = f.optInt("intervalS", 1, MAX_INTERVAL_S.toLong()),
        wakeups = f.optInt("wakeups", 0, INT_MAX),
        txBytes = f.optInt("txBytes", 0, INT_MAX),
        reconnects = f.optInt("reconnects", 0, INT_MAX),
    )

    /**
     * [lenientPolicy]: the agent's reading of `welcome`, where a malformed `heartbeatPolicy` is
     * treated as absent (9.6) instead of failing the frame; a strict decoder rejects it.
     */
    fun decodeEngineObject(obj: Map<String, Any?>, lenientPolicy: Boolean = false): EngineFrame {
        val f = Fields(obj)
        return when (val type = f.string("type")) {
            "welcome" -> Welcome(
                deviceId = f.string("deviceId"),
                serverTime = f.long("serverTime", 0, EPOCH_MAX),
                heartbeatIntervalS = f.int("heartbeatIntervalS", 1, INT_MAX),
                durableSeq = f.long("durableSeq", 0, Json.MAX_SAFE_INTEGER),
                ticketExpiresAt = f.long("ticketExpiresAt", 0, EPOCH_MAX),
                heartbeatPolicy = if (lenientPolicy) HeartbeatPolicy.decodeOrNull(obj["heartbeatPolicy"]) else f.optObject("heartbeatPolicy")?.let { HeartbeatPolicy.decode(it) },
            )
            "ack" -> Ack(seq = f.long("seq", 1, Json.MAX_SAFE_INTEGER), durableSeq = f.long("durableSeq", 0, Json.MAX_SAFE_INTEGER))
            "pong" -> Pong(nonce = f.optString("nonce"), serverTime = f.long("serverTime", 0, EPOCH_MAX))
            "ticket" -> TicketIssued(ticket = f.string("ticket"), expiresAt = f.long("expiresAt", 0, EPOCH_MAX))
            "durable" -> Durable(durableSeq = f.long("durableSeq", 0, Json.MAX_SAFE_INTEGER))
            "error" -> ErrorFrame(
                code = f.literal("code", ERROR_CODES.associateBy { it }),
                message = f.string("message"),
                seq = f.optLong("seq", 1, Json.MAX_SAFE_INTEGER),
                retryAfterMs = f.optInt("retryAfterMs", 0, INT_MAX),
                commandId = f.optString("commandId"),
            )
            "command" -> {
                val command = decodeCommandLenient(obj)
                if (command.commandType !in CommandParams.TYPES) throw FrameError("BAD_FRAME", "commandType: unknown command type \"${command.commandType.take(40)}\"")
                command
            }
            else -> throw FrameError("BAD_FRAME", "type: unknown engine frame type \"${type.take(40)}\"")
        }
    }

    /**
     * A `command` frame checked for the agent's step 1 of 15.4 only (well-formed), so that a
     * command of a type this agent does not know can still be answered `UNSUPPORTED_COMMAND`.
     */
    fun decodeCommandLenient(obj: Map<String, Any?>): CommandFrame {
        val f = Fields(obj)
        if (f.string("type") != "command") throw FrameError("BAD_FRAME", "type: expected \"command\"")
        return CommandFrame(
            id = f.string("id"),
            commandType = f.string("commandType"),
            params = f.obj("params"),
            issuedAt = f.long("issuedAt", 0, EPOCH_MAX),
            expiresAt = f.long("expiresAt", 0, EPOCH_MAX),
            sig = f.string("sig"),
        )
    }

    /** Parses a frame's text into a JSON object, or explains why it is not one. */
    fun parseObject(text: String): Map<String, Any?> {
        val value = try {
            Json.parse(text)
        } catch (error: Json.ParseException) {
            throw FrameError("BAD_FRAME", "frame is not valid JSON")
        }
        @Suppress("UNCHECKED_CAST")
        return value as? Map<String, Any?> ?: throw FrameError("BAD_FRAME", "frame must be a JSON object")
    }

    private fun <T> decodeText(text: String, decode: (Map<String, Any?>) -> T): Decoded<T> {
        var type: String? = null
        return try {
            val obj = parseObject(text)
            type = obj["type"] as? String
            Decoded.Ok(decode(obj))
        } catch (error: FrameError) {
            Decoded.Rejected(error, type)
        }
    }
}

/** Typed access to the fields of a JSON object, with the error messages of the engine's schemas. */
class Fields(private val obj: Map<String, Any?>, private val prefix: String = "") {
    private fun bad(name: String, what: String): Nothing = throw FrameError("BAD_FRAME", "$prefix$name: $what")

    private fun required(name: String): Any {
        if (!obj.containsKey(name)) bad(name, "is missing")
        return obj[name] ?: bad(name, "must not be null")
    }

    private fun present(name: String): Boolean {
        if (!obj.containsKey(name)) return false
        if (obj[name] == null) bad(name, "must be absent or valid, not null")
        return true
    }

    fun string(name: String, min: Int = 0, max: Int = Int.MAX_VALUE, printable: Boolean = false): String {
        val value = required(name) as? String ?: bad(name, "expected a string")
        if (value.length < min) bad(name, "expected at least $min characters")
        if (value.length > max) bad(name, "expected at most $max characters")
        if (printable && !isPrintable(value)) bad(name, "only printable ASCII is allowed")
        return value
    }

    fun optString(name: String, min: Int = 0, max: Int = Int.MAX_VALUE, printable: Boolean = false): String? =
        if (present(name)) string(name, min, max, printable) else null

    fun long(name: String, min: Long, max: Long): Long {
        // Long from parsed text; Int from frames the agent built itself (validated before sending).
        val value = when (val raw = required(name)) {
            is Long -> raw
            is Int -> raw.toLong()
            else -> bad(name, "expected an integer")
        }
        if (value < min || value > max) bad(name, "expected an integer between $min and $max")
        return value
    }

    fun optLong(name: String, min: Long, max: Long): Long? = if (present(name)) long(name, min, max) else null

    fun int(name: String, min: Long, max: Long): Int = long(name, min, max).toInt()

    fun optInt(name: String, min: Long, max: Long): Int? = if (present(name)) int(name, min, max) else null

    fun bool(name: String): Boolean = required(name) as? Boolean ?: bad(name, "expected a boolean")

    fun <T> literal(name: String, allowed: Map<String, T>): T {
        val value = required(name) as? String ?: bad(name, "expected one of ${allowed.keys}")
        return allowed[value] ?: bad(name, "expected one of ${allowed.keys}, got \"${value.take(40)}\"")
    }

    @Suppress("UNCHECKED_CAST")
    fun obj(name: String): Map<String, Any?> = required(name) as? Map<String, Any?> ?: bad(name, "expected an object")

    fun optObject(name: String): Map<String, Any?>? = if (present(name)) obj(name) else null

    companion object {
        fun isPrintable(value: String): Boolean = value.all { it in ' '..'~' }
    }
}
