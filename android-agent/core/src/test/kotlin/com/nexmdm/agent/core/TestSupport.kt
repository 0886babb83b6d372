package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Json
import java.io.File

/** Finds files of the repository (protocol/vectors) whatever the working directory of the test run. */
object Repo {
    val root: File by lazy {
        System.getProperty("nexmdm.repo")?.let { return@lazy File(it) }
        var dir: File? = File("").absoluteFile
        while (dir != null) {
            if (File(dir, "protocol/vectors/signing.json").exists()) return@lazy dir
            dir = dir.parentFile
        }
        error("protocol/vectors not found above ${File("").absolutePath}; set -Dnexmdm.repo=<repository root>")
    }

    @Suppress("UNCHECKED_CAST")
    fun vectors(name: String): Map<String, Any?> = Json.parse(File(root, "protocol/vectors/$name").readText()) as Map<String, Any?>
}

/** Plain JSON values with every integer as Long, so that values from codecs and files compare equal. */
fun normalized(value: Any?): Any? = Json.parse(Json.write(value))

fun tempDir(prefix: String): File = kotlin.io.path.createTempDirectory(prefix).toFile().also { it.deleteOnExit() }
