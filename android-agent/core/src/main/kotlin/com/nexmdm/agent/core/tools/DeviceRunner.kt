package com.nexmdm.agent.core.tools

import com.nexmdm.agent.core.AgentEvents
import com.nexmdm.agent.core.AgentSession
import com.nexmdm.agent.core.Backoff
import com.nexmdm.agent.core.CommandExecutor
import com.nexmdm.agent.core.Credentials
import com.nexmdm.agent.core.EnrollmentClient
import com.nexmdm.agent.core.ExecutionOutcome
import com.nexmdm.agent.core.SessionConfig
import com.nexmdm.agent.core.TelemetrySample
import com.nexmdm.agent.core.protocol.CommandFrame
import com.nexmdm.agent.core.protocol.CommandParams
import com.nexmdm.agent.core.protocol.EnrollRequest
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.PowerState
import com.nexmdm.agent.core.storage.FileStorage
import com.nexmdm.agent.core.transport.OkHttpTransport
import java.io.File
import java.util.concurrent.atomic.AtomicReference
import kotlin.system.exitProcess

/**
 * A device on the JVM: the agent core with OkHttp and file storage, fake telemetry and an
 * executor that only records what it was asked to do. Used by the cross-language end-to-end
 * test (engine/test/AgentCrossLanguage.test.ts) and by hand against a lab engine.
 *
 *   java -cp ... com.nexmdm.agent.core.tools.DeviceRunner --server http://127.0.0.1:8080 --state DIR \
 *        [--token TOKEN --hardware-id ID] [--fallback-retry-ms N] [--poll-wait-s N] [--backoff-cap-ms N] \
 *        [--charging true|false] [--battery 0..100] [--doze true|false] [--metered true|false]
 *
 * The power flags set the device's power state (PROTOCOL.md 9.6), reported to the session and in
 * the fake telemetry: by default on external power at 77 %, not in Doze, on an unmetered network
 * (`ethernet`; `cellular` when metered), so the interval is the policy's `chargingS`.
 *
 * Prints one JSON object per line on stdout (`{"event": ..., ...}`); reads commands on stdin:
 * `status`, `heartbeat`, `pause-sampling`, `resume-sampling`, `wake`, `network-lost`,
 * `network-available`, `power [charging=B] [battery=N] [doze=B] [metered=B]` (changes only the
 * keys given), `exit`.
 */
object DeviceRunner {
    private val out = Any()

    fun emit(name: String, fields: Map<String, Any?> = emptyMap()) {
        val line = Json.write(linkedMapOf<String, Any?>("event" to name, "t" to System.currentTimeMillis()).apply { putAll(fields) })
        synchronized(out) {
            println(line)
            System.out.flush()
        }
    }

