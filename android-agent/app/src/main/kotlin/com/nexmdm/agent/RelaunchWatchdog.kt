package com.nexmdm.agent

import android.content.Context
import android.content.Intent
import android.os.Handler
import android.os.Looper
import android.util.Log

/**
 * `set_auto_relaunch` (15.7): for each watched package, every `checkIntervalS` seconds, start the
 * app when it is not the foreground app. Persisted, so it survives reboots (the boot receiver
 * starts the service, which starts the watchdog). Device owners may start activities from the
 * background, which is what makes relaunching possible on Android 10+.
 */
class RelaunchWatchdog(private val context: Context) {
    private val prefs = context.getSharedPreferences("auto-relaunch", Context.MODE_PRIVATE)
    private val handler = Handler(Looper.getMainLooper())
    private val lastCheck = HashMap<String, Long>()
    private var running = false

    private val tick = object : Runnable {
        override fun run() {
            check()
            if (running) handler.postDelayed(this, TICK_MS)
        }
    }

    fun configure(packageName: String, enabled: Boolean, checkIntervalS: Int) {
        prefs.edit().apply { if (enabled) putInt(packageName, checkIntervalS) else remove(packageName) }.apply()
    }

    fun watched(): Map<String, Int> = prefs.all.mapNotNull { (key, value) -> (value as? Int)?.let { key to it } }.toMap()

    fun start() {
        if (running) return
        running = true
        handler.post(tick)
    }

    fun stop() {
        running = false
        handler.removeCallbacks(tick)
    }

    private fun check() {
        val watched = watched()
        if (watched.isEmpty()) return
        val now = System.currentTimeMillis()
        val foreground = AndroidTelemetry.foregroundApp(context)
        for ((packageName, intervalS) in watched) {
            if (now - (lastCheck[packageName] ?: 0) < intervalS * 1000L) continue
            lastCheck[packageName] = now
            if (foreground == packageName) continue
            val launch = context.packageManager.getLaunchIntentForPackage(packageName) ?: continue
            Log.i(AgentRuntime.TAG, "auto-relaunch: starting $packageName")
            context.startActivity(launch.addFlags(Intent.FLAG_ACTIVITY_NEW_TASK))
        }
    }

    companion object {
        /** The smallest checkIntervalS the protocol allows. */
        private const val TICK_MS = 10_000L
    }
}
