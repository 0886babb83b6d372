package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Decoded
import com.nexmdm.agent.core.protocol.FrameError
import com.nexmdm.agent.core.protocol.Heartbeat
import com.nexmdm.agent.core.protocol.HeartbeatBatchResponse
import com.nexmdm.agent.core.protocol.HeartbeatPolicy
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.PowerState
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.protocol.Welcome
import com.nexmdm.agent.core.storage.MemoryStorage
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** PROTOCOL.md 9.6: the interval by power state, and the heartbeat fields that report it and the agent's cost. */
class HeartbeatPolicyTest {
    private val policy = HeartbeatPolicy(chargingS = 30, batteryS = 60, meteredS = 120, lowBatteryS = 300, lowBatteryPct = 15, dozeS = 900)

    private fun state(charging: Boolean = false, battery: Int? = 80, doze: Boolean = false, metered: Boolean = false) = PowerState(charging, battery, doze, metered)

    @Test
    fun `the first rule that applies wins (Doze, charging, low battery, metered, battery)`() {
        val table = listOf(
            state(doze = true, charging = true, battery = 5, metered = true) to 900, // Doze before everything
            state(charging = true, battery = 5, metered = true) to 30, // charging before low battery and metered
            state(battery = 15, metered = true) to 300, // at the threshold is low; before metered
            state(battery = 0) to 300,
            state(battery = 16, metered = true) to 120,
            state(battery = 16) to 60,
            state(battery = null, metered = true) to 120, // unknown level is never low
            state(battery = null) to 60,
        )
        for ((input, expected) in table) assertEquals(expected, policy.choose(input), "for $input")
        assertEquals(60, policy.copy(lowBatteryPct = 0).choose(state(battery = 1)))
        assertEquals(300, policy.copy(lowBatteryPct = 100).choose(state(battery = 100)))
    }

    @Test
    fun `without a policy or a known power state the announced interval is used`() {
        assertEquals(45, HeartbeatPolicy.intervalS(null, state(doze = true), 45))
        assertEquals(45, HeartbeatPolicy.intervalS(policy, null, 45))
        assertEquals(900, HeartbeatPolicy.intervalS(policy, state(doze = true), 45))
    }

    @Test
    fun `set_heartbeat_interval scales every interval of the policy, not the threshold`() {
        assertEquals(HeartbeatPolicy(10, 20, 40, 100, 15, 300), policy.scaledTo(10))
        assertEquals(HeartbeatPolicy(7, 14, 28, 70, 15, 210), policy.scaledTo(7))
        val scaled = HeartbeatPolicy(3600, 7200, 14400, 36000, 15, 86400).scaledTo(3600 * 3)
        assertEquals(86400, scaled.dozeS, "kept within the wire's range")
        assertEquals(1, HeartbeatPolicy(3600, 3600, 3600, 3600, 15, 3600).scaledTo(1).batteryS)
    }

    @Test
    fun `a policy with a missing, null, fractional or out-of-range field is rejected, or absent when lenient`() {
        val good = policy.toJson()
        assertEquals(policy, HeartbeatPolicy.decode(good))
        val bad = listOf(
            good - "dozeS", good + ("chargingS" to 0L), good + ("batteryS" to 86_401L), good + ("meteredS" to 1.5),
            good + ("lowBatteryPct" to 101L), good + ("lowBatteryPct" to -1L), good + ("lowBatteryS" to null), good + ("dozeS" to "900"),
        )
        for (obj in bad) {
            val error = assertFailsWith<FrameError> { HeartbeatPolicy.decode(obj) }
            assertTrue(error.message.startsWith("heartbeatPolicy."), error.message)
            assertNull(HeartbeatPolicy.decodeOrNull(obj))
        }
        assertNull(HeartbeatPolicy.decodeOrNull(listOf(1L)))
        assertNull(HeartbeatPolicy.decodeOrNull(null))
    }

    @Test
    fun `a welcome with a malformed policy is rejected strictly and read without the policy by the agent`() {
        val text = """{"type":"welcome","deviceId":"d","serverTime":1,"heartbeatIntervalS":30,"durableSeq":0,"ticketExpiresAt":2,"heartbeatPolicy":{"chargingS":30}}"""
        assertTrue(ProtocolCodec.decodeEngineFrame(text) is Decoded.Rejected)
        val lenient = ProtocolCodec.decodeEngineFrame(text, lenientPolicy = true) as Decoded.Ok
        assertEquals(Welcome("d", 1, 30, 0, 2, heartbeatPolicy = null), lenient.frame)
        val withPolicy = Welcome("d", 1, 30, 0, 2, heartbeatPolicy = policy)
        assertEquals(withPolicy, (ProtocolCodec.decodeEngineFrame(ProtocolCodec.encode(withPolicy)) as Decoded.Ok).frame)
    }

