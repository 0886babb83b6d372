package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.AckStage
import com.nexmdm.agent.core.protocol.CommandAck
import com.nexmdm.agent.core.protocol.CommandFrame
import com.nexmdm.agent.core.protocol.CommandOutcome
import com.nexmdm.agent.core.protocol.CommandParams
import com.nexmdm.agent.core.protocol.FrameError
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.protocol.Signing
import java.util.concurrent.Executor

/** How a command ended on the device. */
sealed class ExecutionOutcome {
    data class Succeeded(val result: Map<String, Any?>? = null) : ExecutionOutcome()
    /** [error] starts with a code of PROTOCOL.md 15.6, optionally followed by `: ` and a detail. */
    data class Failed(val error: String) : ExecutionOutcome()
}

/** What the platform (Android, or a test double) does for the device-level command types. */
interface CommandExecutor {
    fun supports(commandType: String): Boolean

    /** Runs one verified command; may block (it runs on the dispatcher's worker). Never logs sensitive params. */
    fun execute(command: CommandFrame): ExecutionOutcome

    /**
     * A command found `running` after a restart (15.3): its outcome when the platform can tell it
     * (e.g. `reboot`: succeeded), else null and it is reported failed `INTERRUPTED`.
     */
    fun outcomeAfterRestart(commandType: String): ExecutionOutcome? = null
}

/** Commands the agent core answers itself: `ping`, `request_heartbeat`, `set_heartbeat_interval`. */
interface AgentCommands {
    /** Round trip of a ping/pong on the socket, or null on the HTTP fallback. Blocking. */
    fun measureRttMs(): Long?
    /** Takes a sample now and returns its seq. */
    fun requestHeartbeat(): Long
    fun setHeartbeatInterval(intervalS: Int)
    val agentVersion: String
}

/** The verdict of the checks of 15.4 for one command frame (exposed for tests and logs). */
sealed class Verdict {
    object Execute : Verdict()
    data class Duplicate(val record: CommandRecords.Record) : Verdict()
    /** Failed check 2: reported, not recorded. */
    object SignatureInvalid : Verdict()
    /** Failed checks 4-6: reported and recorded. [error] is the result's error. */
    data class Refused(val error: String) : Verdict()
}

/**
 * Verifies commands (PROTOCOL.md 15.4: signature over the canonical string with the agent's own
 * device id, seen-before, expiry, clock skew, type and parameters), records them before running
 * (15.3), and runs them through [executor] on [worker], queueing acks and signed results in
 * [updates] for whichever transport is up.
 */