    @JvmStatic
    fun main(args: Array<String>) {
        val options = args.toList().chunked(2).associate { (key, value) -> key.removePrefix("--") to value }
        val server = options["server"] ?: usage("--server is required")
        val storage = FileStorage(File(options["state"] ?: usage("--state is required")))
        val transport = OkHttpTransport()
        val events = AgentEvents { name, fields -> emit(name, fields) }

        if (Credentials.load(storage) == null) {
            val token = options["token"] ?: usage("not enrolled: --token is required")
            try {
                val credentials = EnrollmentClient(transport, storage).enroll(
                    server, EnrollRequest(token, options["hardware-id"] ?: "jvm-runner", model = "JVM", manufacturer = "NexMDM", osVersion = System.getProperty("java.version"), agentVersion = VERSION),
                )
                emit("enrolled", mapOf("deviceId" to credentials.deviceId, "heartbeatIntervalS" to credentials.heartbeatIntervalS))
            } catch (error: com.nexmdm.agent.core.ApiError) {
                emit("enroll_failed", mapOf("status" to error.status, "code" to error.code))
                exitProcess(2)
            }
        }

        val startedAt = System.currentTimeMillis()
        val initialPower = powerState(PowerState(charging = true, batteryPct = 77, doze = false, metered = false), options)
            ?: usage("--charging, --doze, --metered take true or false; --battery 0..100")
        val power = AtomicReference(initialPower) // read by the session's thread for telemetry
        val session = AgentSession(
            storage, transport, transport,
            telemetry = {
                val state = power.get()
                TelemetrySample(
                    batteryPct = state.batteryPct ?: 77, charging = state.charging, memFreeMb = 512, memTotalMb = 2048, storageFreeMb = 4096,
                    network = if (state.metered) "cellular" else "ethernet",
                    foregroundApp = "com.example.kiosk", uptimeS = ((System.currentTimeMillis() - startedAt) / 1000).toInt(),
                )
            },
            executor = RecordingExecutor,
            config = SessionConfig(
                agentVersion = VERSION,
                webSocketRetryInFallbackMs = options["fallback-retry-ms"]?.toLong() ?: 5 * 60_000L,
                pollWaitS = options["poll-wait-s"]?.toInt() ?: 30,
                backoff = Backoff(capMs = options["backoff-cap-ms"]?.toLong() ?: 60_000L),
            ),
            events = events,
        )
        session.onPowerStateChanged(initialPower)
        session.start()

        while (true) {
            val line = readLine() ?: break
            if (line.trim().startsWith("power")) {
                val changes = line.trim().removePrefix("power").trim().split(Regex("\\s+")).filter { it.isNotEmpty() }.associate { it.substringBefore("=") to it.substringAfter("=", "") }
                val updated = if (changes.keys.all { it in POWER_KEYS }) powerState(power.get(), changes) else null
                if (updated == null) {
                    emit("unknown_input", mapOf("line" to line))
                } else {
                    power.set(updated)
                    session.onPowerStateChanged(updated)
                    emit("power_state", updated.toJson())
                }
                continue
            }
            when (line.trim()) {
                "status" -> emit("status", session.status())
                "heartbeat" -> emit("heartbeat_requested", mapOf("seq" to session.heartbeatNow()))
                "pause-sampling" -> session.pauseSampling(true).also { emit("sampling", mapOf("paused" to true)) }
                "resume-sampling" -> session.pauseSampling(false).also { emit("sampling", mapOf("paused" to false)) }
                "wake" -> session.wake()
                "network-lost" -> session.onNetworkLost()
                "network-available" -> session.onNetworkAvailable()
                "exit" -> break
                "" -> Unit
                else -> emit("unknown_input", mapOf("line" to line))
            }
        }
        emit("status", session.status())
        session.shutdown()
        emit("exited")
        exitProcess(0)
    }

    /** [base] with the keys `charging`, `battery`, `doze`, `metered` of [options] applied; null when one is malformed. */
    private fun powerState(base: PowerState, options: Map<String, String>): PowerState? {
        fun flag(name: String, default: Boolean): Boolean? = when (options[name]) {
            null -> default
            "true" -> true
            "false" -> false
            else -> null
        }
        val battery = options["battery"]?.let { it.toIntOrNull()?.takeIf { pct -> pct in 0..100 } ?: return null } ?: base.batteryPct
        return PowerState(
            charging = flag("charging", base.charging) ?: return null, batteryPct = battery,
            doze = flag("doze", base.doze) ?: return null, metered = flag("metered", base.metered) ?: return null,
        )
    }

    private fun usage(message: String): Nothing {
        System.err.println(message)
        exitProcess(64)
    }

    const val VERSION = "0.1.0-jvm"

    private val POWER_KEYS = setOf("charging", "battery", "doze", "metered")

    /** Executes nothing on the machine: it records each verified command as an `executed` event. */
    object RecordingExecutor : CommandExecutor {
        override fun supports(commandType: String) = commandType != "wipe" && commandType != "reset_password"

        override fun execute(command: CommandFrame): ExecutionOutcome {
            val hidden = CommandParams.SENSITIVE[command.commandType] ?: emptySet()
            emit("executed", mapOf("id" to command.id, "commandType" to command.commandType, "params" to command.params.filterKeys { it !in hidden }))
            return when (command.commandType) {
                "lock" -> ExecutionOutcome.Succeeded(mapOf("locked" to true))
                else -> ExecutionOutcome.Succeeded()
            }
        }

        override fun outcomeAfterRestart(commandType: String) = if (commandType == "reboot") ExecutionOutcome.Succeeded() else null
    }
}
