package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.CommandAck
import com.nexmdm.agent.core.protocol.CommandResult
import com.nexmdm.agent.core.protocol.DeviceFrame
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.storage.Storage

/**
 * PROTOCOL.md 15.5: command acks and results wait here, in order, until confirmed: by a `200` to
 * `POST /v1/device/command-updates`, or on the socket by the answer to a later frame (the `pong`
 * of a fence `ping`) with no frame-dropping error in between. `UNKNOWN_COMMAND` and
 * `SIGNATURE_INVALID` for an id remove that id's entries.
 */
class UpdateOutbox(private val storage: Storage, private val logName: String = "update-outbox.log") {
    data class Entry(val n: Long, val frame: DeviceFrame) {
        val commandId: String get() = when (frame) {
            is CommandAck -> frame.id
            is CommandResult -> frame.id
            else -> ""
        }
    }

    private val entries = java.util.TreeMap<Long, Entry>()
    private var nextN = 1L
    private var logLines = 0

    init {
        for (line in storage.readLines(logName)) {
            logLines++
            val parts = line.split(' ', limit = 3)
            val n = parts[1].toLong()
            nextN = maxOf(nextN, n + 1)
            when (parts[0]) {
                "U" -> {
                    @Suppress("UNCHECKED_CAST")
                    entries[n] = Entry(n, ProtocolCodec.decodeDeviceObject(Json.parse(parts[2]) as Map<String, Any?>))
                }
                "C" -> entries.remove(n)
            }
        }
    }

    @Synchronized
    fun add(frame: DeviceFrame): Entry {
        require(frame is CommandAck || frame is CommandResult)
        val entry = Entry(nextN++, frame)
        storage.appendLine(logName, "U ${entry.n} ${ProtocolCodec.encode(frame)}")
        logLines++
        entries[entry.n] = entry
        return entry
    }

    @Synchronized
    fun pending(): List<Entry> = entries.values.toList()

    @Synchronized
    fun pendingAfter(n: Long): List<Entry> = entries.tailMap(n, false).values.toList()

    @get:Synchronized
    val size: Int get() = entries.size

    @Synchronized
    fun hasEntriesFor(commandId: String): Boolean = entries.values.any { it.commandId == commandId }

    /** Confirms every entry up to [n] (inclusive). */
    @Synchronized
    fun confirmUpTo(n: Long) = remove(entries.headMap(n, true).keys.toList())

    @Synchronized
    fun confirm(ns: Collection<Long>) = remove(ns)

    /** The engine wants nothing more about [commandId]. */
    @Synchronized
    fun dropCommand(commandId: String) = remove(entries.values.filter { it.commandId == commandId }.map { it.n })

    @Synchronized
    fun dropResult(commandId: String) = remove(entries.values.filter { it.commandId == commandId && it.frame is CommandResult }.map { it.n })

    private fun remove(ns: Collection<Long>) {
        if (ns.isEmpty()) return
        for (n in ns) {
            if (entries.remove(n) != null) {
                storage.appendLine(logName, "C $n")
                logLines++
            }
        }
        if (logLines > 2 * entries.size + 64) {
            storage.replaceLines(logName, entries.values.map { "U ${it.n} ${ProtocolCodec.encode(it.frame)}" })
            logLines = entries.size
        }
    }
}
