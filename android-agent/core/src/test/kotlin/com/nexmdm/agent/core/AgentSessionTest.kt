package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.PowerState
import com.nexmdm.agent.core.storage.MemoryStorage
import com.nexmdm.agent.core.transport.HttpResponse
import com.nexmdm.agent.core.transport.HttpTransport
import com.nexmdm.agent.core.transport.WebSocketConnection
import com.nexmdm.agent.core.transport.WebSocketListener
import com.nexmdm.agent.core.transport.WebSocketTransport
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicLong
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.test.fail

/**
 * The connection manager against scripted transports: outbox resend order after refusals (9.3),
 * trimming only on the durable watermark (9.2), the switch to the HTTP fallback (12.2), and the
 * interval by power state with the cost of each sample (9.6).
 */
class AgentSessionTest {
    private val storage = MemoryStorage().apply {
        write(Credentials.DOCUMENT, Json.write(Credentials("http://engine.test", "dev_0123456789abcdefghijklmn", "ds_x", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "t1.x", 8_000_000_000_000_000L, 3600).toJson()))
    }
    private val sockets = FakeSockets()
    private val http = FakeHttp()
    private val sessions = mutableListOf<AgentSession>()

    @AfterTest
    fun stop() = sessions.forEach { it.shutdown() }

    private fun session(clock: () -> Long = System::currentTimeMillis): AgentSession = AgentSession(
        storage, http, sockets, { TelemetrySample(50, false, 1, 2, 3, "wifi", uptimeS = 1) }, DeviceRunnerlessExecutor,
        SessionConfig(agentVersion = "test", backoff = Backoff(baseMs = 10, capMs = 20), resendFramesPerSecond = 100), clock = clock,
    ).also { sessions += it }

    private fun welcome(durableSeq: Long = 0, policy: String? = null) =
        """{"type":"welcome","deviceId":"d","serverTime":1,"heartbeatIntervalS":3600,"durableSeq":$durableSeq,"ticketExpiresAt":8000000000000000""" +
            (if (policy != null) ""","heartbeatPolicy":$policy}""" else "}")

    private val charging = PowerState(charging = true, batteryPct = 80, doze = false, metered = false)
    private val onBattery = charging.copy(charging = false)

    private fun waitUntil(what: String, timeoutMs: Long = 5_000, check: () -> Boolean) {
        val deadline = System.currentTimeMillis() + timeoutMs
        while (!check()) {
            if (System.currentTimeMillis() > deadline) fail("timed out waiting for $what; sent ${sockets.sentTypes()} requests ${http.requests}")
            Thread.sleep(10)
        }
    }

    @Test
    fun `after a refusal the outbox is resent from the oldest unacked entry, in order, after the wait`() {
        val session = session()
        session.start()
        waitUntil("a socket") { sockets.connections.size == 1 }
        val socket = sockets.connections[0]
        socket.listener.onMessage("""{"type":"welcome","deviceId":"dev_0123456789abcdefghijklmn","serverTime":${System.currentTimeMillis()},"heartbeatIntervalS":3600,"durableSeq":0,"ticketExpiresAt":8000000000000000}""")
        waitUntil("seq 1 sent") { socket.heartbeatSeqs() == listOf(1L) }
        repeat(3) { session.heartbeatNow() }
        waitUntil("seqs 1-4 sent") { socket.heartbeatSeqs() == listOf(1L, 2, 3, 4) }

        socket.listener.onMessage("""{"type":"ack","seq":1,"durableSeq":0}""")
        for (seq in 2..4) socket.listener.onMessage("""{"type":"error","code":"BACKPRESSURE","message":"buffer full","seq":$seq,"retryAfterMs":300}""")
        val refusedAt = System.currentTimeMillis()
        waitUntil("the resend") { socket.heartbeatSeqs().size == 7 }
        assertTrue(System.currentTimeMillis() - refusedAt >= 250, "resent before retryAfterMs")
        assertEquals(listOf(1L, 2, 3, 4, 2, 3, 4), socket.heartbeatSeqs())

        // Acks alone trim nothing; the durable watermark does.
        for (seq in 2..4) socket.listener.onMessage("""{"type":"ack","seq":$seq,"durableSeq":1}""")
        waitUntil("trim to 1") { session.outbox.size == 3 }
        socket.listener.onMessage("""{"type":"durable","durableSeq":4}""")
        waitUntil("empty outbox") { session.outbox.size == 0 }
    }