    @Test
    fun `an HTTP heartbeat answer keeps a valid policy and drops a malformed one`() {
        fun decode(policyJson: String) = HeartbeatBatchResponse.decode(
            @Suppress("UNCHECKED_CAST")
            (Json.parse("""{"acked":[1],"durableSeq":1,"heartbeatIntervalS":30$policyJson}""") as Map<String, Any?>),
        )
        assertEquals(policy, decode(""","heartbeatPolicy":${Json.write(policy.toJson())}""").heartbeatPolicy)
        assertNull(decode(""","heartbeatPolicy":{"chargingS":30,"batteryS":60,"meteredS":120,"lowBatteryS":300,"lowBatteryPct":150,"dozeS":900}""").heartbeatPolicy)
        assertNull(decode("").heartbeatPolicy)
        assertEquals(listOf(1L), decode(""","heartbeatPolicy":"fast"""").acked)
    }

    @Test
    fun `the interval and cost fields survive encoding, decoding and the HTTP form`() {
        val heartbeat = Heartbeat(7, 1_764_000_000_000, 64, false, 1, 2, 3, "cellular", agentVersion = "1", uptimeS = 9, intervalS = 120, wakeups = 3, txBytes = 1840, reconnects = 0)
        assertEquals(heartbeat, (ProtocolCodec.decodeDeviceFrame(ProtocolCodec.encode(heartbeat)) as Decoded.Ok).frame)
        val http = normalized(heartbeat.toHttpJson()) as Map<*, *>
        assertEquals(listOf(120L, 3L, 1840L, 0L), listOf("intervalS", "wakeups", "txBytes", "reconnects").map { http[it] })
        val without = heartbeat.copy(intervalS = null, wakeups = null, txBytes = null, reconnects = null)
        assertTrue(listOf("intervalS", "wakeups", "txBytes", "reconnects").none { it in without.toHttpJson() }, "absent, never null")
        for (invalid in listOf(heartbeat.copy(intervalS = 0), heartbeat.copy(intervalS = 86_401), heartbeat.copy(wakeups = -1), heartbeat.copy(txBytes = -5))) {
            assertEquals("BAD_FRAME", assertFailsWith<FrameError> { ProtocolCodec.encode(invalid) }.code)
        }
    }

    @Test
    fun `the cost of a sample is counted since the previous stored sample and clamped to the wire's range`() {
        val stats = AgentStats()
        stats.wakeups.addAndGet(2)
        stats.bytesSent.addAndGet(100)
        stats.reconnects.incrementAndGet()
        assertEquals(SampleCost(2, 100, 1), stats.sample { it })
        stats.bytesSent.addAndGet(50)
        assertEquals(SampleCost(0, 50, 0), stats.sample { it })
        stats.wakeups.incrementAndGet()
        assertFailsWith<IllegalStateException> { stats.sample { error("not stored") } }
        assertEquals(SampleCost(1, 0, 0), stats.sample { it }, "a sample that was not stored passes its cost on")
        stats.bytesSent.addAndGet(5_000_000_000)
        assertEquals(Int.MAX_VALUE, stats.sample { it }.txBytes)
    }

    @Test
    fun `credentials keep the policy, and credentials of the previous version load without one`() {
        val storage = MemoryStorage()
        val old = """{"serverUrl":"http://e","deviceId":"d","deviceSecret":"s","hmacKey":"k","ticket":"t","ticketExpiresAt":5,"heartbeatIntervalS":30,"intervalOverrideS":60}"""
        storage.write(Credentials.DOCUMENT, old)
        val loaded = Credentials.load(storage)!!
        assertNull(loaded.heartbeatPolicy)
        assertEquals(60, loaded.announcedIntervalS)
        storage.write(Credentials.DOCUMENT, Json.write(loaded.copy(heartbeatPolicy = policy).toJson()))
        assertEquals(policy, Credentials.load(storage)!!.heartbeatPolicy)
    }
}
