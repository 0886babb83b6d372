package com.nexmdm.agent.core

import kotlin.random.Random

/**
 * PROTOCOL.md 12.1: full jitter, `random_uniform(0, min(cap, base * factor^attempt))`, with a
 * server-provided wait as a lower bound.
 */
class Backoff(
    private val baseMs: Long = 1_000,
    private val factor: Double = 2.0,
    private val capMs: Long = 60_000,
    private val random: Random = Random.Default,
) {
    /** The upper bound of the delay for [attempt] (0, 1, 2, ...). */
    fun ceilingMs(attempt: Int): Long {
        val raw = baseMs * Math.pow(factor, attempt.coerceAtMost(62).toDouble())
        return if (raw >= capMs) capMs else raw.toLong()
    }

    fun delayMs(attempt: Int, retryAfterMs: Long? = null): Long {
        val jittered = (random.nextDouble() * ceilingMs(attempt)).toLong()
        return maxOf(jittered, retryAfterMs ?: 0)
    }
}
