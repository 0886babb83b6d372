package com.nexmdm.agent.core.protocol

import java.security.MessageDigest
import java.util.Base64
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/**
 * PROTOCOL.md 16: HMAC-SHA256 with the device's `hmacKey` over the canonical signing strings,
 * base64url without padding. `java.util.Base64` exists on Android from API 26 (our minSdk).
 */
class Signing(key: ByteArray) {
    private val keySpec = SecretKeySpec(key.copyOf(), "HmacSHA256")

    fun sign(text: String): String = Base64.getUrlEncoder().withoutPadding().encodeToString(mac(text))

    /** Constant-time comparison; a `sig` that is not base64url of 32 bytes fails. */
    fun verify(text: String, sig: String): Boolean {
        val given = try {
            Base64.getUrlDecoder().decode(sig.trimEnd('='))
        } catch (error: IllegalArgumentException) {
            return false
        }
        val expected = mac(text)
        return given.size == expected.size && MessageDigest.isEqual(given, expected)
    }

    fun verifyCommand(deviceId: String, command: CommandFrame): Boolean =
        verify(commandSigningString(command.id, deviceId, command.commandType, command.issuedAt, command.expiresAt, command.params), command.sig)

    fun signResult(deviceId: String, id: String, status: CommandOutcome, completedAt: Long, result: Map<String, Any?>?, error: String?): CommandResult =
        CommandResult(id, status, completedAt, result, error, sign(resultSigningString(id, deviceId, status.wire, completedAt, result, error)))

    private fun mac(text: String): ByteArray =
        Mac.getInstance("HmacSHA256").run {
            init(keySpec)
            doFinal(text.toByteArray(Charsets.UTF_8))
        }

    companion object {
        /** The enrollment `hmacKey` (standard base64, padded). */
        fun fromBase64Key(hmacKey: String) = Signing(Base64.getDecoder().decode(hmacKey))

        fun commandSigningString(id: String, deviceId: String, commandType: String, issuedAt: Long, expiresAt: Long, params: Any?): String =
            "nexmdm-cmd-v1\n$id\n$deviceId\n$commandType\n$issuedAt\n$expiresAt\n${Json.canonical(params)}"

        fun resultSigningString(id: String, deviceId: String, status: String, completedAt: Long, result: Any?, error: String?): String =
            "nexmdm-result-v1\n$id\n$deviceId\n$status\n$completedAt\n${Json.canonical(result)}\n${error ?: ""}"
    }
}
