package com.nexmdm.agent

import android.app.Activity
import android.app.admin.DeviceAdminReceiver
import android.app.admin.DevicePolicyManager
import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.pm.PackageInstaller
import android.os.PersistableBundle
import android.util.Log

/** Extras names fixed by engine/src/provisioning/AGENT-CONTRACT.md (ProvisioningModel.ts). */
object ContractExtras {
    const val SERVER_URL = "server_url"
    const val ENROLLMENT_TOKEN = "enrollment_token"
    const val DEVICE_SERIAL = "device_serial"

    /** Saves a pending enrollment from provisioning admin extras; false when they are incomplete. */
    fun saveFrom(context: Context, extras: PersistableBundle?): Boolean {
        val serverUrl = extras?.getString(SERVER_URL)
        val token = extras?.getString(ENROLLMENT_TOKEN)
        if (serverUrl.isNullOrBlank() || token.isNullOrBlank()) return false
        context.agentRuntime.savePendingEnrollment(serverUrl, token, extras?.getString(DEVICE_SERIAL))
        return true
    }
}

/**
 * The device admin (`.AdminReceiver`, the component `dpm set-device-owner` and QR provisioning name).
 * On Android 8-11 the provisioning extras arrive here when provisioning completes.
 */
class AdminReceiver : DeviceAdminReceiver() {
    override fun onProfileProvisioningComplete(context: Context, intent: Intent) {
        @Suppress("DEPRECATION")
        val extras = intent.getParcelableExtra<PersistableBundle>(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE)
        if (ContractExtras.saveFrom(context, extras)) context.agentRuntime.startService()
    }
}

/**
 * The adb enrollment intent of AGENT-CONTRACT.md: `com.nexmdm.agent.ENROLL` with `server_url`,
 * `enrollment_token` and optionally `device_serial`. Answers `RESULT_OK` (-1) once the enrollment is
 * saved; the service (started by the script or here) enrols.
 */
class EnrollReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        if (intent.action != ACTION) return
        val serverUrl = intent.getStringExtra(ContractExtras.SERVER_URL)?.trimEnd('/')
        val token = intent.getStringExtra(ContractExtras.ENROLLMENT_TOKEN)
        val serial = intent.getStringExtra(ContractExtras.DEVICE_SERIAL)
        val problem = when {
            serverUrl.isNullOrEmpty() || !SERVER_URL.matches(serverUrl) -> "server_url missing or not an http(s) URL"
            token.isNullOrEmpty() || token.length > 256 || !token.all { it in ' '..'~' } -> "enrollment_token missing or not printable ASCII (at most 256)"
            serial != null && !SERIAL.matches(serial) -> "device_serial not [A-Za-z0-9._:-]{1,128}"
            else -> null
        }
        if (problem != null || serverUrl == null || token == null) {
            Log.w(AgentRuntime.TAG, "ENROLL intent refused: $problem")
            answer(Activity.RESULT_CANCELED, problem)
            return
        }
        val runtime = context.agentRuntime
        // Re-running a script must not re-enrol a working device.
        if (runtime.enrolledServer() == serverUrl) {
            answer(Activity.RESULT_CANCELED, "already enrolled")
            return
        }
        runtime.stopSession() // enrolling with another server replaces the credentials the session holds
        runtime.savePendingEnrollment(serverUrl, token, serial)
        answer(Activity.RESULT_OK, null)
        runtime.startService()
    }

    private fun answer(code: Int, data: String?) {
        if (!isOrderedBroadcast) return
        resultCode = code
        resultData = data
    }

    companion object {
        const val ACTION = "com.nexmdm.agent.ENROLL"
        private val SERVER_URL = Regex("^https?://[^\\s/]+(/\\S*)?$")
        private val SERIAL = Regex("^[A-Za-z0-9._:-]{1,128}$")
    }
}

/** Starts the agent after a reboot and after the agent itself was updated. */
class BootReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        if (intent.action != Intent.ACTION_BOOT_COMPLETED && intent.action != Intent.ACTION_MY_PACKAGE_REPLACED) return
        val runtime = context.agentRuntime
        if (runtime.isEnrolled() || runtime.pendingEnrollment() != null) {
            runtime.stats.wakeups.incrementAndGet() // the agent's own cost (PROTOCOL.md 9.6)
            runtime.startService()
        }
    }
}

/** Status of a PackageInstaller session (install_apk), handed to the waiting executor. */
class InstallResultReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        val sessionId = intent.getIntExtra(PackageInstaller.EXTRA_SESSION_ID, -1)
        val status = intent.getIntExtra(PackageInstaller.EXTRA_STATUS, PackageInstaller.STATUS_FAILURE)
        val message = intent.getStringExtra(PackageInstaller.EXTRA_STATUS_MESSAGE)
        InstallResults.complete(sessionId, status, message)
    }
}
