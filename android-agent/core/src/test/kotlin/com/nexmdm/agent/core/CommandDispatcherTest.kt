package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.AckStage
import com.nexmdm.agent.core.protocol.CommandAck
import com.nexmdm.agent.core.protocol.CommandFrame
import com.nexmdm.agent.core.protocol.CommandOutcome
import com.nexmdm.agent.core.protocol.CommandResult
import com.nexmdm.agent.core.protocol.Signing
import com.nexmdm.agent.core.storage.FileStorage
import com.nexmdm.agent.core.storage.Storage
import java.util.concurrent.Executor
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The command verifier and dispatcher (PROTOCOL.md 15.3-15.5): tamper, replay, expiry, idempotency. */
class CommandDispatcherTest {
    private val deviceId = "dev_0123456789abcdefghijklmn"
    private val key = ByteArray(32) { it.toByte() }
    private val signing = Signing(key)
    private var now = 1_764_000_000_000L

    private class Recording : CommandExecutor {
        val executed = mutableListOf<String>()
        var wipeSawConfirmedResult: Boolean? = null
        var updates: UpdateOutbox? = null
        override fun supports(commandType: String) = commandType != "reset_password"
        override fun execute(command: CommandFrame): ExecutionOutcome {
            executed += command.id
            if (command.commandType == "wipe") wipeSawConfirmedResult = updates?.hasEntriesFor(command.id) == false
            return if (command.commandType == "lock") ExecutionOutcome.Succeeded(mapOf("locked" to true)) else ExecutionOutcome.Failed("PACKAGE_NOT_FOUND")
        }
        override fun outcomeAfterRestart(commandType: String) = if (commandType == "reboot") ExecutionOutcome.Succeeded() else null
    }

    private inner class Agent(val storage: Storage, val executor: Recording = Recording(), worker: Executor = Executor { it.run() }) {
        val updates = UpdateOutbox(storage).also { executor.updates = it }
        val records = CommandRecords(storage)
        val dispatcher = CommandDispatcher(deviceId, signing, records, updates, executor, object : AgentCommands {
            override fun measureRttMs(): Long? = null
            override fun requestHeartbeat() = 7L
            override fun setHeartbeatInterval(intervalS: Int) = Unit
            override val agentVersion = "test"
        }, worker, engineNow = { now })

        fun frames() = updates.pending().map { it.frame }
        fun results() = frames().filterIsInstance<CommandResult>()
    }

    private fun command(id: String = "cmd_aaaaaaaaaaaaaaaaaaaaaaaa", type: String = "lock", params: Map<String, Any?> = mapOf("message" to "hi"), issuedAt: Long = now - 1000, expiresAt: Long = now + 60_000): Map<String, Any?> {
        val sig = signing.sign(Signing.commandSigningString(id, deviceId, type, issuedAt, expiresAt, params))
        return CommandFrame(id, type, params, issuedAt, expiresAt, sig).toJson()
    }

    private fun storage() = FileStorage(tempDir("agent-cmd"))

    @Test
    fun `a valid command is acked, executed once and answered with a signed result`() {
        val agent = Agent(storage())
        agent.dispatcher.handle(command())
        assertEquals(listOf("cmd_aaaaaaaaaaaaaaaaaaaaaaaa"), agent.executor.executed)
        val frames = agent.frames()
        assertEquals(CommandAck("cmd_aaaaaaaaaaaaaaaaaaaaaaaa", AckStage.RECEIVED), frames[0])
        assertEquals(CommandAck("cmd_aaaaaaaaaaaaaaaaaaaaaaaa", AckStage.ACCEPTED), frames[1])
        val result = frames[2] as CommandResult
        assertEquals(CommandOutcome.SUCCEEDED, result.status)
        assertEquals(mapOf("locked" to true), result.result)
        assertTrue(signing.verify(Signing.resultSigningString(result.id, deviceId, "succeeded", result.completedAt, result.result, null), result.sig))
    }

