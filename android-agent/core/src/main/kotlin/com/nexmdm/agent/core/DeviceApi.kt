package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.DeviceFrame
import com.nexmdm.agent.core.protocol.EnrollRequest
import com.nexmdm.agent.core.protocol.EnrollResponse
import com.nexmdm.agent.core.protocol.FrameError
import com.nexmdm.agent.core.protocol.Heartbeat
import com.nexmdm.agent.core.protocol.HeartbeatBatchResponse
import com.nexmdm.agent.core.protocol.HeartbeatPolicy
import com.nexmdm.agent.core.protocol.HttpErrorBody
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.PendingMessages
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.protocol.TicketResponse
import com.nexmdm.agent.core.transport.HttpTransport
import java.io.IOException

/**
 * A non-2xx answer of the device plane, or no answer at all ([status] 0, [code] `NETWORK`).
 * [code] is the `HttpErrorBody` code (PROTOCOL.md 10), possibly one this agent does not know.
 */
class ApiError(val status: Int, val code: String, message: String, val retryAfterMs: Long?) : Exception("$status $code: $message") {
    val isTicketProblem: Boolean get() = status == 401 && code in setOf("TICKET_INVALID", "TICKET_EXPIRED", "UNAUTHENTICATED")
    val isRetired: Boolean get() = code == "DEVICE_RETIRED"
    /** Enrollment answers after which retrying with the same token is pointless (4). */
    val isTokenFinal: Boolean get() = code in setOf("TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_EXHAUSTED", "BAD_REQUEST")
}

/** The HTTP endpoints of the device plane (PROTOCOL.md 4, 5, 12.2, 17.1). Blocking: call from an I/O thread. */
class DeviceApi(
    private val http: HttpTransport,
    serverUrl: String,
    /** Told the size in bytes of each request body before it is sent (the agent's cost, 9.6). */
    private val onBodySent: (Long) -> Unit = {},
) {
    private val base = serverUrl.trimEnd('/')

    val webSocketUrl: String = base.replaceFirst(Regex("^http"), "ws") + "/v1/device/ws"

    fun enroll(request: EnrollRequest): EnrollResponse {
        try {
            request.validate()
        } catch (error: FrameError) {
            throw ApiError(0, "BAD_REQUEST", "enrollment request refused before sending: ${error.message}", null)
        }
        return EnrollResponse.decode(call("POST", "/v1/enroll", null, Json.write(request.toJson())))
    }

    fun renewTicket(deviceId: String, deviceSecret: String): TicketResponse =
        TicketResponse.decode(call("POST", "/v1/device/ticket", null, Json.write(mapOf("deviceId" to deviceId, "deviceSecret" to deviceSecret))))

    fun postHeartbeats(ticket: String, heartbeats: List<Heartbeat>): HeartbeatBatchResponse {
        require(heartbeats.size in 1..100)
        heartbeats.forEach { ProtocolCodec.encode(it) }
        return HeartbeatBatchResponse.decode(call("POST", "/v1/device/heartbeats", ticket, Json.write(mapOf("heartbeats" to heartbeats.map { it.toHttpJson() }))))
    }

    fun pollMessages(ticket: String, waitS: Int): PendingMessages =
        PendingMessages.decode(call("GET", "/v1/device/messages?waitS=$waitS", ticket, null, timeoutMs = (waitS + 15) * 1000L))

    fun postCommandUpdates(ticket: String, updates: List<DeviceFrame>) {
        require(updates.size in 1..100)
        call("POST", "/v1/device/command-updates", ticket, Json.write(mapOf("updates" to updates.map { ProtocolCodec.encode(it); it.toJson() })))
    }

    fun registerFcmToken(ticket: String, token: String) {
        call("PUT", "/v1/device/fcm-token", ticket, Json.write(mapOf("token" to token)))
    }

    @Suppress("UNCHECKED_CAST")
    private fun call(method: String, path: String, ticket: String?, body: String?, timeoutMs: Long = 20_000): Map<String, Any?> {
        val headers = LinkedHashMap<String, String>()
        if (body != null) headers["Content-Type"] = "application/json"
        if (ticket != null) headers["Authorization"] = "Bearer $ticket"
        if (body != null) onBodySent(body.toByteArray(Charsets.UTF_8).size.toLong())
        val response = try {
            http.request(method, base + path, headers, body, timeoutMs)
        } catch (error: IOException) {
            throw ApiError(0, "NETWORK", error.toString(), null)
        }
        if (response.status !in 200..299) {
            val error = HttpErrorBody.decodeOrNull(response.body)
            throw ApiError(
                response.status, error?.code ?: "HTTP_${response.status}", error?.message ?: response.body.take(200),
                error?.retryAfterMs ?: response.retryAfterHeaderS?.let { it * 1000 },
            )
        }
        return try {
            Json.parse(response.body) as? Map<String, Any?> ?: throw ApiError(response.status, "BAD_RESPONSE", "not a JSON object", null)
        } catch (error: Json.ParseException) {
            throw ApiError(response.status, "BAD_RESPONSE", "not JSON", null)
        } catch (error: FrameError) {
            throw ApiError(response.status, "BAD_RESPONSE", error.message, null)
        }
    }
}