    @Test
    fun `on reconnect only entries above welcome durableSeq are resent, and seqs continue`() {
        val session = session()
        session.start()
        waitUntil("a socket") { sockets.connections.size == 1 }
        repeat(4) { session.heartbeatNow() } // 1 (start) + 4, all before welcome: nothing sent yet
        assertEquals(emptyList(), sockets.connections[0].heartbeatSeqs())
        sockets.connections[0].listener.onMessage("""{"type":"welcome","deviceId":"d","serverTime":1,"heartbeatIntervalS":3600,"durableSeq":3,"ticketExpiresAt":8000000000000000}""")
        waitUntil("resend above 3") { sockets.connections[0].heartbeatSeqs() == listOf(4L, 5) }
        sockets.connections[0].listener.onClosed(1001, "going away")
        waitUntil("a second socket") { sockets.connections.size == 2 }
        sockets.connections[1].listener.onMessage("""{"type":"welcome","deviceId":"d","serverTime":1,"heartbeatIntervalS":3600,"durableSeq":4,"ticketExpiresAt":8000000000000000}""")
        waitUntil("resend above 4") { sockets.connections[1].heartbeatSeqs() == listOf(5L) }
        assertEquals(6, session.heartbeatNow())
    }

    @Test
    fun `three socket failures while HTTP works switch to the HTTP fallback`() {
        sockets.refuse = true
        val session = session()
        session.start()
        waitUntil("the fallback") { session.mode == AgentSession.Mode.FALLBACK }
        assertTrue(sockets.connections.size >= 3)
        waitUntil("heartbeats over HTTP") { http.requests.any { it.startsWith("POST /v1/device/heartbeats") } }
        waitUntil("the outbox trimmed by the HTTP answer") { session.outbox.size == 0 }
        assertTrue(http.requests.any { it.startsWith("GET /v1/device/messages") })
    }

    @Test
    fun `each sample carries the cost since the previous one, and a resend carries the same values`() {
        val session = session()
        session.start()
        waitUntil("a socket") { sockets.connections.size == 1 }
        val socket = sockets.connections[0]
        socket.listener.onMessage(welcome())
        waitUntil("seq 1 sent") { socket.heartbeatSeqs() == listOf(1L) }
        session.heartbeatNow()
        waitUntil("seq 2 sent") { socket.heartbeatSeqs() == listOf(1L, 2) }
        val (first, second) = socket.heartbeats()
        fun cost(heartbeat: Map<String, Any?>) = listOf("intervalS", "wakeups", "txBytes", "reconnects").map { heartbeat[it] }
        // Since the session started: the first timer tick and the first connection attempt, nothing sent.
        assertEquals(listOf(3600L, 1L, 0L, 1L), cost(first))
        assertEquals(listOf(3600L, 0L, socket.sentHeartbeats()[0].toByteArray().size.toLong(), 0L), cost(second))

        socket.listener.onMessage("""{"type":"ack","seq":1,"durableSeq":0}""")
        socket.listener.onMessage("""{"type":"error","code":"BACKPRESSURE","message":"buffer full","seq":2,"retryAfterMs":50}""")
        waitUntil("the resend") { socket.heartbeatSeqs() == listOf(1L, 2, 2) }
        assertEquals(socket.sentHeartbeats()[1], socket.sentHeartbeats()[2], "a resend is the stored sample, not a new count")
        session.heartbeatNow()
        waitUntil("seq 3 sent") { socket.heartbeatSeqs().size == 4 }
        assertEquals(listOf(3600L, 0L, 2L * socket.sentHeartbeats()[1].toByteArray().size, 0L), cost(socket.heartbeats()[3]))
    }

    @Test
    fun `a change of power state re-arms the heartbeat timer with the interval the policy chooses`() {
        val session = session()
        session.onPowerStateChanged(charging)
        session.start()
        waitUntil("a socket") { sockets.connections.size == 1 }
        val socket = sockets.connections[0]
        socket.listener.onMessage(welcome(policy = """{"chargingS":3600,"batteryS":1,"meteredS":3600,"lowBatteryS":3600,"lowBatteryPct":15,"dozeS":3600}"""))
        waitUntil("seq 1 sent") { socket.heartbeatSeqs() == listOf(1L) }
        assertEquals(3600, session.intervalS)

        session.onPowerStateChanged(onBattery)
        waitUntil("heartbeats every second on battery") { socket.heartbeatSeqs().size >= 3 }
        assertEquals(listOf(3600L, 1L, 1L), socket.heartbeats().take(3).map { it["intervalS"] })

        session.onPowerStateChanged(charging)
        Thread.sleep(200)
        val sent = socket.heartbeatSeqs().size
        Thread.sleep(1_500)
        assertEquals(sent, socket.heartbeatSeqs().size, "back on the hour-long interval")
    }

