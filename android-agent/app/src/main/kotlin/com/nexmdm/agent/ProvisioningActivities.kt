package com.nexmdm.agent

import android.app.Activity
import android.app.admin.DevicePolicyManager
import android.content.Intent
import android.os.Build
import android.os.Bundle
import android.os.PersistableBundle

/**
 * Android 12+ provisioning (QR / NFC / zero-touch): the setup wizard asks which mode we want.
 * The agent is a fully managed device's owner.
 */
class ProvisioningModeActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        @Suppress("DEPRECATION")
        ContractExtras.saveFrom(this, intent.getParcelableExtra<PersistableBundle>(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE))
        val result = Intent()
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            result.putExtra(DevicePolicyManager.EXTRA_PROVISIONING_MODE, DevicePolicyManager.PROVISIONING_MODE_FULLY_MANAGED_DEVICE)
        }
        setResult(RESULT_OK, result)
        finish()
    }
}

/**
 * Android 12+ provisioning, last step: the admin extras arrive again; the agent saves the pending
 * enrollment, starts its service (which enrols) and lets the setup wizard continue.
 */
class PolicyComplianceActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        @Suppress("DEPRECATION")
        val extras = intent.getParcelableExtra<PersistableBundle>(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE)
        if (ContractExtras.saveFrom(this, extras) || agentRuntime.pendingEnrollment() != null) agentRuntime.startService()
        setResult(RESULT_OK)
        finish()
    }
}
