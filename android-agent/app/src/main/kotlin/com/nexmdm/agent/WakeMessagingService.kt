package com.nexmdm.agent

import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage

/**
 * FCM is only the bell (PROTOCOL.md 17): a `wake` data message makes the agent connect and fetch its
 * commands; nothing is executed because of it. The connection starts in the foreground service
 * (high-priority messages may start one), not on this service's thread.
 */
class WakeMessagingService : FirebaseMessagingService() {
    override fun onMessageReceived(message: RemoteMessage) {
        if (message.data["type"] != "wake") return
        if (!agentRuntime.isEnrolled()) return
        // Counted as a wake-up of the agent (PROTOCOL.md 9.6) once, by AgentSession.wake().
        agentRuntime.startService(AgentService.ACTION_WAKE)
    }

    override fun onNewToken(token: String) {
        agentRuntime.session()?.registerFcmToken(token)
    }
}
