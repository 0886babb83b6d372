package com.nexmdm.agent

import android.app.Application
import android.content.Context
import com.google.firebase.FirebaseApp
import com.google.firebase.FirebaseOptions

class AgentApplication : Application() {
    lateinit var runtime: AgentRuntime
        private set

    override fun onCreate() {
        super.onCreate()
        runtime = AgentRuntime(this)
        initFirebase()
    }

    /** Firebase without google-services.json: options from Gradle properties; no FCM when they are absent. */
    private fun initFirebase() {
        if (BuildConfig.FCM_PROJECT_ID.isEmpty() || FirebaseApp.getApps(this).isNotEmpty()) return
        val options = FirebaseOptions.Builder()
            .setProjectId(BuildConfig.FCM_PROJECT_ID)
            .setApplicationId(BuildConfig.FCM_APPLICATION_ID)
            .setApiKey(BuildConfig.FCM_API_KEY)
            .setGcmSenderId(BuildConfig.FCM_SENDER_ID)
            .build()
        FirebaseApp.initializeApp(this, options)
    }
}

val Context.agentRuntime: AgentRuntime get() = (applicationContext as AgentApplication).runtime
