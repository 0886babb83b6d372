package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Heartbeat
import com.nexmdm.agent.core.storage.FileStorage
import java.io.File
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** PROTOCOL.md 9.1-9.2: the outbox keeps every heartbeat until the durable watermark passes it. */
class HeartbeatOutboxTest {
    private fun heartbeat(seq: Long) = Heartbeat(seq, 1_764_000_000_000 + seq, 50, false, 1, 2, 3, "wifi", agentVersion = "1.0", uptimeS = seq.toInt())

    @Test
    fun `entries are trimmed only up to the durable watermark and survive a restart`() {
        val dir = tempDir("outbox")
        val outbox = HeartbeatOutbox(FileStorage(dir))
        for (seq in 1L..10) outbox.add(heartbeat(seq))
        assertEquals(4, outbox.trimTo(4))
        assertEquals(0, outbox.trimTo(3), "the watermark never goes back")
        assertEquals((5L..10).toList(), outbox.entriesAbove(0).map { it.seq })
        assertEquals((8L..10).toList(), outbox.entriesAbove(7).map { it.seq })

        val reopened = HeartbeatOutbox(FileStorage(dir))
        assertEquals((5L..10).toList(), reopened.entriesAbove(0).map { it.seq })
        assertEquals(heartbeat(7), reopened.entriesAbove(6, 1).single())
        assertEquals(10, reopened.lastSeq)
        assertEquals(4, reopened.durableSeq)
        assertEquals(11, reopened.nextSeq())
    }

    @Test
    fun `the next seq follows the engine watermark when local state is behind it`() {
        val outbox = HeartbeatOutbox(FileStorage(tempDir("outbox")))
        outbox.trimTo(41) // welcome.durableSeq of a device that lost its state
        assertEquals(42, outbox.nextSeq())
        assertFailsWith<IllegalArgumentException> { outbox.add(heartbeat(41)) }
        outbox.add(heartbeat(42))
        assertEquals(43, outbox.nextSeq())
    }

    @Test
    fun `a full outbox drops its oldest entries and compaction keeps the rest`() {
        val dir = tempDir("outbox")
        val outbox = HeartbeatOutbox(FileStorage(dir), capacity = 50)
        for (seq in 1L..500) {
            outbox.add(heartbeat(seq))
            if (seq % 7 == 0L) outbox.trimTo(seq - 20)
        }
        val expected = outbox.entriesAbove(0).map { it.seq }
        assertTrue(expected.size <= 50)
        assertEquals(500, expected.last())
        val log = File(dir, "heartbeat-outbox.log").readLines()
        assertTrue(log.size <= 2 * 50 + 64 + 2, "log was compacted (${log.size} lines)")
        assertEquals(expected, HeartbeatOutbox(FileStorage(dir), capacity = 50).entriesAbove(0).map { it.seq })
    }

    @Test
    fun `a torn last line from a crash is ignored`() {
        val dir = tempDir("outbox")
        val outbox = HeartbeatOutbox(FileStorage(dir))
        outbox.add(heartbeat(1))
        outbox.add(heartbeat(2))
        File(dir, "heartbeat-outbox.log").appendText("A {\"seq\":3,\"ts\"")
        assertEquals(listOf(1L, 2L), HeartbeatOutbox(FileStorage(dir)).entriesAbove(0).map { it.seq })
    }

    @Test
    fun `the interval and cost of a sample are stored with it, and entries of the previous version load without them`() {
        val dir = tempDir("outbox")
        // An entry written by the previous agent version: no intervalS, wakeups, txBytes, reconnects.
        File(dir, "heartbeat-outbox.log").writeText(
            "A {\"seq\":1,\"ts\":1764000000001,\"batteryPct\":50,\"charging\":false,\"memFreeMb\":1,\"memTotalMb\":2,\"storageFreeMb\":3,\"network\":\"wifi\",\"agentVersion\":\"1.0\",\"uptimeS\":1}\n",
        )
        val outbox = HeartbeatOutbox(FileStorage(dir))
        assertEquals(heartbeat(1), outbox.entriesAbove(0).single())
        val withCost = heartbeat(2).copy(intervalS = 900, wakeups = 4, txBytes = 0, reconnects = 2)
        outbox.add(withCost)
        assertEquals(listOf(heartbeat(1), withCost), HeartbeatOutbox(FileStorage(dir)).entriesAbove(0))
    }

    @Test
    fun `an invalid heartbeat never enters the outbox`() {
        val outbox = HeartbeatOutbox(FileStorage(tempDir("outbox")))
        assertFailsWith<com.nexmdm.agent.core.protocol.FrameError> { outbox.add(heartbeat(1).copy(batteryPct = 120)) }
        assertEquals(0, outbox.size)
    }
}
