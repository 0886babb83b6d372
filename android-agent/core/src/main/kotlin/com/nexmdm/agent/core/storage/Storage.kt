package com.nexmdm.agent.core.storage

import java.io.File
import java.io.FileOutputStream

/**
 * Persistent storage the agent needs: small named documents replaced atomically, and append-only
 * logs (the outboxes) that are compacted now and then. Android uses [FileStorage] on
 * `Context.getNoBackupFilesDir()`; tests use a temporary folder.
 */
interface Storage {
    fun read(name: String): String?
    /** Replaces the document atomically: a crash leaves the old or the new content, never a mix. */
    fun write(name: String, content: String)
    fun delete(name: String)
    /** Appends one line and syncs it to disk before returning. */
    fun appendLine(name: String, line: String)
    fun readLines(name: String): List<String>
    /** Replaces a log atomically (compaction). */
    fun replaceLines(name: String, lines: List<String>)
}

class FileStorage(private val dir: File) : Storage {
    init {
        dir.mkdirs()
    }

    private fun file(name: String): File {
        require(name.matches(Regex("[A-Za-z0-9._-]+"))) { "bad storage name $name" }
        return File(dir, name)
    }

    @Synchronized
    override fun read(name: String): String? = file(name).takeIf { it.exists() }?.readText()

    @Synchronized
    override fun write(name: String, content: String) {
        val target = file(name)
        val temp = File(dir, "$name.tmp")
        FileOutputStream(temp).use { out ->
            out.write(content.toByteArray(Charsets.UTF_8))
            out.fd.sync()
        }
        if (!temp.renameTo(target)) {
            target.delete()
            check(temp.renameTo(target)) { "cannot replace $target" }
        }
    }

    @Synchronized
    override fun delete(name: String) {
        file(name).delete()
    }

    @Synchronized
    override fun appendLine(name: String, line: String) {
        require('\n' !in line)
        FileOutputStream(file(name), true).use { out ->
            out.write((line + "\n").toByteArray(Charsets.UTF_8))
            out.fd.sync()
        }
    }

    @Synchronized
    override fun readLines(name: String): List<String> {
        val text = read(name) ?: return emptyList()
        // A crash in the middle of an append leaves a partial last line: drop it.
        val lines = text.split('\n')
        return if (text.endsWith("\n")) lines.dropLast(1) else lines.dropLast(1)
    }

    @Synchronized
    override fun replaceLines(name: String, lines: List<String>) = write(name, lines.joinToString("") { it + "\n" })
}

/** In-memory [Storage] for unit tests. */
class MemoryStorage : Storage {
    private val documents = HashMap<String, String>()
    private val logs = HashMap<String, MutableList<String>>()
    @Synchronized override fun read(name: String) = documents[name]
    @Synchronized override fun write(name: String, content: String) { documents[name] = content }
    @Synchronized override fun delete(name: String) { documents.remove(name); logs.remove(name) }
    @Synchronized override fun appendLine(name: String, line: String) { logs.getOrPut(name) { mutableListOf() }.add(line) }
    @Synchronized override fun readLines(name: String): List<String> = logs[name]?.toList() ?: emptyList()
    @Synchronized override fun replaceLines(name: String, lines: List<String>) { logs[name] = lines.toMutableList() }
}
