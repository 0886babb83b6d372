package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.CommandFrame
import com.nexmdm.agent.core.protocol.CommandOutcome
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.Signing
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue

/** protocol/vectors/signing.json (PROTOCOL.md 16), plus the escaping rules of 16.4. */
@Suppress("UNCHECKED_CAST")
class SigningTest {
    private val file = Repo.vectors("signing.json")
    private val signing = Signing.fromBase64Key(file["key"] as String)

    @Test
    fun `command vectors give exact signing strings, signatures, and tampering fails`() {
        val vectors = file["commands"] as List<Map<String, Any?>>
        for (vector in vectors) {
            val c = vector["command"] as Map<String, Any?>
            val frame = CommandFrame(c["id"] as String, c["commandType"] as String, c["params"] as Map<String, Any?>, c["issuedAt"] as Long, c["expiresAt"] as Long, vector["sig"] as String)
            val deviceId = c["deviceId"] as String
            val text = Signing.commandSigningString(frame.id, deviceId, frame.commandType, frame.issuedAt, frame.expiresAt, frame.params)
            assertEquals(vector["signingString"], text, vector["name"] as String)
            assertEquals(vector["sig"], signing.sign(text), vector["name"] as String)
            assertTrue(signing.verifyCommand(deviceId, frame))
            assertFalse(signing.verifyCommand("dev_zzzzzzzzzzzzzzzzzzzzzzzz", frame), "another device")
            assertFalse(signing.verifyCommand(deviceId, frame.copy(expiresAt = frame.expiresAt + 1)), "one more millisecond")
            assertFalse(signing.verifyCommand(deviceId, frame.copy(params = frame.params + ("extra" to 1L))), "a changed parameter")
            assertFalse(signing.verifyCommand(deviceId, frame.copy(sig = frame.sig.dropLast(1))), "a truncated signature")
            assertFalse(signing.verifyCommand(deviceId, frame.copy(sig = "!!!")), "not base64url")
        }
        println("vectors signing.json commands: ${vectors.size}/${vectors.size} passed")
    }

    @Test
    fun `result vectors give exact signing strings and signatures`() {
        val vectors = file["results"] as List<Map<String, Any?>>
        for (vector in vectors) {
            val r = vector["result"] as Map<String, Any?>
            val text = Signing.resultSigningString(r["id"] as String, r["deviceId"] as String, r["status"] as String, r["completedAt"] as Long, r["result"], r["error"] as String?)
            assertEquals(vector["signingString"], text)
            val frame = signing.signResult(
                r["deviceId"] as String, r["id"] as String, CommandOutcome.entries.first { it.wire == r["status"] }, r["completedAt"] as Long,
                r["result"] as Map<String, Any?>?, r["error"] as String?,
            )
            assertEquals(vector["sig"], frame.sig)
        }
        println("vectors signing.json results: ${vectors.size}/${vectors.size} passed")
    }

    @Test
    fun `canonical JSON vectors`() {
        val vectors = file["canonicalJson"] as List<Map<String, Any?>>
        for (vector in vectors) assertEquals(vector["canonical"], Json.canonical(vector["value"]))
        println("vectors signing.json canonicalJson: ${vectors.size}/${vectors.size} passed")
    }

    @Test
    fun `canonical JSON escapes like JSON-stringify and sorts by UTF-16 code units`() {
        assertEquals("\"\\u0001\\u001f\\b\\f\\n\\r\\t\u007f/é😀\"", Json.canonical("\u0001\u001f\b\u000c\n\r\t\u007f/é😀"))
        assertEquals("\"\\ud800x\"", Json.canonical("\ud800x"))
        assertEquals("{\"B\":1,\"a\":2,\"é\":3,\"\uD83D\uDE00\":4,\"\uFFFD\":5}", Json.canonical(mapOf("\uFFFD" to 5L, "é" to 3L, "a" to 2L, "\uD83D\uDE00" to 4L, "B" to 1)))
        assertEquals("[0,-1,9007199254740991]", Json.canonical(listOf(-0.0, -1L, 9007199254740991L)))
    }
}
