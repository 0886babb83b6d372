package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Decoded
import com.nexmdm.agent.core.protocol.EnrollRequest
import com.nexmdm.agent.core.protocol.FrameError
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.ProtocolCodec
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.test.fail

/**
 * Every vector of protocol/vectors/device-frames.json and engine-frames.json (PROTOCOL.md 13),
 * read from the repository at test time. Prints how many passed per file.
 */
class VectorsTest {
    private fun runFile(name: String, field: String = "frame", check: (frame: String, expect: Map<String, Any?>) -> Unit) {
        @Suppress("UNCHECKED_CAST")
        val vectors = Repo.vectors(name)["vectors"] as List<Map<String, Any?>>
        val failures = mutableListOf<String>()
        for (vector in vectors) {
            try {
                @Suppress("UNCHECKED_CAST")
                check(vector[field] as String, vector["expect"] as Map<String, Any?>)
            } catch (error: Throwable) {
                failures += "${vector["name"]}: ${error.message}"
            }
        }
        println("vectors $name: ${vectors.size - failures.size}/${vectors.size} passed")
        assertTrue(vectors.isNotEmpty(), "$name has no vectors")
        if (failures.isNotEmpty()) fail("$name: ${failures.size} vectors failed:\n" + failures.joinToString("\n"))
    }

    @Test
    fun `device frames decode as the vectors say and the encoder reproduces them`() = runFile("device-frames.json") { frame, expect ->
        val decoded = ProtocolCodec.decodeDeviceFrame(frame)
        if (expect["ok"] == true) {
            val frameValue = (decoded as? Decoded.Ok)?.frame ?: fail("rejected: ${(decoded as Decoded.Rejected).error.message}")
            assertEquals(expect["value"], normalized(frameValue.toJson()))
            // Encoder: given expect.value, produce JSON equal (as a value) to the frame minus unknown fields.
            @Suppress("UNCHECKED_CAST")
            val fromExpected = ProtocolCodec.decodeDeviceObject(expect["value"] as Map<String, Any?>)
            assertEquals(expect["value"], Json.parse(ProtocolCodec.encode(fromExpected)))
        } else {
            val rejected = decoded as? Decoded.Rejected ?: fail("accepted, expected ${expect["code"]}")
            assertEquals(expect["code"], rejected.error.code)
            assertTrue(rejected.error.message.isNotEmpty())
        }
    }

    @Test
    fun `engine frames decode as the vectors say`() = runFile("engine-frames.json") { frame, expect ->
        val decoded = ProtocolCodec.decodeEngineFrame(frame)
        if (expect["ok"] == true) {
            val frameValue = (decoded as? Decoded.Ok)?.frame ?: fail("rejected: ${(decoded as Decoded.Rejected).error.message}")
            assertEquals(expect["value"], normalized(frameValue.toJson()))
            assertEquals(expect["value"], Json.parse(ProtocolCodec.encode(frameValue)))
        } else {
            val rejected = decoded as? Decoded.Rejected ?: fail("accepted, expected ${expect["code"]}")
            assertEquals(expect["code"], rejected.error.code)
            assertTrue(rejected.error.message.isNotEmpty())
        }
    }

    @Test
    fun `enrollment request bodies validate as the vectors say`() = runFile("enroll-requests.json", field = "body") { body, expect ->
        @Suppress("UNCHECKED_CAST")
        val decoded = runCatching { EnrollRequest.decode(Json.parse(body) as Map<String, Any?>) }
        if (expect["ok"] == true) {
            val request = decoded.getOrElse { fail("refused: ${it.message}") }
            assertEquals(expect["value"], Json.parse(Json.write(request.toJson())))
        } else {
            val error = decoded.exceptionOrNull() as? FrameError ?: fail("accepted, expected ${expect["code"]}")
            assertTrue(error.message.isNotEmpty())
        }
    }

    @Test
    fun `every vectors file of the repository is checked here`() {
        val checked = setOf("device-frames.json", "engine-frames.json", "signing.json", "enroll-requests.json")
        val files = java.io.File(Repo.root, "protocol/vectors").list()!!.filter { it.endsWith(".json") }.sorted()
        // A new file is reported (the npm test suite shows it), not failed: its format needs a test first.
        for (file in files - checked) println("vectors $file: not checked by the agent")
        assertTrue(files.containsAll(listOf("device-frames.json", "engine-frames.json", "signing.json")))
    }

    @Test
    fun `the encoder refuses frames the engine would refuse`() {
        val valid = com.nexmdm.agent.core.protocol.Heartbeat(1, 1, 50, false, 1, 1, 1, "wifi", agentVersion = "1", uptimeS = 1)
        val invalid = listOf(
            valid.copy(seq = 0), valid.copy(batteryPct = 101), valid.copy(network = "5g"), valid.copy(signalDbm = 5),
            valid.copy(foregroundApp = ""), valid.copy(foregroundApp = "com.x\u0000y"), valid.copy(agentVersion = "é"),
        )
        for (heartbeat in invalid) {
            val error = runCatching { ProtocolCodec.encode(heartbeat) }.exceptionOrNull()
            assertTrue(error is com.nexmdm.agent.core.protocol.FrameError && error.code == "BAD_FRAME", "encoded $heartbeat")
        }
        assertEquals("""{"type":"ping"}""", ProtocolCodec.encode(com.nexmdm.agent.core.protocol.Ping()))
    }

    @Test
    fun `a frame with trailing garbage, 1e3 as an integer and 1-point-5 as a fraction`() {
        assertTrue(ProtocolCodec.decodeDeviceFrame("""{"type":"ping"} x""") is Decoded.Rejected)
        val ack = ProtocolCodec.decodeEngineFrame("""{"type":"ack","seq":1e3,"durableSeq":2.0}""")
        assertEquals(com.nexmdm.agent.core.protocol.Ack(1000, 2), (ack as Decoded.Ok).frame)
        assertTrue(ProtocolCodec.decodeEngineFrame("""{"type":"ack","seq":1.5,"durableSeq":2}""") is Decoded.Rejected)
    }
}