/** What enrollment returned, persisted; the ticket is replaced as new ones arrive. */
data class Credentials(
    val serverUrl: String,
    val deviceId: String,
    val deviceSecret: String,
    val hmacKey: String,
    val ticket: String,
    val ticketExpiresAt: Long,
    val heartbeatIntervalS: Int,
    /** Set by the `set_heartbeat_interval` command; wins over what the engine announces (15.7). */
    val intervalOverrideS: Int? = null,
    /** The engine's latest advice (9.6), kept so that a restarted agent follows it before `welcome`. */
    val heartbeatPolicy: HeartbeatPolicy? = null,
) {
    /** The interval announced to this device when there is no policy: the operator's, else the engine's. */
    val announcedIntervalS: Int get() = intervalOverrideS ?: heartbeatIntervalS

    fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>(
        "serverUrl" to serverUrl, "deviceId" to deviceId, "deviceSecret" to deviceSecret, "hmacKey" to hmacKey,
        "ticket" to ticket, "ticketExpiresAt" to ticketExpiresAt, "heartbeatIntervalS" to heartbeatIntervalS,
    ).apply {
        if (intervalOverrideS != null) put("intervalOverrideS", intervalOverrideS)
        if (heartbeatPolicy != null) put("heartbeatPolicy", heartbeatPolicy.toJson())
    }

    companion object {
        const val DOCUMENT = "credentials.json"

        @Suppress("UNCHECKED_CAST")
        fun load(storage: com.nexmdm.agent.core.storage.Storage): Credentials? {
            val map = Json.parse(storage.read(DOCUMENT) ?: return null) as Map<String, Any?>
            return Credentials(
                map["serverUrl"] as String, map["deviceId"] as String, map["deviceSecret"] as String, map["hmacKey"] as String,
                map["ticket"] as String, map["ticketExpiresAt"] as Long, (map["heartbeatIntervalS"] as Long).toInt(),
                (map["intervalOverrideS"] as Long?)?.toInt(), HeartbeatPolicy.decodeOrNull(map["heartbeatPolicy"]),
            )
        }
    }
}

/** Enrolls once (PROTOCOL.md 4) and stores the credentials; re-enrolment replaces them and the command records. */
class EnrollmentClient(private val http: HttpTransport, private val storage: com.nexmdm.agent.core.storage.Storage) {
    fun enroll(serverUrl: String, request: EnrollRequest): Credentials {
        val response = DeviceApi(http, serverUrl).enroll(request)
        val credentials = Credentials(serverUrl, response.deviceId, response.deviceSecret, response.hmacKey, response.ticket, response.ticketExpiresAt, response.heartbeatIntervalS)
        // New key: ids executed under the old credentials can never come back with a valid signature (4).
        CommandRecords(storage).clear()
        storage.write(Credentials.DOCUMENT, Json.write(credentials.toJson()))
        return credentials
    }
}
