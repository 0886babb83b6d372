package com.nexmdm.agent.core.protocol

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject
import org.json.JSONTokener

/**
 * JSON as plain Kotlin values, so that codec, signing and tests never depend on how a JSON
 * library represents numbers: objects are `Map<String, Any?>` (insertion order kept), arrays
 * `List<Any?>`, integers `Long`, other numbers `Double`, plus `String`, `Boolean` and `null`.
 *
 * Parsing goes through org.json, which Android provides (and json-android on the JVM).
 */
object Json {
    /** Largest integer JavaScript (and therefore the engine) represents exactly: 2^53 - 1. */
    const val MAX_SAFE_INTEGER: Long = 9_007_199_254_740_991L

    class ParseException(message: String) : Exception(message)

    /** Parses one JSON text into plain values; trailing non-whitespace is an error, as in JSON.parse. */
    fun parse(text: String): Any? {
        val tokener = JSONTokener(text)
        val value = try {
            tokener.nextValue()
        } catch (error: JSONException) {
            throw ParseException(error.message ?: "not valid JSON")
        }
        if (tokener.nextClean() != 0.toChar()) throw ParseException("trailing characters after the JSON value")
        return fromOrgJson(value)
    }

    fun fromOrgJson(value: Any?): Any? = when (value) {
        null, JSONObject.NULL -> null
        is JSONObject -> {
            val map = LinkedHashMap<String, Any?>()
            val keys = value.keys()
            while (keys.hasNext()) {
                val key = keys.next() as String
                map[key] = fromOrgJson(value.opt(key))
            }
            map
        }
        is JSONArray -> (0 until value.length()).map { fromOrgJson(value.opt(it)) }
        is Int -> value.toLong()
        is Long -> value
        is Double -> if (isWholeSafe(value)) value.toLong() else value
        is Float -> fromOrgJson(value.toDouble())
        is Number -> value.toDouble()
        is String, is Boolean -> value
        else -> throw ParseException("unexpected JSON value ${value::class.java.simpleName}")
    }

    /** 1.0 and 1e3 are integers to JavaScript (and to the engine's schemas), so they are to us. */
    private fun isWholeSafe(value: Double): Boolean =
        !value.isNaN() && !value.isInfinite() && value == Math.floor(value) && Math.abs(value) <= MAX_SAFE_INTEGER.toDouble()

    /**
     * Writes plain values as compact JSON with keys in insertion order. Strings are escaped like
     * JavaScript's JSON.stringify, so the output equals what the engine would write.
     */
    fun write(value: Any?): String = StringBuilder().also { writeTo(it, value, sortKeys = false) }.toString()

    /**
     * PROTOCOL.md 16.4: no whitespace, integers only, keys sorted by UTF-16 code units,
     * strings escaped exactly like JSON.stringify.
     */
    fun canonical(value: Any?): String = StringBuilder().also { writeTo(it, value, sortKeys = true) }.toString()

    private fun writeTo(out: StringBuilder, value: Any?, sortKeys: Boolean) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(if (value) "true" else "false")
            is Int, is Long, is Short, is Byte -> {
                val n = (value as Number).toLong()
                require(n in -MAX_SAFE_INTEGER..MAX_SAFE_INTEGER) { "integer $n outside the exact range" }
                out.append(n)
            }
            is Double, is Float -> {
                val d = (value as Number).toDouble()
                require(isWholeSafe(d)) { "only integers may be written, got $d" }
                out.append(d.toLong())
            }
            is String -> quote(out, value)
            is Map<*, *> -> {
                val keys = value.keys.map { it as String }
                out.append('{')
                (if (sortKeys) keys.sorted() else keys).forEachIndexed { i, key ->
                    if (i > 0) out.append(',')
                    quote(out, key)
                    out.append(':')
                    writeTo(out, value[key], sortKeys)
                }
                out.append('}')
            }
            is List<*> -> {
                out.append('[')
                value.forEachIndexed { i, element ->
                    if (i > 0) out.append(',')
                    writeTo(out, element, sortKeys)
                }
                out.append(']')
            }
            else -> throw IllegalArgumentException("not a JSON value: ${value::class.java.name}")
        }
    }

    private fun quote(out: StringBuilder, text: String) {
        out.append('"')
        var i = 0
        while (i < text.length) {
            val c = text[i]
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\b' -> out.append("\\b")
                c == '\t' -> out.append("\\t")
                c == '\n' -> out.append("\\n")
                c == '\u000C' -> out.append("\\f")
                c == '\r' -> out.append("\\r")
                c < ' ' -> out.append("\\u").append(hex4(c))
                Character.isHighSurrogate(c) && i + 1 < text.length && Character.isLowSurrogate(text[i + 1]) -> {
                    out.append(c).append(text[i + 1])
                    i++
                }
                Character.isSurrogate(c) -> out.append("\\u").append(hex4(c))
                else -> out.append(c)
            }
            i++
        }
        out.append('"')
    }

    private fun hex4(c: Char): String = Integer.toHexString(c.code).padStart(4, '0')
}
