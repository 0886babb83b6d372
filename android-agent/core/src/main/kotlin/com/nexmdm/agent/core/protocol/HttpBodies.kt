package com.nexmdm.agent.core.protocol

/** HTTP bodies of the device plane (PROTOCOL.md 4, 5, 12, 17; Http.ts). */
data class EnrollRequest(
    val token: String,
    val hardwareId: String,
    val model: String? = null,
    val manufacturer: String? = null,
    val osVersion: String? = null,
    val agentVersion: String? = null,
    /** The serial an enrollment script knew the device by (`device_serial` of the ENROLL intent, AGENT-CONTRACT.md). */
    val serial: String? = null,
) {
    fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>("token" to token, "hardwareId" to hardwareId).apply {
        model?.let { put("model", sanitize(it, 128)) }
        manufacturer?.let { put("manufacturer", sanitize(it, 128)) }
        osVersion?.let { put("osVersion", sanitize(it, 64)) }
        agentVersion?.let { put("agentVersion", sanitize(it, 64)) }
        serial?.let { sanitize(it, 128) }?.takeIf { it.isNotEmpty() }?.let { put("serial", it) }
    }

    /** Throws [FrameError] when the engine would answer `400 BAD_REQUEST` (protocol/vectors/enroll-requests.json). */
    fun validate(): EnrollRequest = decode(toJson())

    companion object {
        /** The engine's `EnrollRequest` schema; unknown fields are dropped. */
        fun decode(obj: Map<String, Any?>): EnrollRequest {
            val f = Fields(obj)
            return EnrollRequest(
                token = f.string("token", 1, 256, printable = true),
                hardwareId = f.string("hardwareId", 1, 128, printable = true),
                model = f.optString("model", 0, 128, printable = true),
                manufacturer = f.optString("manufacturer", 0, 128, printable = true),
                osVersion = f.optString("osVersion", 0, 64, printable = true),
                agentVersion = f.optString("agentVersion", 0, 64, printable = true),
                serial = f.optString("serial", 1, 128, printable = true),
            )
        }

        /** Section 3: strings read from the system are made printable ASCII (`?` for the rest) and cut to size. */
        fun sanitize(value: String, max: Int): String = value.map { if (it in ' '..'~') it else '?' }.joinToString("").take(max)
    }
}

data class EnrollResponse(
    val deviceId: String,
    val deviceSecret: String,
    val hmacKey: String,
    val ticket: String,
    val ticketExpiresAt: Long,
    val heartbeatIntervalS: Int,
    val reenrolled: Boolean,
) {
    companion object {
        fun decode(obj: Map<String, Any?>): EnrollResponse {
            val f = Fields(obj)
            return EnrollResponse(
                f.string("deviceId"), f.string("deviceSecret"), f.string("hmacKey"), f.string("ticket"),
                f.long("ticketExpiresAt", 0, Long.MAX_VALUE), f.int("heartbeatIntervalS", 1, Int.MAX_VALUE.toLong()), f.bool("reenrolled"),
            )
        }
    }
}

data class TicketResponse(val ticket: String, val ticketExpiresAt: Long) {
    companion object {
        fun decode(obj: Map<String, Any?>) = Fields(obj).let { TicketResponse(it.string("ticket"), it.long("ticketExpiresAt", 0, Long.MAX_VALUE)) }
    }
}

data class HeartbeatBatchResponse(
    val acked: List<Long>,
    val durableSeq: Long,
    val heartbeatIntervalS: Int,
    val ticket: String?,
    val ticketExpiresAt: Long?,
    /** 9.6; a malformed policy is treated as absent (the session then uses [heartbeatIntervalS]). */
    val heartbeatPolicy: HeartbeatPolicy? = null,
) {
    companion object {
        fun decode(obj: Map<String, Any?>): HeartbeatBatchResponse {
            val f = Fields(obj)
            val acked = (obj["acked"] as? List<*> ?: throw FrameError("BAD_FRAME", "acked: expected an array")).map {
                it as? Long ?: throw FrameError("BAD_FRAME", "acked: expected integers")
            }
            return HeartbeatBatchResponse(
                acked, f.long("durableSeq", 0, Json.MAX_SAFE_INTEGER), f.int("heartbeatIntervalS", 1, Int.MAX_VALUE.toLong()),
                f.optString("ticket"), f.optLong("ticketExpiresAt", 0, Long.MAX_VALUE), HeartbeatPolicy.decodeOrNull(obj["heartbeatPolicy"]),
            )
        }
    }
}

/** `GET /v1/device/messages`: each message is decoded on its own (15.2), so one bad one does not hide the others. */
data class PendingMessages(val messages: List<Map<String, Any?>>, val durableSeq: Long) {
    companion object {
        @Suppress("UNCHECKED_CAST")
        fun decode(obj: Map<String, Any?>): PendingMessages {
            val messages = (obj["messages"] as? List<*> ?: throw FrameError("BAD_FRAME", "messages: expected an array"))
                .mapNotNull { it as? Map<String, Any?> }
            return PendingMessages(messages, Fields(obj).long("durableSeq", 0, Json.MAX_SAFE_INTEGER))
        }
    }
}

/** The body of every non-2xx answer; `code` may be one this agent does not know (treated generically). */
data class HttpErrorBody(val code: String, val message: String, val retryAfterMs: Long?) {
    companion object {
        @Suppress("UNCHECKED_CAST")
        fun decodeOrNull(text: String?): HttpErrorBody? = try {
            val error = (Json.parse(text ?: return null) as? Map<String, Any?>)?.get("error") as? Map<String, Any?> ?: return null
            HttpErrorBody(error["code"] as? String ?: return null, error["message"] as? String ?: "", (error["retryAfterMs"] as? Long))
        } catch (error: Json.ParseException) {
            null
        }
    }
}
