package com.nexmdm.agent

import android.app.Activity
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.widget.ScrollView
import android.widget.TextView

/** A minimal status screen: enrollment, connection mode, outbox and the agent's own cost. */
class StatusActivity : Activity() {
    private val handler = Handler(Looper.getMainLooper())
    private lateinit var text: TextView

    private val refresh = object : Runnable {
        override fun run() {
            text.text = describe()
            handler.postDelayed(this, 2_000)
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        text = TextView(this).apply {
            setPadding(32, 32, 32, 32)
            setTextIsSelectable(true)
        }
        setContentView(ScrollView(this).apply { addView(text) })
    }

    override fun onResume() {
        super.onResume()
        handler.post(refresh)
    }

    override fun onPause() {
        handler.removeCallbacks(refresh)
        super.onPause()
    }

    private fun describe(): String {
        val runtime = agentRuntime
        val lines = mutableListOf("NexMDM agent ${BuildConfig.VERSION_NAME}")
        val session = runtime.session()
        when {
            session != null -> session.status().forEach { (key, value) -> lines += "$key: $value" }
            runtime.pendingEnrollment() != null -> lines += "enrolling…"
            else -> lines += "not enrolled: provision with a QR code or the enrollment script"
        }
        val watched = runtime.watchdog.watched()
        if (watched.isNotEmpty()) lines += "auto-relaunch: " + watched.entries.joinToString { "${it.key} every ${it.value} s" }
        lines += ""
        lines += "recent events:"
        lines += runtime.recentEvents().reversed()
        return lines.joinToString("\n")
    }
}