    @Test
    fun `a shorter interval that has already passed since the last heartbeat sends one at once`() {
        val offset = AtomicLong()
        val session = session(clock = { System.currentTimeMillis() + offset.get() })
        session.onPowerStateChanged(charging)
        session.start()
        waitUntil("a socket") { sockets.connections.size == 1 }
        val socket = sockets.connections[0]
        socket.listener.onMessage(welcome(policy = """{"chargingS":3600,"batteryS":1800,"meteredS":3600,"lowBatteryS":3600,"lowBatteryPct":15,"dozeS":3600}"""))
        waitUntil("seq 1 sent") { socket.heartbeatSeqs() == listOf(1L) }

        offset.set(1_900_000) // 1900 s later: past the battery interval, not the charging one
        session.onPowerStateChanged(onBattery)
        waitUntil("seq 2 at once", timeoutMs = 2_000) { socket.heartbeatSeqs() == listOf(1L, 2) }
        assertEquals(1800L, socket.heartbeats()[1]["intervalS"])
    }

    @Test
    fun `the HTTP fallback follows the policy of the engine's answer`() {
        sockets.refuse = true
        http.policy = """{"chargingS":3600,"batteryS":1200,"meteredS":2400,"lowBatteryS":3600,"lowBatteryPct":15,"dozeS":3600}"""
        val session = session()
        session.onPowerStateChanged(onBattery.copy(metered = true))
        session.start()
        waitUntil("the outbox trimmed by the HTTP answer") { session.mode == AgentSession.Mode.FALLBACK && session.outbox.size == 0 }
        waitUntil("the policy applied") { session.intervalS == 2400 }
        session.onPowerStateChanged(onBattery)
        waitUntil("the battery interval") { session.intervalS == 1200 }
    }

    private object DeviceRunnerlessExecutor : CommandExecutor {
        override fun supports(commandType: String) = false
        override fun execute(command: com.nexmdm.agent.core.protocol.CommandFrame) = ExecutionOutcome.Failed("NOT_SUPPORTED")
    }

    private class FakeSocket(val listener: WebSocketListener) : WebSocketConnection {
        val sent = CopyOnWriteArrayList<String>()
        override fun send(text: String): Boolean = sent.add(text)
        override fun close(code: Int, reason: String) = Unit
        override fun cancel() = Unit

        @Suppress("UNCHECKED_CAST")
        fun heartbeats(): List<Map<String, Any?>> = sent.map { Json.parse(it) as Map<String, Any?> }.filter { it["type"] == "heartbeat" }

        fun sentHeartbeats(): List<String> = sent.filter { it.startsWith("""{"type":"heartbeat"""") }

        fun heartbeatSeqs(): List<Long> = heartbeats().map { it["seq"] as Long }
    }

    private class FakeSockets : WebSocketTransport {
        val connections = CopyOnWriteArrayList<FakeSocket>()
        @Volatile var refuse = false

        override fun connect(url: String, headers: Map<String, String>, listener: WebSocketListener): WebSocketConnection {
            val socket = FakeSocket(listener)
            connections += socket
            if (refuse) Thread { listener.onFailure(java.io.IOException("refused"), 403, "") }.start()
            return socket
        }

        fun sentTypes() = connections.map { it.sent.size }
    }

    private class FakeHttp : HttpTransport {
        val requests = CopyOnWriteArrayList<String>()
        /** The `heartbeatPolicy` of heartbeat answers (JSON), if any. */
        @Volatile var policy: String? = null

        @Suppress("UNCHECKED_CAST")
        override fun request(method: String, url: String, headers: Map<String, String>, body: String?, timeoutMs: Long): HttpResponse {
            val path = url.removePrefix("http://engine.test")
            requests += "$method $path"
            return when {
                path.startsWith("/v1/device/messages") -> {
                    Thread.sleep(50)
                    HttpResponse(200, """{"messages":[],"durableSeq":0}""")
                }
                path == "/v1/device/heartbeats" -> {
                    val seqs = ((Json.parse(body!!) as Map<String, Any?>)["heartbeats"] as List<Map<String, Any?>>).map { it["seq"] as Long }
                    val answer = linkedMapOf<String, Any?>("acked" to seqs, "durableSeq" to seqs.last(), "heartbeatIntervalS" to 3600)
                    policy?.let { answer["heartbeatPolicy"] = Json.parse(it) }
                    HttpResponse(200, Json.write(answer))
                }
                else -> HttpResponse(404, """{"error":{"code":"NOT_FOUND","message":"no"}}""")
            }
        }
    }
}
