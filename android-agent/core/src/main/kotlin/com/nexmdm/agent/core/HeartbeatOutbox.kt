package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Fields
import com.nexmdm.agent.core.protocol.Heartbeat
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.storage.Storage
import java.util.TreeMap

/**
 * The persistent heartbeat outbox of PROTOCOL.md 9.2: every heartbeat is written here before it
 * is sent, and removed only when the engine reports it durable (`durableSeq` of an ack, a
 * `durable` frame, `welcome` or an HTTP answer), never on an ack alone.
 *
 * Stored as an append-only log (`A <heartbeat>`, `D <durableSeq>`, `R <seq>` for entries dropped
 * because the outbox was full), compacted when the log grows to several times the live entries,
 * so that a heartbeat costs one small synced append rather than a rewrite of the whole outbox.
 * It also remembers the last seq used, so seqs keep increasing across restarts (9.1).
 */
class HeartbeatOutbox(private val storage: Storage, private val capacity: Int = DEFAULT_CAPACITY, private val logName: String = "heartbeat-outbox.log") {
    private val entries = TreeMap<Long, Heartbeat>()
    private var logLines = 0

    /** The highest seq ever put in the outbox (persisted). */
    var lastSeq: Long = 0
        private set

    /** The highest durable watermark seen from the engine (persisted). */
    var durableSeq: Long = 0
        private set

    /** Entries dropped because the outbox was full (the gaps of 9.2). */
    var dropped: Long = 0
        private set

    init {
        for (line in storage.readLines(logName)) {
            logLines++
            val argument = line.substring(2)
            when (line[0]) {
                'A' -> {
                    @Suppress("UNCHECKED_CAST")
                    val heartbeat = ProtocolCodec.decodeHeartbeat(Fields(Json.parse(argument) as Map<String, Any?>))
                    lastSeq = maxOf(lastSeq, heartbeat.seq)
                    if (heartbeat.seq > durableSeq) entries[heartbeat.seq] = heartbeat
                }
                'D' -> applyDurable(argument.toLong())
                'L' -> lastSeq = maxOf(lastSeq, argument.toLong())
                'R' -> entries.remove(argument.toLong())
            }
        }
    }

    @get:Synchronized
    val size: Int get() = entries.size

    /** 9.1: the next seq is `max(local last seq, latest durableSeq seen) + 1`. */
    @Synchronized
    fun nextSeq(): Long = maxOf(lastSeq, durableSeq) + 1

    @Synchronized
    fun add(heartbeat: Heartbeat) {
        require(heartbeat.seq > lastSeq && heartbeat.seq > durableSeq) { "seq ${heartbeat.seq} does not increase (last $lastSeq, durable $durableSeq)" }
        ProtocolCodec.encode(heartbeat) // never store what the engine would refuse as BAD_FRAME
        append("A " + Json.write(heartbeat.toHttpJson()))
        entries[heartbeat.seq] = heartbeat
        lastSeq = heartbeat.seq
        while (entries.size > capacity) {
            val oldest = entries.firstKey()
            append("R $oldest")
            entries.remove(oldest)
            dropped++
        }
        compactIfLarge()
    }

    /**
     * The engine persisted everything up to [watermark]: drop those entries. Returns how many were
     * removed. A lower watermark than one seen before changes nothing (it never decreases).
     */
    @Synchronized
    fun trimTo(watermark: Long): Int {
        if (watermark <= durableSeq) return 0
        val before = entries.size
        append("D $watermark")
        applyDurable(watermark)
        compactIfLarge()
        return before - entries.size
    }

    /** Entries above [seq], oldest first: what to resend after `welcome` (9.4) or a refusal (9.3). */
    @Synchronized
    fun entriesAbove(seq: Long, limit: Int = Int.MAX_VALUE): List<Heartbeat> = entries.tailMap(seq, false).values.take(limit)

    @Synchronized
    fun oldest(): Heartbeat? = entries.firstEntry()?.value

    /** Forget everything (device retired: 4003 / DEVICE_RETIRED), keeping the seq so it never goes back. */
    @Synchronized
    fun clear() {
        entries.clear()
        storage.replaceLines(logName, listOf("L $lastSeq", "D $durableSeq"))
        logLines = 2
    }

    private fun applyDurable(watermark: Long) {
        durableSeq = maxOf(durableSeq, watermark)
        entries.headMap(durableSeq, true).clear()
    }

    private fun append(line: String) {
        storage.appendLine(logName, line)
        logLines++
    }

    private fun compactIfLarge() {
        if (logLines <= 2 * entries.size + 64) return
        val lines = ArrayList<String>(entries.size + 2)
        lines.add("L $lastSeq")
        lines.add("D $durableSeq")
        entries.values.forEach { lines.add("A " + Json.write(it.toHttpJson())) }
        storage.replaceLines(logName, lines)
        logLines = lines.size
    }

    companion object {
        /** About three days of heartbeats at the default 30 s interval (9.2: "a few days"). */
        const val DEFAULT_CAPACITY = 10_000
    }
}
