package com.nexmdm.agent.core.protocol

/** PROTOCOL.md 9.6: the longest heartbeat interval, and the range of every interval on the wire. */
const val MAX_INTERVAL_S = 86_400

/**
 * What the agent knows of the device's power and network state, pushed by the platform
 * (battery and idle-mode broadcasts, the network callback on Android). [batteryPct] is null
 * when unknown; [metered] covers cellular networks too.
 */
data class PowerState(
    /** On external power (plugged in), whether or not the battery is still filling. */
    val charging: Boolean,
    val batteryPct: Int?,
    /** Doze (`PowerManager.isDeviceIdleMode`). */
    val doze: Boolean,
    val metered: Boolean,
) {
    fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>("charging" to charging, "batteryPct" to batteryPct, "doze" to doze, "metered" to metered)
}

/**
 * The engine's advice on the heartbeat interval by power state (PROTOCOL.md 9.6), sent in
 * `welcome` and `HeartbeatBatchResponse`. The agent chooses with [choose] and reports its choice
 * in each heartbeat's `intervalS`.
 */
data class HeartbeatPolicy(
    val chargingS: Int,
    val batteryS: Int,
    val meteredS: Int,
    val lowBatteryS: Int,
    val lowBatteryPct: Int,
    val dozeS: Int,
) {
    /** The first rule that applies: Doze, charging, low battery, metered network, battery. */
    fun choose(state: PowerState): Int = when {
        state.doze -> dozeS
        state.charging -> chargingS
        state.batteryPct != null && state.batteryPct <= lowBatteryPct -> lowBatteryS
        state.metered -> meteredS
        else -> batteryS
    }

    /**
     * 9.6: after a `set_heartbeat_interval`, every interval scaled by [intervalS] over [chargingS]
     * (rounded, kept in 1..[MAX_INTERVAL_S]) until the engine sends its policy for the new interval.
     */
    fun scaledTo(intervalS: Int): HeartbeatPolicy {
        fun scale(s: Int): Int = ((s.toLong() * intervalS + chargingS / 2) / chargingS).coerceIn(1, MAX_INTERVAL_S.toLong()).toInt()
        return HeartbeatPolicy(scale(chargingS), scale(batteryS), scale(meteredS), scale(lowBatteryS), lowBatteryPct, scale(dozeS))
    }

    fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>(
        "chargingS" to chargingS, "batteryS" to batteryS, "meteredS" to meteredS,
        "lowBatteryS" to lowBatteryS, "lowBatteryPct" to lowBatteryPct, "dozeS" to dozeS,
    )

    companion object {
        /** The schema of 9.6 (every field required); throws [FrameError] `BAD_FRAME` naming the field. */
        fun decode(obj: Map<String, Any?>): HeartbeatPolicy {
            val f = Fields(obj, prefix = "heartbeatPolicy.")
            val max = MAX_INTERVAL_S.toLong()
            return HeartbeatPolicy(
                chargingS = f.int("chargingS", 1, max),
                batteryS = f.int("batteryS", 1, max),
                meteredS = f.int("meteredS", 1, max),
                lowBatteryS = f.int("lowBatteryS", 1, max),
                lowBatteryPct = f.int("lowBatteryPct", 0, 100),
                dozeS = f.int("dozeS", 1, max),
            )
        }

        /** The policy of an engine answer, leniently: absent, not an object or out of range all mean "no policy" (9.6). */
        fun decodeOrNull(value: Any?): HeartbeatPolicy? {
            @Suppress("UNCHECKED_CAST")
            val obj = value as? Map<String, Any?> ?: return null
            return try {
                decode(obj)
            } catch (error: FrameError) {
                null
            }
        }

        /**
         * The interval to use (9.5, 9.6): the policy's choice for [state], or [announcedS] (the
         * engine's `heartbeatIntervalS`, or the operator's `set_heartbeat_interval`) when there is
         * no policy or the power state is not known yet.
         */
        fun intervalS(policy: HeartbeatPolicy?, state: PowerState?, announcedS: Int): Int =
            if (policy != null && state != null) policy.choose(state) else announcedS
    }
}
