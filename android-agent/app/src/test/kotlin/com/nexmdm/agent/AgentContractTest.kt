package com.nexmdm.agent

import java.io.File
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The names enrollment scripts and QR provisioning rely on (engine/src/provisioning/ProvisioningModel.ts,
 * AGENT-CONTRACT.md) match this app's manifest and constants. Runs as a local unit test.
 */
class AgentContractTest {
    private val appDir = generateSequence(File("").absoluteFile) { it.parentFile }.first { File(it, "src/main/AndroidManifest.xml").exists() }
    private val manifest = File(appDir, "src/main/AndroidManifest.xml").readText()
    private val model = File(appDir, "../../engine/src/provisioning/ProvisioningModel.ts").readText()

    private fun constant(name: String): String =
        Regex("export const $name = (?:\"([^\"]*)\"|`\\$\\{AGENT_PACKAGE}([^`]*)`)").find(model)?.let { match ->
            match.groupValues[1].ifEmpty { "com.nexmdm.agent" + match.groupValues[2] }
        } ?: error("$name not found in ProvisioningModel.ts")

    @Test
    fun `extras and action match the provisioning model`() {
        assertEquals(constant("EXTRA_SERVER_URL"), ContractExtras.SERVER_URL)
        assertEquals(constant("EXTRA_ENROLLMENT_TOKEN"), ContractExtras.ENROLLMENT_TOKEN)
        assertEquals(constant("EXTRA_DEVICE_SERIAL"), ContractExtras.DEVICE_SERIAL)
        assertEquals(constant("ENROLL_ACTION"), EnrollReceiver.ACTION)
        assertTrue(manifest.contains("<action android:name=\"${EnrollReceiver.ACTION}\" />"))
    }

    @Test
    fun `components named by the scripts exist in the manifest`() {
        for (name in listOf("ADMIN_COMPONENT", "ENROLL_RECEIVER", "AGENT_SERVICE")) {
            val component = constant(name).substringAfter("/")
            assertTrue(manifest.contains("android:name=\"$component\""), "$name ($component) missing from the manifest")
        }
    }
}
