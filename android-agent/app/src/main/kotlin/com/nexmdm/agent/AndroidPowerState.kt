package com.nexmdm.agent

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.PowerManager
import com.nexmdm.agent.core.protocol.PowerState

/**
 * The power and network state the heartbeat policy needs (PROTOCOL.md 9.6): external power and
 * battery level from the sticky `ACTION_BATTERY_CHANGED` intent, Doze from
 * `PowerManager.isDeviceIdleMode`, a metered (or cellular) active network from ConnectivityManager.
 */
object AndroidPowerState {
    /** The broadcasts after which the state is read again; registered by [AgentService] (they reach registered receivers only). */
    val BROADCASTS: IntentFilter
        get() = IntentFilter().apply {
            addAction(Intent.ACTION_BATTERY_CHANGED)
            addAction(Intent.ACTION_POWER_CONNECTED)
            addAction(Intent.ACTION_POWER_DISCONNECTED)
            addAction(PowerManager.ACTION_DEVICE_IDLE_MODE_CHANGED)
        }

    /**
     * Reads the state now. [battery]: an `ACTION_BATTERY_CHANGED` intent at hand (else the sticky
     * one); [metered]: what the network callback just reported (else asked of ConnectivityManager).
     */
    fun read(context: Context, battery: Intent? = null, metered: Boolean? = null): PowerState {
        val batteryIntent = battery ?: context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val power = context.getSystemService(PowerManager::class.java)
        return PowerState(
            charging = isPlugged(batteryIntent?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0),
            batteryPct = batteryPct(batteryIntent?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1, batteryIntent?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1),
            doze = power?.isDeviceIdleMode == true,
            metered = metered ?: isActiveNetworkMetered(context),
        )
    }

    /** Metered for the policy: what Android calls metered, and any cellular network. */
    fun isMetered(capabilities: NetworkCapabilities): Boolean =
        !capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED) || capabilities.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR)

    private fun isActiveNetworkMetered(context: Context): Boolean {
        val connectivity = context.getSystemService(ConnectivityManager::class.java) ?: return false
        val capabilities = connectivity.activeNetwork?.let { connectivity.getNetworkCapabilities(it) }
        // No network: Android answers metered (the conservative value), and so does the agent.
        return connectivity.isActiveNetworkMetered || (capabilities != null && isMetered(capabilities))
    }

    /** On external power (AC, USB, wireless, dock), whether or not the battery is still filling. */
    fun isPlugged(plugged: Int): Boolean = plugged != 0

    /** `EXTRA_LEVEL` over `EXTRA_SCALE` in percent; null when the intent does not say. */
    fun batteryPct(level: Int, scale: Int): Int? = if (level < 0 || scale <= 0) null else (level * 100 / scale).coerceIn(0, 100)
}
