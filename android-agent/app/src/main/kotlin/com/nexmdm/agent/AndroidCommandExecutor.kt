package com.nexmdm.agent

import android.app.ActivityManager
import android.app.PendingIntent
import android.app.admin.DevicePolicyManager
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.content.pm.PackageInfo
import android.content.pm.PackageInstaller
import android.os.Build
import com.nexmdm.agent.core.CommandExecutor
import com.nexmdm.agent.core.ExecutionOutcome
import com.nexmdm.agent.core.protocol.CommandFrame
import java.io.File
import java.security.MessageDigest
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import okhttp3.OkHttpClient
import okhttp3.Request

/**
 * The device-level commands of PROTOCOL.md 15.7 through DevicePolicyManager, PackageManager and
 * PackageInstaller. Runs on the dispatcher's worker thread (blocking is fine). Parameters were
 * validated by the core; the password of `reset_password` is never logged.
 */
class AndroidCommandExecutor(private val context: Context, private val runtime: AgentRuntime) : CommandExecutor {
    private val dpm = context.getSystemService(DevicePolicyManager::class.java)
    private val admin = ComponentName(context, AdminReceiver::class.java)
    private val isOwner: Boolean get() = dpm.isDeviceOwnerApp(context.packageName)

    override fun supports(commandType: String) = true

    override fun execute(command: CommandFrame): ExecutionOutcome {
        val params = command.params
        return when (command.commandType) {
            "lock" -> lock(params["message"] as String?)
            "reboot" -> if (!isOwner) notPermitted() else {
                dpm.reboot(admin)
                ExecutionOutcome.Succeeded()
            }
            "reset_password" -> resetPassword(params["password"] as String)
            "launch_app" -> launch(params["packageName"] as String)
            "relaunch_app" -> {
                val pkg = params["packageName"] as String
                context.getSystemService(ActivityManager::class.java).killBackgroundProcesses(pkg)
                launch(pkg)
            }
            "set_auto_relaunch" -> {
                runtime.watchdog.configure(params["packageName"] as String, params["enabled"] as Boolean, (params["checkIntervalS"] as Long).toInt())
                ExecutionOutcome.Succeeded()
            }
            "install_apk" -> installApk(params["url"] as String, params["sha256"] as String, params["packageName"] as String?, params["versionCode"] as Long?)
            "clear_app_data" -> clearAppData(params["packageName"] as String)
            // The core already reported success and waited for its confirmation (15.7); this erases the device.
            "wipe" -> wipe(params["reason"] as String?)
            else -> ExecutionOutcome.Failed("UNSUPPORTED_COMMAND")
        }
    }

    /** A reboot kills the agent mid-command; coming back means it happened (15.3). */
    override fun outcomeAfterRestart(commandType: String) = if (commandType == "reboot") ExecutionOutcome.Succeeded() else null

    private fun notPermitted() = ExecutionOutcome.Failed("NOT_PERMITTED: not the device owner")

    private fun lock(message: String?): ExecutionOutcome {
        if (!dpm.isAdminActive(admin)) return ExecutionOutcome.Failed("NOT_PERMITTED: device admin not active")
        if (message != null && isOwner) dpm.setDeviceOwnerLockScreenInfo(admin, message)
        dpm.lockNow()
        return ExecutionOutcome.Succeeded(mapOf("locked" to true))
    }

    private fun resetPassword(password: String): ExecutionOutcome {
        if (!isOwner) return notPermitted()
        val tokens = context.getSharedPreferences("reset-password", Context.MODE_PRIVATE)
        val stored = tokens.getString("token", null)
        val token = stored?.let { hex(it) } ?: ByteArray(32).also { java.security.SecureRandom().nextBytes(it) }.also {
            if (!dpm.setResetPasswordToken(admin, it)) return ExecutionOutcome.Failed("NOT_SUPPORTED: reset password token refused")
            tokens.edit().putString("token", it.joinToString("") { b -> "%02x".format(b) }).apply()
        }
        if (!dpm.isResetPasswordTokenActive(admin)) return ExecutionOutcome.Failed("NOT_PERMITTED: reset password token not active yet (the user must unlock the device once)")
        return if (dpm.resetPasswordWithToken(admin, password, token, 0)) ExecutionOutcome.Succeeded() else ExecutionOutcome.Failed("INTERNAL: password refused by the policy")
    }

    private fun wipe(reason: String?): ExecutionOutcome {
        if (!isOwner) return notPermitted()
        when {
            Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE -> dpm.wipeDevice(0)
            Build.VERSION.SDK_INT >= Build.VERSION_CODES.P && !reason.isNullOrEmpty() -> dpm.wipeData(0, reason)
            else -> dpm.wipeData(0)
        }
        return ExecutionOutcome.Succeeded()
    }

    private fun launch(packageName: String): ExecutionOutcome {
        val intent = context.packageManager.getLaunchIntentForPackage(packageName) ?: return ExecutionOutcome.Failed("PACKAGE_NOT_FOUND")
        intent.addFlags(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_RESET_TASK_IF_NEEDED)
        context.startActivity(intent)
        return ExecutionOutcome.Succeeded()
    }

