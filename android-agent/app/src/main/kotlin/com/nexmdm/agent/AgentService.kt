package com.nexmdm.agent

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.app.Service
import android.app.admin.DevicePolicyManager
import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.os.Build
import android.os.IBinder
import android.util.Log
import com.nexmdm.agent.core.ApiError
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

/**
 * Holds the connection to the engine in the foreground (the socket is the command channel), feeds
 * network and power changes to the session (reconnects; the heartbeat interval of PROTOCOL.md 9.6),
 * carries out a pending enrollment, and runs the relaunch watchdog.
 */
class AgentService : Service() {
    private val background = Executors.newSingleThreadScheduledExecutor()
    private var networkCallback: ConnectivityManager.NetworkCallback? = null
    private var powerReceiver: BroadcastReceiver? = null
    private var enrolling = false

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onCreate() {
        super.onCreate()
        startInForeground()
        val connectivity = getSystemService(ConnectivityManager::class.java)
        val callback = object : ConnectivityManager.NetworkCallback() {
            override fun onAvailable(network: Network) {
                agentRuntime.session()?.onNetworkAvailable()
            }

            override fun onCapabilitiesChanged(network: Network, networkCapabilities: NetworkCapabilities) {
                // The default network's capabilities: metered or not, before activeNetwork may say so.
                val metered = AndroidPowerState.isMetered(networkCapabilities)
                agentRuntime.onPowerStateChanged(AndroidPowerState.read(this@AgentService, metered = metered))
            }

            override fun onLost(network: Network) {
                if (connectivity.activeNetwork == null) agentRuntime.session()?.onNetworkLost()
                agentRuntime.onPowerStateChanged(AndroidPowerState.read(this@AgentService))
            }
        }
        connectivity.registerDefaultNetworkCallback(callback)
        networkCallback = callback
        registerPowerReceiver()
        agentRuntime.watchdog.start()
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        startInForeground()
        val runtime = agentRuntime
        // A pending enrollment (provisioning extras, the ENROLL intent) wins, also over old credentials.
        if (runtime.pendingEnrollment() != null) {
            enrollThenStart(0)
            return START_STICKY
        }
        if (!runtime.isEnrolled()) {
            Log.w(AgentRuntime.TAG, "not enrolled and no enrollment pending: stopping")
            stopSelf()
            return START_NOT_STICKY
        }
        val session = runtime.session() ?: return START_NOT_STICKY
        session.start()
        runtime.registerFcmToken()
        if (intent?.action == ACTION_WAKE) session.wake()
        return START_STICKY
    }

    /**
     * Charging, battery level and Doze (9.6): these broadcasts reach only receivers registered at
     * run time. The sticky battery intent is delivered at once, which reports the first state.
     */
    private fun registerPowerReceiver() {
        val receiver = object : BroadcastReceiver() {
            override fun onReceive(context: Context, intent: Intent) {
                val battery = if (intent.action == Intent.ACTION_BATTERY_CHANGED) intent else null
                agentRuntime.onPowerStateChanged(AndroidPowerState.read(context, battery))
            }
        }
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.TIRAMISU) {
            registerReceiver(receiver, AndroidPowerState.BROADCASTS, Context.RECEIVER_NOT_EXPORTED)
        } else {
            registerReceiver(receiver, AndroidPowerState.BROADCASTS)
        }
        powerReceiver = receiver
    }

    /** Enrolls on a background thread, retrying network and server trouble with backoff. */
    private fun enrollThenStart(attempt: Int) {
        if (enrolling) return
        enrolling = true
        background.execute {
            val retryInMs: Long? = try {
                agentRuntime.stopSession()
                // A refused token leaves earlier credentials (if any) in place: keep using them.
                agentRuntime.enrollPending()
                val session = agentRuntime.session()
                if (session != null) {
                    session.start()
                    agentRuntime.registerFcmToken()
                } else {
                    stopSelf()
                }
                null
            } catch (error: ApiError) {
                maxOf(error.retryAfterMs ?: 0, minOf(60_000L, 1_000L shl minOf(attempt, 6)))
            }
            enrolling = false
            if (retryInMs != null) background.schedule({ enrollThenStart(attempt + 1) }, retryInMs, TimeUnit.MILLISECONDS)
        }
    }

    override fun onDestroy() {
        networkCallback?.let { getSystemService(ConnectivityManager::class.java).unregisterNetworkCallback(it) }
        powerReceiver?.let { unregisterReceiver(it) }
        agentRuntime.watchdog.stop()
        agentRuntime.stopSession()
        background.shutdownNow()
        super.onDestroy()
    }

    private fun startInForeground() {
        val manager = getSystemService(NotificationManager::class.java)
        manager.createNotificationChannel(NotificationChannel(CHANNEL, getString(R.string.channel_name), NotificationManager.IMPORTANCE_MIN))
        val open = PendingIntent.getActivity(this, 0, Intent(this, StatusActivity::class.java), PendingIntent.FLAG_IMMUTABLE)
        val notification = Notification.Builder(this, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_notify_sync_noanim)
            .setContentTitle(getString(R.string.app_name))
            .setContentText(getString(R.string.notification_text))
            .setContentIntent(open)
            .setOngoing(true)
            .build()
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) {
            // systemExempted is for device owners; a plain install (lab, tests) uses specialUse.
            val owner = getSystemService(DevicePolicyManager::class.java).isDeviceOwnerApp(packageName)
            val type = if (owner) ServiceInfo.FOREGROUND_SERVICE_TYPE_SYSTEM_EXEMPTED else ServiceInfo.FOREGROUND_SERVICE_TYPE_SPECIAL_USE
            startForeground(NOTIFICATION_ID, notification, type)
        } else {
            startForeground(NOTIFICATION_ID, notification)
        }
    }

    companion object {
        const val ACTION_WAKE = "com.nexmdm.agent.action.WAKE"
        private const val CHANNEL = "agent"
        private const val NOTIFICATION_ID = 1
    }
}
