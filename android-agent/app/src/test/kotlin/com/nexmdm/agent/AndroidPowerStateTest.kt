package com.nexmdm.agent

import android.os.BatteryManager
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The battery extras as the heartbeat policy reads them (PROTOCOL.md 9.6). Runs as a local unit test. */
class AndroidPowerStateTest {
    @Test
    fun `the battery level is a percentage of the scale, unknown when the intent does not say`() {
        assertEquals(50, AndroidPowerState.batteryPct(50, 100))
        assertEquals(15, AndroidPowerState.batteryPct(30, 200))
        assertEquals(100, AndroidPowerState.batteryPct(101, 100))
        assertNull(AndroidPowerState.batteryPct(-1, 100))
        assertNull(AndroidPowerState.batteryPct(50, 0))
    }

    @Test
    fun `any plug is external power, none is battery`() {
        for (plug in listOf(BatteryManager.BATTERY_PLUGGED_AC, BatteryManager.BATTERY_PLUGGED_USB, BatteryManager.BATTERY_PLUGGED_WIRELESS)) {
            assertTrue(AndroidPowerState.isPlugged(plug))
        }
        assertFalse(AndroidPowerState.isPlugged(0))
    }
}
