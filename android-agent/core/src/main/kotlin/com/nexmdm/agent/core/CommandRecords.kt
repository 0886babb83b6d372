package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.CommandResult
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.storage.Storage

/**
 * PROTOCOL.md 15.3: the persistent record of every command id the agent answered, so that each
 * command runs at most once, across duplicates, transports and restarts. A record is kept until
 * `expiresAt` plus the clock allowance; after that the expiry check rejects the command anyway.
 */
class CommandRecords(private val storage: Storage, private val name: String = "command-records.json") {
    data class Record(
        val id: String,
        val commandType: String,
        val expiresAt: Long,
        /** Passed the checks and was acked `accepted` (false for check failures 4-6). */
        val accepted: Boolean,
        /** The result frame sent, once finished; null while running. */
        val result: CommandResult?,
    )

    private val records = LinkedHashMap<String, Record>()

    init {
        val text = storage.read(name)
        if (text != null) {
            @Suppress("UNCHECKED_CAST")
            for (item in Json.parse(text) as List<Map<String, Any?>>) {
                val result = (item["result"] as? Map<String, Any?>)?.let { ProtocolCodec.decodeDeviceObject(it) as CommandResult }
                val record = Record(item["id"] as String, item["commandType"] as String, item["expiresAt"] as Long, item["accepted"] as Boolean, result)
                records[record.id] = record
            }
        }
    }

    @Synchronized
    fun get(id: String): Record? = records[id]

    @Synchronized
    fun put(record: Record) {
        records[record.id] = record
        save()
    }

    @Synchronized
    fun running(): List<Record> = records.values.filter { it.result == null }

    @Synchronized
    fun size(): Int = records.size

    /** Forgets records whose command can no longer pass the expiry check. */
    @Synchronized
    fun prune(nowMs: Long) {
        val before = records.size
        records.values.removeAll { it.result != null && it.expiresAt + CLOCK_ALLOWANCE_MS < nowMs }
        if (records.size != before) save()
    }

    @Synchronized
    fun clear() {
        records.clear()
        storage.delete(name)
    }

    private fun save() {
        storage.write(name, Json.write(records.values.map {
            linkedMapOf<String, Any?>("id" to it.id, "commandType" to it.commandType, "expiresAt" to it.expiresAt, "accepted" to it.accepted, "result" to it.result?.toJson())
        }))
    }

    companion object {
        /** 15.4 step 5: how far `issuedAt` may be ahead of the agent's estimate of the engine clock. */
        const val CLOCK_ALLOWANCE_MS = 5 * 60 * 1000L
    }
}
