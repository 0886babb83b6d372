package com.nexmdm.agent.core.protocol

/**
 * Parameters of each command type (PROTOCOL.md 15.7, `CommandParams` in Commands.ts): exactly
 * the listed keys, with their types and ranges. Check 6 of 15.4.
 */
object CommandParams {
    val TYPES: Set<String> = setOf(
        "ping", "lock", "reboot", "reset_password", "launch_app", "relaunch_app", "set_auto_relaunch",
        "install_apk", "clear_app_data", "set_heartbeat_interval", "request_heartbeat", "wipe",
    )

    private val PACKAGE_NAME = Regex("^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)+$")
    private val URL = Regex("^https?://[^\\s]+$")
    private val SHA256 = Regex("^[0-9a-f]{64}$")

    /** Params that must never be logged or echoed. */
    val SENSITIVE: Map<String, Set<String>> = mapOf("reset_password" to setOf("password"))

    /** Throws [FrameError] (`BAD_FRAME`) describing the first problem; the dispatcher reports `INVALID_PARAMS`. */
    fun validate(type: String, params: Map<String, Any?>) {
        val f = Fields(params)
        val allowed: Set<String> = when (type) {
            "ping", "reboot", "request_heartbeat" -> emptySet()
            "lock" -> {
                f.optString("message", 0, 200, printable = true)
                setOf("message")
            }
            "reset_password" -> {
                f.string("password", 4, 64, printable = true)
                setOf("password")
            }
            "launch_app", "relaunch_app", "clear_app_data" -> {
                packageName(f, "packageName")
                setOf("packageName")
            }
            "set_auto_relaunch" -> {
                packageName(f, "packageName")
                f.bool("enabled")
                f.long("checkIntervalS", 10, 3600)
                setOf("packageName", "enabled", "checkIntervalS")
            }
            "install_apk" -> {
                val url = f.string("url", 0, 2048)
                if (!URL.matches(url)) throw FrameError("BAD_FRAME", "url: expected an http(s) URL")
                if (!SHA256.matches(f.string("sha256"))) throw FrameError("BAD_FRAME", "sha256: expected 64 lowercase hex digits")
                if (params.containsKey("packageName")) packageName(f, "packageName")
                f.optLong("versionCode", 1, Json.MAX_SAFE_INTEGER)
                setOf("url", "sha256", "packageName", "versionCode")
            }
            "set_heartbeat_interval" -> {
                f.long("intervalS", 5, 3600)
                setOf("intervalS")
            }
            "wipe" -> {
                if (f.string("confirm") != "WIPE") throw FrameError("BAD_FRAME", "confirm: expected \"WIPE\"")
                f.optString("reason", 0, 200, printable = true)
                setOf("confirm", "reason")
            }
            else -> throw FrameError("UNKNOWN_TYPE", "unknown command type \"${type.take(40)}\"")
        }
        val extra = params.keys - allowed
        if (extra.isNotEmpty()) throw FrameError("BAD_FRAME", "${extra.first()}: unexpected parameter")
    }

    private fun packageName(f: Fields, name: String) {
        val value = f.string(name, 1, 255)
        if (!PACKAGE_NAME.matches(value)) throw FrameError("BAD_FRAME", "$name: expected a package name")
    }
}