    private fun clearAppData(packageName: String): ExecutionOutcome {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.P) return ExecutionOutcome.Failed("NOT_SUPPORTED: Android 9 or later")
        if (!isOwner) return notPermitted()
        val done = CountDownLatch(1)
        var succeeded = false
        dpm.clearApplicationUserData(admin, packageName, { it.run() }) { _, ok ->
            succeeded = ok
            done.countDown()
        }
        if (!done.await(60, TimeUnit.SECONDS)) return ExecutionOutcome.Failed("INTERNAL: no answer from the system")
        return if (succeeded) ExecutionOutcome.Succeeded() else ExecutionOutcome.Failed("PACKAGE_NOT_FOUND")
    }

    /** Download, check the SHA-256 before anything else, check package and version, then install. */
    private fun installApk(url: String, sha256: String, packageName: String?, versionCode: Long?): ExecutionOutcome {
        val file = File(context.cacheDir, "install-${System.nanoTime()}.apk")
        try {
            val digest = MessageDigest.getInstance("SHA-256")
            try {
                OkHttpClient().newCall(Request.Builder().url(url).build()).execute().use { response ->
                    if (!response.isSuccessful) return ExecutionOutcome.Failed("DOWNLOAD_FAILED: HTTP ${response.code()}")
                    val body = response.body() ?: return ExecutionOutcome.Failed("DOWNLOAD_FAILED: empty body")
                    body.byteStream().use { input ->
                        file.outputStream().use { output ->
                            val buffer = ByteArray(64 * 1024)
                            while (true) {
                                val n = input.read(buffer)
                                if (n < 0) break
                                digest.update(buffer, 0, n)
                                output.write(buffer, 0, n)
                            }
                        }
                    }
                }
            } catch (error: java.io.IOException) {
                return ExecutionOutcome.Failed("DOWNLOAD_FAILED: ${error.javaClass.simpleName}")
            }
            val actual = digest.digest().joinToString("") { "%02x".format(it) }
            if (actual != sha256) return ExecutionOutcome.Failed("HASH_MISMATCH")
            val info: PackageInfo = context.packageManager.getPackageArchiveInfo(file.path, 0) ?: return ExecutionOutcome.Failed("INSTALL_FAILED: not an APK")
            @Suppress("DEPRECATION")
            val actualVersion = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) info.longVersionCode else info.versionCode.toLong()
            if (packageName != null && info.packageName != packageName) return ExecutionOutcome.Failed("PACKAGE_MISMATCH: package ${info.packageName}")
            if (versionCode != null && actualVersion != versionCode) return ExecutionOutcome.Failed("PACKAGE_MISMATCH: version $actualVersion")
            return install(file, info.packageName, actualVersion)
        } finally {
            file.delete()
        }
    }

    private fun install(file: File, packageName: String, versionCode: Long): ExecutionOutcome {
        val installer = context.packageManager.packageInstaller
        val params = PackageInstaller.SessionParams(PackageInstaller.SessionParams.MODE_FULL_INSTALL).apply { setAppPackageName(packageName) }
        val sessionId = installer.createSession(params)
        val latch = InstallResults.expect(sessionId)
        installer.openSession(sessionId).use { session ->
            session.openWrite("base.apk", 0, file.length()).use { out ->
                file.inputStream().use { it.copyTo(out) }
                session.fsync(out)
            }
            // Mutable: the installer adds the status extras (the flag is ignored before Android 12).
            val flags = PendingIntent.FLAG_UPDATE_CURRENT or PendingIntent.FLAG_MUTABLE
            val callback = PendingIntent.getBroadcast(context, sessionId, Intent(context, InstallResultReceiver::class.java), flags)
            session.commit(callback.intentSender)
        }
        if (!latch.await(5, TimeUnit.MINUTES)) return ExecutionOutcome.Failed("INSTALL_FAILED: no answer from the installer")
        val (status, message) = InstallResults.take(sessionId)
        return when (status) {
            PackageInstaller.STATUS_SUCCESS -> ExecutionOutcome.Succeeded(mapOf("packageName" to packageName, "versionCode" to versionCode))
            PackageInstaller.STATUS_PENDING_USER_ACTION -> ExecutionOutcome.Failed("NOT_PERMITTED: the installer asks for user confirmation (not device owner)")
            else -> ExecutionOutcome.Failed("INSTALL_FAILED: ${message ?: "status $status"}".take(500))
        }
    }

    private fun hex(text: String): ByteArray = ByteArray(text.length / 2) { text.substring(it * 2, it * 2 + 2).toInt(16).toByte() }
}

/** Hands PackageInstaller results from [InstallResultReceiver] to the waiting command. */
object InstallResults {
    private val latches = ConcurrentHashMap<Int, CountDownLatch>()
    private val results = ConcurrentHashMap<Int, Pair<Int, String?>>()

    fun expect(sessionId: Int): CountDownLatch = CountDownLatch(1).also { latches[sessionId] = it }

    fun complete(sessionId: Int, status: Int, message: String?) {
        // PENDING_USER_ACTION is followed by a final status when the user answers; report it as is.
        results[sessionId] = status to message
        latches.remove(sessionId)?.countDown()
    }

    fun take(sessionId: Int): Pair<Int, String?> = results.remove(sessionId) ?: (PackageInstaller.STATUS_FAILURE to null)
}