    @Test
    fun `a tampered parameter fails the signature check, is reported and not recorded`() {
        val agent = Agent(storage())
        val tampered = command().toMutableMap().apply { put("params", mapOf("message" to "HI")) }
        agent.dispatcher.handle(tampered)
        assertTrue(agent.executor.executed.isEmpty())
        assertEquals("SIGNATURE_INVALID", agent.results().single().error)
        assertNull(agent.records.get("cmd_aaaaaaaaaaaaaaaaaaaaaaaa"), "a forged frame must not block the genuine command")
        // The genuine command with the same id still runs.
        agent.dispatcher.handle(command())
        assertEquals(1, agent.executor.executed.size)
    }

    @Test
    fun `a command signed for another device fails`() {
        val agent = Agent(storage())
        val other = command().toMutableMap()
        other["sig"] = signing.sign(Signing.commandSigningString(other["id"] as String, "dev_zzzzzzzzzzzzzzzzzzzzzzzz", "lock", other["issuedAt"] as Long, other["expiresAt"] as Long, other["params"]))
        agent.dispatcher.handle(other)
        assertEquals("SIGNATURE_INVALID", agent.results().single().error)
        assertTrue(agent.executor.executed.isEmpty())
    }

    @Test
    fun `a replayed command runs once and its stored result is sent again, across a restart too`() {
        val storage = storage()
        val first = Agent(storage)
        first.dispatcher.handle(command())
        first.dispatcher.handle(command(params = mapOf("message" to "hi")))
        assertEquals(1, first.executor.executed.size)
        val results = first.results()
        assertEquals(2, results.size)
        assertEquals(results[0], results[1], "the same result frame, unchanged")

        val restarted = Agent(storage) // same files: a new process
        restarted.dispatcher.handle(command())
        assertTrue(restarted.executor.executed.isEmpty(), "executed again after a restart")
        assertEquals(results[0], restarted.results().last())
    }

    @Test
    fun `expired and future commands are refused with EXPIRED and CLOCK_SKEW and recorded`() {
        val agent = Agent(storage())
        agent.dispatcher.handle(command(id = "cmd_expiredexpiredexpired1", expiresAt = now))
        agent.dispatcher.handle(command(id = "cmd_futurefuturefuturefut1", issuedAt = now + 5 * 60_000 + 1, expiresAt = now + 3_600_000))
        agent.dispatcher.handle(command(id = "cmd_inverted0inverted0inv1", issuedAt = now - 10, expiresAt = now - 20 + 60_000).let { it })
        assertTrue(agent.executor.executed.size <= 1)
        val errors = agent.results().associate { it.id to it.error }
        assertEquals("EXPIRED", errors["cmd_expiredexpiredexpired1"])
        assertEquals("CLOCK_SKEW", errors["cmd_futurefuturefuturefut1"])
        assertTrue(agent.records.get("cmd_expiredexpiredexpired1")?.result != null)
        // Within the allowance is fine.
        agent.dispatcher.handle(command(id = "cmd_skewedbutallowed000001", issuedAt = now + 5 * 60_000, expiresAt = now + 3_600_000))
        assertTrue("cmd_skewedbutallowed000001" in agent.executor.executed)
    }

    @Test
    fun `unknown types and bad parameters are answered, never executed`() {
        val agent = Agent(storage())
        agent.dispatcher.handle(command(id = "cmd_unknowntypeunknowntyp1", type = "format_disk", params = emptyMap()))
        agent.dispatcher.handle(command(id = "cmd_extraparamextraparame1", params = mapOf("message" to "x", "color" to "red")))
        agent.dispatcher.handle(command(id = "cmd_wipewithoutconfirmati1", type = "wipe", params = mapOf("confirm" to "yes")))
        agent.dispatcher.handle(command(id = "cmd_resetpasswordunsupport", type = "reset_password", params = mapOf("password" to "1234")))
        agent.dispatcher.handle(command(id = "cmd_intervaltoosmall00001", type = "set_heartbeat_interval", params = mapOf("intervalS" to 4L)))
        assertTrue(agent.executor.executed.isEmpty())
        val errors = agent.results().associate { it.id to it.error!! }
        assertEquals("UNSUPPORTED_COMMAND", errors["cmd_unknowntypeunknowntyp1"])
        assertTrue(errors["cmd_extraparamextraparame1"]!!.startsWith("INVALID_PARAMS"))
        assertTrue(errors["cmd_wipewithoutconfirmati1"]!!.startsWith("INVALID_PARAMS"))
        assertEquals("UNSUPPORTED_COMMAND", errors["cmd_resetpasswordunsupport"])
        assertTrue(errors["cmd_intervaltoosmall00001"]!!.startsWith("INVALID_PARAMS"))
    }

