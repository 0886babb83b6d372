package com.nexmdm.agent.core

import kotlin.random.Random
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/** PROTOCOL.md 12.1: full jitter in [0, min(60 s, 1 s * 2^attempt)), a server wait as a lower bound. */
class BackoffTest {
    @Test
    fun `ceilings double from one second up to the sixty second cap`() {
        val backoff = Backoff()
        assertEquals(listOf(1_000L, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000), (0..7).map { backoff.ceilingMs(it) })
        assertEquals(60_000L, backoff.ceilingMs(10_000))
    }

    @Test
    fun `delays stay within the bounds and are spread (full jitter)`() {
        val backoff = Backoff(random = Random(42))
        for (attempt in 0..12) {
            val delays = (1..500).map { backoff.delayMs(attempt) }
            val ceiling = backoff.ceilingMs(attempt)
            assertTrue(delays.all { it in 0 until ceiling }, "attempt $attempt: ${delays.minOrNull()}..${delays.maxOrNull()} outside [0, $ceiling)")
            assertTrue(delays.average() in ceiling * 0.4..ceiling * 0.6, "attempt $attempt: mean ${delays.average()} not about half of $ceiling")
            assertTrue(delays.minOrNull()!! < ceiling * 0.1 && delays.maxOrNull()!! > ceiling * 0.9, "attempt $attempt: not spread over the range")
        }
    }

    @Test
    fun `a server provided wait is a lower bound`() {
        val backoff = Backoff(random = Random(1))
        repeat(100) { assertTrue(backoff.delayMs(0, retryAfterMs = 5_000) == 5_000L) }
        repeat(100) { assertTrue(backoff.delayMs(10, retryAfterMs = 5_000) >= 5_000) }
    }
}