class CommandDispatcher(
    private val deviceId: String,
    private val signing: Signing,
    private val records: CommandRecords,
    private val updates: UpdateOutbox,
    private val executor: CommandExecutor,
    private val agent: AgentCommands,
    private val worker: Executor,
    /** The agent's best estimate of the engine clock (device clock + offset from welcome/pong). */
    private val engineNow: () -> Long,
    private val events: AgentEvents = AgentEvents.NONE,
    /** Called after updates were queued, so the session sends them. */
    private val onUpdates: () -> Unit = {},
) {
    /** Verdict of checks 2-6 for a well-formed frame. */
    fun verify(command: CommandFrame): Verdict {
        if (!signing.verifyCommand(deviceId, command)) return Verdict.SignatureInvalid
        records.get(command.id)?.let { return Verdict.Duplicate(it) }
        val now = engineNow()
        if (now >= command.expiresAt) return Verdict.Refused("EXPIRED")
        if (command.issuedAt > now + CommandRecords.CLOCK_ALLOWANCE_MS || command.issuedAt >= command.expiresAt) return Verdict.Refused("CLOCK_SKEW")
        if (command.commandType !in CommandParams.TYPES || !(command.commandType in AGENT_TYPES || executor.supports(command.commandType))) {
            return Verdict.Refused("UNSUPPORTED_COMMAND")
        }
        try {
            CommandParams.validate(command.commandType, command.params)
        } catch (error: FrameError) {
            return Verdict.Refused("INVALID_PARAMS: ${error.message}".take(500))
        }
        return Verdict.Execute
    }

    /** Handles one `command` object as received (socket frame or poll answer element). */
    fun handle(raw: Map<String, Any?>) {
        val id = raw["id"] as? String
        val command = try {
            ProtocolCodec.decodeCommandLenient(raw)
        } catch (error: FrameError) {
            if (id != null && id.length <= 64) queue(CommandAck(id, AckStage.RECEIVED))
            events.emit("command_malformed", mapOf("id" to id, "error" to error.message))
            onUpdates()
            return
        }
        queue(CommandAck(command.id, AckStage.RECEIVED))
        when (val verdict = verify(command)) {
            is Verdict.SignatureInvalid -> {
                events.emit("command_rejected", mapOf("id" to command.id, "commandType" to command.commandType, "error" to "SIGNATURE_INVALID"))
                queue(result(command.id, ExecutionOutcome.Failed("SIGNATURE_INVALID")))
            }
            is Verdict.Duplicate -> {
                events.emit("command_duplicate", mapOf("id" to command.id, "finished" to (verdict.record.result != null)))
                if (verdict.record.accepted) queue(CommandAck(command.id, AckStage.ACCEPTED))
                verdict.record.result?.let { queue(it) }
            }
            is Verdict.Refused -> {
                events.emit("command_rejected", mapOf("id" to command.id, "commandType" to command.commandType, "error" to verdict.error))
                val frame = result(command.id, ExecutionOutcome.Failed(verdict.error))
                records.put(CommandRecords.Record(command.id, command.commandType, command.expiresAt, accepted = false, result = frame))
                queue(frame)
            }
            is Verdict.Execute -> {
                records.put(CommandRecords.Record(command.id, command.commandType, command.expiresAt, accepted = true, result = null))
                queue(CommandAck(command.id, AckStage.ACCEPTED))
                events.emit("command_accepted", mapOf("id" to command.id, "commandType" to command.commandType))
                worker.execute { run(command) }
            }
        }
        onUpdates()
    }

    /** 15.3: commands left `running` by a crash or reboot are reported now. */
    fun recoverAfterRestart() {
        for (record in records.running()) {
            val outcome = executor.outcomeAfterRestart(record.commandType) ?: ExecutionOutcome.Failed("INTERRUPTED")
            finish(record.id, record.commandType, record.expiresAt, outcome)
        }
        records.prune(engineNow())
        onUpdates()
    }

    private fun run(command: CommandFrame) {
        val outcome = try {
            when (command.commandType) {
                "ping" -> ExecutionOutcome.Succeeded(linkedMapOf<String, Any?>("agentVersion" to agent.agentVersion).apply {
                    agent.measureRttMs()?.let { put("rttMs", it) }
                })
                "request_heartbeat" -> ExecutionOutcome.Succeeded(mapOf("seq" to agent.requestHeartbeat()))
                "set_heartbeat_interval" -> {
                    val intervalS = (command.params["intervalS"] as Long).toInt()
                    agent.setHeartbeatInterval(intervalS)
                    ExecutionOutcome.Succeeded(mapOf("intervalS" to intervalS.toLong()))
                }
                "wipe" -> {
                    wipe(command)
                    return
                }
                else -> executor.execute(command)
            }
        } catch (error: Exception) {
            ExecutionOutcome.Failed("INTERNAL: ${error.javaClass.simpleName}")
        }
        finish(command.id, command.commandType, command.expiresAt, outcome)
        onUpdates()
    }

    /**
     * 15.7: a wipe erases the credentials, so its `succeeded` result goes first; the agent waits a few
     * seconds at most for the engine to confirm it, then wipes.
     */
    private fun wipe(command: CommandFrame) {
        finish(command.id, command.commandType, command.expiresAt, ExecutionOutcome.Succeeded())
        onUpdates()
        val deadline = System.currentTimeMillis() + WIPE_CONFIRMATION_WAIT_MS
        while (updates.hasEntriesFor(command.id) && System.currentTimeMillis() < deadline) Thread.sleep(100)
        events.emit("wiping", mapOf("id" to command.id, "confirmed" to !updates.hasEntriesFor(command.id)))
        executor.execute(command)
    }

    private fun finish(id: String, commandType: String, expiresAt: Long, outcome: ExecutionOutcome) {
        val frame = result(id, outcome)
        records.put(CommandRecords.Record(id, commandType, expiresAt, accepted = true, result = frame))
        queue(frame)
        events.emit("command_finished", mapOf("id" to id, "commandType" to commandType, "status" to frame.status.wire, "error" to frame.error, "result" to frame.result))
    }

    private fun result(id: String, outcome: ExecutionOutcome) = when (outcome) {
        is ExecutionOutcome.Succeeded -> signing.signResult(deviceId, id, CommandOutcome.SUCCEEDED, engineNow(), outcome.result, null)
        is ExecutionOutcome.Failed -> signing.signResult(deviceId, id, CommandOutcome.FAILED, engineNow(), null, sanitizeError(outcome.error))
    }

    private fun queue(frame: com.nexmdm.agent.core.protocol.DeviceFrame) {
        updates.add(frame)
    }

    companion object {
        val AGENT_TYPES = setOf("ping", "request_heartbeat", "set_heartbeat_interval")

        /** How long a wipe waits for its result to be confirmed (15.7: "a few seconds at most"). */
        const val WIPE_CONFIRMATION_WAIT_MS = 5_000L

        fun sanitizeError(error: String): String = error.map { if (it in ' '..'~') it else '?' }.joinToString("").take(500)
    }
}

/** Structured events for logs, the status screen and the JVM runner. */
fun interface AgentEvents {
    fun emit(name: String, fields: Map<String, Any?>)

    companion object {
        val NONE = AgentEvents { _, _ -> }
    }
}
