package com.nexmdm.agent

import android.app.ActivityManager
import android.app.usage.UsageEvents
import android.app.usage.UsageStatsManager
import android.content.Context
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.Build
import android.os.Environment
import android.os.StatFs
import android.os.SystemClock
import android.telephony.TelephonyManager
import com.nexmdm.agent.core.TelemetrySample
import com.nexmdm.agent.core.TelemetrySource

/** One heartbeat sample from the platform services; everything optional is omitted when unknown. */
class AndroidTelemetry(private val context: Context) : TelemetrySource {
    override fun sample(): TelemetrySample {
        val battery = context.getSystemService(BatteryManager::class.java)
        val memory = ActivityManager.MemoryInfo().also { context.getSystemService(ActivityManager::class.java).getMemoryInfo(it) }
        val storage = StatFs(Environment.getDataDirectory().path)
        return TelemetrySample(
            batteryPct = battery.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY).coerceIn(0, 100),
            charging = battery.isCharging,
            memFreeMb = mib(memory.availMem),
            memTotalMb = mib(memory.totalMem),
            storageFreeMb = mib(storage.availableBytes),
            network = networkType(),
            signalDbm = signalDbm(),
            foregroundApp = foregroundApp(context),
            uptimeS = (SystemClock.elapsedRealtime() / 1000).coerceAtMost(Int.MAX_VALUE.toLong()).toInt(),
        )
    }

    private fun mib(bytes: Long): Int = (bytes / (1024 * 1024)).coerceIn(0, Int.MAX_VALUE.toLong()).toInt()

    private fun networkType(): String {
        val connectivity = context.getSystemService(ConnectivityManager::class.java)
        val capabilities = connectivity.getNetworkCapabilities(connectivity.activeNetwork ?: return "none") ?: return "none"
        return when {
            capabilities.hasTransport(NetworkCapabilities.TRANSPORT_VPN) -> "vpn"
            capabilities.hasTransport(NetworkCapabilities.TRANSPORT_WIFI) -> "wifi"
            capabilities.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> "cellular"
            capabilities.hasTransport(NetworkCapabilities.TRANSPORT_ETHERNET) -> "ethernet"
            else -> "other"
        }
    }

    /** Cellular signal (Android 10+); omitted when unknown or outside the protocol's range. */
    private fun signalDbm(): Int? {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.Q) return null
        return try {
            val strength = context.getSystemService(TelephonyManager::class.java)?.signalStrength ?: return null
            strength.cellSignalStrengths.firstOrNull()?.dbm?.takeIf { it in -200..0 }
        } catch (error: SecurityException) {
            null
        }
    }

    companion object {
        private val PACKAGE = Regex("^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)+$")

        /** The app most recently moved to the foreground (needs usage access, which the device owner grants). */
        fun foregroundApp(context: Context, windowMs: Long = 6 * 60 * 60 * 1000L): String? {
            val usage = context.getSystemService(UsageStatsManager::class.java) ?: return null
            val now = System.currentTimeMillis()
            val events = usage.queryEvents(now - windowMs, now) ?: return null
            val event = UsageEvents.Event()
            var last: String? = null
            while (events.hasNextEvent()) {
                events.getNextEvent(event)
                @Suppress("DEPRECATION")
                if (event.eventType == UsageEvents.Event.MOVE_TO_FOREGROUND) last = event.packageName
            }
            return last?.takeIf { it.length <= 255 && PACKAGE.matches(it) }
        }
    }
}
