package com.nexmdm.agent

import android.annotation.SuppressLint
import android.content.Context
import android.content.Intent
import android.os.Build
import android.provider.Settings
import android.util.Log
import com.google.firebase.FirebaseApp
import com.google.firebase.messaging.FirebaseMessaging
import com.nexmdm.agent.core.AgentEvents
import com.nexmdm.agent.core.AgentSession
import com.nexmdm.agent.core.AgentStats
import com.nexmdm.agent.core.ApiError
import com.nexmdm.agent.core.Credentials
import com.nexmdm.agent.core.EnrollmentClient
import com.nexmdm.agent.core.SessionConfig
import com.nexmdm.agent.core.protocol.EnrollRequest
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.PowerState
import com.nexmdm.agent.core.storage.FileStorage
import com.nexmdm.agent.core.transport.OkHttpTransport
import java.io.File

/**
 * Process-wide agent state: storage in the no-backup directory (never in cloud backups), one
 * OkHttp client, the agent's cost counters and last known power state, and the [AgentSession]
 * once the device is enrolled.
 */
class AgentRuntime(private val context: Context) {
    val storage = FileStorage(File(context.noBackupFilesDir, "agent"))
    val transport = OkHttpTransport()
    val watchdog = RelaunchWatchdog(context)
    private val recent = ArrayDeque<String>()
    private var session: AgentSession? = null

    /** Since the process started (PROTOCOL.md 9.6); kept across sessions, so a new session loses no count. */
    val stats = AgentStats()

    @Volatile
    private var powerState: PowerState? = null

    private val events = AgentEvents { name, fields ->
        // Never log secrets: events carry ids, codes and counts only.
        val line = "$name ${Json.write(fields.filterValues { it == null || it is String || it is Number || it is Boolean })}"
        Log.i(TAG, line)
        synchronized(recent) {
            recent.addLast(line)
            while (recent.size > 20) recent.removeFirst()
        }
    }

    fun recentEvents(): List<String> = synchronized(recent) { recent.toList() }

    fun isEnrolled(): Boolean = Credentials.load(storage) != null

    /** The server this device holds credentials for, if any. */
    fun enrolledServer(): String? = Credentials.load(storage)?.serverUrl?.trimEnd('/')

    @Synchronized
    fun session(): AgentSession? {
        if (session == null && isEnrolled()) {
            session = AgentSession(
                storage, transport, transport, AndroidTelemetry(context), AndroidCommandExecutor(context, this),
                SessionConfig(agentVersion = BuildConfig.VERSION_NAME), events, stats = stats,
            ).also { created -> powerState?.let { created.onPowerStateChanged(it) } }
        }
        return session
    }

    /**
     * The power and network state changed (broadcasts and the network callback of [AgentService]).
     * Given to the running session only: one created later gets the latest state when created.
     */
    fun onPowerStateChanged(state: PowerState) {
        powerState = state
        synchronized(this) { session }?.onPowerStateChanged(state)
    }

    @Synchronized
    fun stopSession() {
        session?.shutdown()
        session = null
    }

    // -----------------------------------------------------------------------------------------
    // Enrollment: the provisioning extras or the adb ENROLL intent leave a pending enrollment; the
    // service carries it out (network work does not belong in a receiver or an activity).

    fun savePendingEnrollment(serverUrl: String, token: String, serial: String?) {
        storage.write(PENDING, Json.write(linkedMapOf("serverUrl" to serverUrl, "token" to token, "serial" to serial)))
    }

    @Suppress("UNCHECKED_CAST")
    fun pendingEnrollment(): Map<String, Any?>? = storage.read(PENDING)?.let { Json.parse(it) as? Map<String, Any?> }

    /** Blocking: enrols with the pending token. Returns false when the token was refused for good. */
    @SuppressLint("HardwareIds")
    fun enrollPending(): Boolean {
        val pending = pendingEnrollment() ?: return false
        // Stable per device, app signing key and user (Android 8+): the same device re-enrols as itself.
        val hardwareId = Settings.Secure.getString(context.contentResolver, Settings.Secure.ANDROID_ID) ?: "unknown"
        val request = EnrollRequest(
            token = pending["token"] as String, hardwareId = hardwareId, model = Build.MODEL, manufacturer = Build.MANUFACTURER,
            osVersion = Build.VERSION.RELEASE, agentVersion = BuildConfig.VERSION_NAME,
            serial = pending["serial"] as String? ?: ownSerial(),
        )
        return try {
            val credentials = EnrollmentClient(transport, storage).enroll(pending["serverUrl"] as String, request)
            storage.delete(PENDING)
            events.emit("enrolled", mapOf("deviceId" to credentials.deviceId))
            true
        } catch (error: ApiError) {
            events.emit("enroll_failed", mapOf("status" to error.status, "code" to error.code))
            if (error.isTokenFinal) {
                storage.delete(PENDING)
                false
            } else {
                throw error
            }
        }
    }

    /** AGENT-CONTRACT.md: `Build.getSerial()` when the agent may read it (device owner with READ_PHONE_STATE). */
    @SuppressLint("HardwareIds", "MissingPermission")
    private fun ownSerial(): String? = try {
        Build.getSerial().takeIf { it.isNotEmpty() && it != Build.UNKNOWN && it.matches(Regex("^[\\x20-\\x7E]{1,128}$")) }
    } catch (error: SecurityException) {
        null
    }

    /** 17.1: after enrollment and at every start, register the FCM token when it changed. */
    fun registerFcmToken() {
        if (FirebaseApp.getApps(context).isEmpty()) return
        FirebaseMessaging.getInstance().token.addOnSuccessListener { token -> session()?.registerFcmToken(token) }
    }

    fun startService(action: String? = null) {
        val intent = Intent(context, AgentService::class.java).setAction(action)
        context.startForegroundService(intent)
    }

    companion object {
        const val TAG = "NexMDM"
        private const val PENDING = "pending-enrollment.json"
    }
}