    @Test
    fun `a command left running by a crash is reported INTERRUPTED, a reboot as succeeded`() {
        val storage = storage()
        val held = mutableListOf<Runnable>()
        val crashed = Agent(storage, worker = Executor { held += it }) // never runs: the process "dies"
        crashed.dispatcher.handle(command(id = "cmd_lockinterruptedlock001"))
        crashed.dispatcher.handle(command(id = "cmd_rebootinterruptedreb01", type = "reboot", params = emptyMap()))
        assertTrue(crashed.results().isEmpty())

        val restarted = Agent(storage)
        restarted.dispatcher.recoverAfterRestart()
        val byId = restarted.results().associateBy { it.id }
        assertEquals("INTERRUPTED", byId["cmd_lockinterruptedlock001"]!!.error)
        assertEquals(CommandOutcome.SUCCEEDED, byId["cmd_rebootinterruptedreb01"]!!.status)
        assertTrue(restarted.executor.executed.isEmpty())
    }

    @Test
    fun `a wipe reports success first and wipes once the result is confirmed`() {
        val storage = storage()
        val updates = UpdateOutbox(storage)
        val executor = Recording().also { it.updates = updates }
        val worker = java.util.concurrent.Executors.newSingleThreadExecutor()
        val dispatcher = CommandDispatcher(deviceId, signing, CommandRecords(storage), updates, executor, object : AgentCommands {
            override fun measureRttMs(): Long? = null
            override fun requestHeartbeat() = 1L
            override fun setHeartbeatInterval(intervalS: Int) = Unit
            override val agentVersion = "test"
        }, worker, engineNow = { now })
        dispatcher.handle(command(id = "cmd_wipewipewipewipewipewi", type = "wipe", params = mapOf("confirm" to "WIPE", "reason" to "lost")))
        // The engine confirms everything queued so far (as a pong fence or an HTTP 200 would).
        val deadline = System.currentTimeMillis() + 3000
        while (updates.pending().none { it.frame is CommandResult } && System.currentTimeMillis() < deadline) Thread.sleep(10)
        val result = updates.pending().map { it.frame }.filterIsInstance<CommandResult>().single()
        assertEquals(CommandOutcome.SUCCEEDED, result.status)
        assertTrue(executor.executed.isEmpty(), "wiped before the result was confirmed")
        updates.confirmUpTo(Long.MAX_VALUE)
        worker.shutdown()
        worker.awaitTermination(5, java.util.concurrent.TimeUnit.SECONDS)
        assertEquals(listOf("cmd_wipewipewipewipewipewi"), executor.executed)
        assertEquals(true, executor.wipeSawConfirmedResult)
    }

    @Test
    fun `update outbox confirms, drops by command id and survives a restart`() {
        val storage = storage()
        val outbox = UpdateOutbox(storage)
        val a = outbox.add(CommandAck("cmd_a", AckStage.RECEIVED))
        outbox.add(CommandAck("cmd_b", AckStage.RECEIVED))
        outbox.add(CommandAck("cmd_b", AckStage.ACCEPTED))
        outbox.confirmUpTo(a.n)
        outbox.dropCommand("cmd_b")
        outbox.add(CommandAck("cmd_c", AckStage.RECEIVED))
        assertEquals(listOf("cmd_c"), UpdateOutbox(storage).pending().map { it.commandId })
    }
}
