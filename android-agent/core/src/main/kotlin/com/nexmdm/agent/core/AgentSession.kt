package com.nexmdm.agent.core

import com.nexmdm.agent.core.protocol.Ack
import com.nexmdm.agent.core.protocol.CloseCode
import com.nexmdm.agent.core.protocol.CommandFrame
import com.nexmdm.agent.core.protocol.Decoded
import com.nexmdm.agent.core.protocol.DeviceFrame
import com.nexmdm.agent.core.protocol.Durable
import com.nexmdm.agent.core.protocol.EngineFrame
import com.nexmdm.agent.core.protocol.ErrorFrame
import com.nexmdm.agent.core.protocol.Heartbeat
import com.nexmdm.agent.core.protocol.HeartbeatPolicy
import com.nexmdm.agent.core.protocol.Json
import com.nexmdm.agent.core.protocol.MAX_INTERVAL_S
import com.nexmdm.agent.core.protocol.Ping
import com.nexmdm.agent.core.protocol.Pong
import com.nexmdm.agent.core.protocol.PowerState
import com.nexmdm.agent.core.protocol.ProtocolCodec
import com.nexmdm.agent.core.protocol.Signing
import com.nexmdm.agent.core.protocol.TicketIssued
import com.nexmdm.agent.core.protocol.Welcome
import com.nexmdm.agent.core.storage.Storage
import com.nexmdm.agent.core.transport.HttpTransport
import com.nexmdm.agent.core.transport.WebSocketConnection
import com.nexmdm.agent.core.transport.WebSocketListener
import com.nexmdm.agent.core.transport.WebSocketTransport
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledFuture
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong

/** One telemetry sample without the fields the session fills in (seq, ts, agentVersion). */
data class TelemetrySample(
    val batteryPct: Int,
    val charging: Boolean,
    val memFreeMb: Int,
    val memTotalMb: Int,
    val storageFreeMb: Int,
    val network: String,
    val signalDbm: Int? = null,
    val foregroundApp: String? = null,
    val uptimeS: Int,
)

fun interface TelemetrySource {
    fun sample(): TelemetrySample
}

data class SessionConfig(
    val agentVersion: String,
    /** 12.2: WebSocket failures in a row (while HTTP works) before switching to the HTTP fallback. */
    val fallbackAfterFailures: Int = 3,
    /** 12.2: how often the fallback tries the WebSocket again. */
    val webSocketRetryInFallbackMs: Long = 5 * 60_000L,
    /** 12.1: a connection that stayed up this long after `welcome` resets the attempt counter. */
    val stableAfterMs: Long = 60_000L,
    /** 9.4: at most this many frames per second on the socket for resends. */
    val resendFramesPerSecond: Int = 10,
    /** 12.2: long-poll wait on the fallback. */
    val pollWaitS: Int = 30,
    val backoff: Backoff = Backoff(),
)

/** The agent's cost since its previous heartbeat sample (PROTOCOL.md 9.6), clamped to the wire's range. */
data class SampleCost(val wakeups: Int, val txBytes: Int, val reconnects: Int)

/**
 * What the agent costs (battery budget), counted since the process started: wake-ups (timer
 * ticks, FCM wakes, reconnect timers, network changes that led to work; the platform adds its
 * own, e.g. boot), bytes sent to the engine (frame payloads, HTTP bodies), WebSocket connection
 * attempts, heartbeats sent. Totals are shown on the status screen; each heartbeat carries the
 * deltas since the previous sample ([sample]).
 */
class AgentStats {
    val wakeups = AtomicLong()
    val bytesSent = AtomicLong()
    val reconnects = AtomicLong()
    val heartbeatsSent = AtomicLong()
    private var atLastSample = LongArray(3)

    /**
     * Runs [store] with the cost since the previous sample; the totals it saw become the starting
     * point of the next sample only when [store] returns, so a sample that could not be stored
     * passes its cost on to the next one.
     */
    @Synchronized
    fun <T> sample(store: (SampleCost) -> T): T {
        val totals = longArrayOf(wakeups.get(), bytesSent.get(), reconnects.get())
        fun since(i: Int): Int = (totals[i] - atLastSample[i]).coerceIn(0, Int.MAX_VALUE.toLong()).toInt()
        val result = store(SampleCost(wakeups = since(0), txBytes = since(1), reconnects = since(2)))
        atLastSample = totals
        return result
    }

    fun toMap(): Map<String, Any?> = mapOf("wakeups" to wakeups.get(), "bytesSent" to bytesSent.get(), "reconnects" to reconnects.get(), "heartbeatsSent" to heartbeatsSent.get())
}

/**
 * The connection manager and heartbeat scheduler: holds the WebSocket (ticket at upgrade),
 * sends heartbeats through the persistent [HeartbeatOutbox], trims it only up to the engine's
 * durable watermark, resends after reconnects and refusals, reconnects with jittered backoff,
 * falls back to HTTP after repeated socket failures, renews tickets, and hands commands to the
 * [CommandDispatcher]. All state lives on one thread ([loop]); blocking HTTP runs on [io].
 */
class AgentSession(
    private val storage: Storage,
    private val http: HttpTransport,
    private val webSockets: WebSocketTransport,
    private val telemetry: TelemetrySource,
    private val executor: CommandExecutor,
    private val config: SessionConfig,
    private val events: AgentEvents = AgentEvents.NONE,
    private val clock: () -> Long = System::currentTimeMillis,
    /** The process's counters (the platform may count wake-ups before a session exists). */
    val stats: AgentStats = AgentStats(),
) {
    enum class Mode { STOPPED, CONNECTING, CONNECTED, WAITING, FALLBACK, RETIRED, NEEDS_ENROLLMENT }

    private val loop = Executors.newSingleThreadScheduledExecutor { Thread(it, "nexmdm-agent").apply { isDaemon = true } }
    private val io = Executors.newCachedThreadPool { Thread(it, "nexmdm-agent-io").apply { isDaemon = true } }
    private val worker = Executors.newSingleThreadExecutor { Thread(it, "nexmdm-agent-commands").apply { isDaemon = true } }

    val outbox = HeartbeatOutbox(storage)
    val updates = UpdateOutbox(storage)
    private val records = CommandRecords(storage)

    private var credentials: Credentials = Credentials.load(storage) ?: error("not enrolled")
    private val api = DeviceApi(http, credentials.serverUrl) { bytes -> stats.bytesSent.addAndGet(bytes) }
    private val dispatcher = CommandDispatcher(
        credentials.deviceId, Signing.fromBase64Key(credentials.hmacKey), records, updates, executor, AgentCommandsImpl(), worker,
        engineNow = { engineNow() }, events = events, onUpdates = { loop.execute { flushUpdates() } },
    )

    @Volatile
    var mode: Mode = Mode.STOPPED
        private set

    // Connection state (loop thread only).
    private var socket: WebSocketConnection? = null
    private var generation = 0
    private var welcomedAt: Long? = null
    private var failures = 0
    private var networkAvailable = true
    private var holdUntil = 0L
    private var lastRetryAfterMs: Long? = null
    private var ticketRejected = false
    private var reconnectTask: ScheduledFuture<*>? = null
    private var heartbeatTask: ScheduledFuture<*>? = null
    private var fallbackRetryTask: ScheduledFuture<*>? = null
    private var clockOffsetMs = 0L
    private val supersededAt = ArrayDeque<Long>()
    private var updatesFlushScheduled = false
    private var lastFrameAt = 0L

    // Heartbeat interval (9.5, 9.6): the policy's choice for [powerState] (null until the platform reports one).
    @Volatile private var powerState: PowerState? = null
    private var lastSampleAt = 0L
    private var intervalChangedAt = 0L

    // Heartbeat flow on the socket: sent up to [sentUpTo], acked up to [ackedUpTo]; paused until [pausedUntil].
    private var sentUpTo = 0L
    private var ackedUpTo = 0L
    private var pausedUntil = 0L
    private var pumpScheduled = false
    private var lastSendAt = 0L

    // Update fences (15.5): nonce -> highest update number sent before the ping.
    private var updatesSentUpTo = 0L
    private val fences = LinkedHashMap<String, Long>()
    private var fenceCounter = 0
    private val pongWaiters = HashMap<String, CountDownLatch>()
    private val pongTimes = HashMap<String, Long>()

    // Fallback state.
    @Volatile private var polling = false
    private var httpHeartbeatInFlight = false
    private var httpUpdatesInFlight = false

    val deviceId: String get() = credentials.deviceId
    /** The heartbeat interval in use: the engine's policy for the power state, else the announced interval. */
    val intervalS: Int get() = HeartbeatPolicy.intervalS(credentials.heartbeatPolicy, powerState, credentials.announcedIntervalS)

    fun start() = loop.execute {
        if (mode != Mode.STOPPED) return@execute
        events.emit("session_start", mapOf("deviceId" to credentials.deviceId, "outbox" to outbox.size, "lastSeq" to outbox.lastSeq))
        dispatcher.recoverAfterRestart()
        scheduleHeartbeats(0)
        connect()
    }

    fun stop(): Unit = runOnLoop {
        mode = Mode.STOPPED
        reconnectTask?.cancel(false)
        heartbeatTask?.cancel(false)
        fallbackRetryTask?.cancel(false)
        socket?.close(CloseCode.NORMAL, "agent stopping")
        socket = null
        polling = false
    }

    fun shutdown() {
        stop()
        loop.shutdown()
        io.shutdownNow()
        worker.shutdown()
    }

    /** Network callbacks (ConnectivityManager on Android): no attempts while there is no network (12.1). */
    fun onNetworkAvailable() = loop.execute {
        networkAvailable = true
        if (mode == Mode.WAITING && reconnectTask == null) {
            stats.wakeups.incrementAndGet()
            scheduleReconnect()
        }
    }

    fun onNetworkLost() = loop.execute { networkAvailable = false }

    /**
     * The platform's power and network state changed (9.6: plugged in or out, battery level, Doze,
     * metered network). When that changes the interval, the heartbeat timer is re-armed from the
     * last sample: at once if the new interval has already passed since then.
     */
    fun onPowerStateChanged(state: PowerState) = loop.execute {
        if (state == powerState) return@execute
        val before = intervalS
        powerState = state
        if (intervalS != before) intervalChanged("power_state")
    }

    /** An FCM wake-up (17.2): connect now if the schedule allows it; never when retired. */
    fun wake() = loop.execute {
        stats.wakeups.incrementAndGet()
        when (mode) {
            Mode.CONNECTED -> sendFrame(Ping("wake-${clock()}"))
            Mode.WAITING -> if (clock() >= holdUntil && networkAvailable) {
                reconnectTask?.cancel(false)
                reconnectTask = null
                connect()
            }
            Mode.FALLBACK -> io.execute { pollOnce(0) }
            else -> Unit
        }
    }

    @Volatile
    private var samplingPaused = false

    /** Stops taking scheduled samples (tests: let the outbox drain); the connection stays up. */
    fun pauseSampling(paused: Boolean) {
        samplingPaused = paused
    }

    /**
     * 17.1: registers the FCM token unless it is the one registered last; retried with backoff
     * until a `200` (a rejected ticket is renewed first).
     */
    fun registerFcmToken(token: String) = loop.execute { registerFcmTokenAttempt(token, 0) }

    private fun registerFcmTokenAttempt(token: String, attempt: Int) {
        if (mode == Mode.RETIRED || storage.read(FCM_TOKEN_DOCUMENT) == token) return
        val ticket = credentials.ticket
        io.execute {
            val error = try {
                api.registerFcmToken(ticket, token)
                null
            } catch (error: ApiError) {
                error
            }
            loop.execute {
                when {
                    error == null -> {
                        storage.write(FCM_TOKEN_DOCUMENT, token)
                        events.emit("fcm_token_registered", emptyMap())
                    }
                    error.isTicketProblem -> renewTicketThen { registerFcmTokenAttempt(token, attempt + 1) }
                    else -> loop.schedule({ registerFcmTokenAttempt(token, attempt + 1) }, config.backoff.delayMs(minOf(attempt, 6), error.retryAfterMs), TimeUnit.MILLISECONDS)
                }
            }
        }
    }

    /** Takes a sample now (the `request_heartbeat` command) and returns its seq. */
    fun heartbeatNow(): Long = callOnLoop { takeSample() }

    fun status(): Map<String, Any?> = callOnLoop {
        mapOf(
            "mode" to mode.name, "deviceId" to credentials.deviceId, "outbox" to outbox.size, "lastSeq" to outbox.lastSeq,
            "durableSeq" to outbox.durableSeq, "updatesPending" to updates.size, "intervalS" to intervalS, "failures" to failures,
            "powerState" to powerState?.toJson(), "heartbeatPolicy" to credentials.heartbeatPolicy?.toJson(),
        ) + stats.toMap()
    }

    // -----------------------------------------------------------------------------------------
    // Connecting

    private fun connect() {
        if (mode == Mode.RETIRED || mode == Mode.NEEDS_ENROLLMENT) return
        reconnectTask = null
        if (!networkAvailable) {
            if (mode != Mode.FALLBACK) mode = Mode.WAITING
            return
        }
        // 5.3: never connect with a ticket known to be expired; get a new one first.
        if (ticketRejected || credentials.ticketExpiresAt <= engineNow() + 60_000) {
            renewTicketThen { connect() }
            return
        }
        if (mode != Mode.FALLBACK) mode = Mode.CONNECTING
        val thisGeneration = ++generation
        welcomedAt = null
        stats.reconnects.incrementAndGet()
        events.emit("ws_connecting", mapOf("attempt" to failures))
        socket = webSockets.connect(api.webSocketUrl, mapOf("Authorization" to "Bearer ${credentials.ticket}"), object : WebSocketListener {
            override fun onOpen() = Unit
            override fun onMessage(text: String) = loop.execute { if (thisGeneration == generation) onFrame(text) }
            override fun onClosed(code: Int, reason: String) = loop.execute { if (thisGeneration == generation) onSocketEnd(code, null, null) }
            override fun onFailure(error: Throwable, httpStatus: Int?, httpBody: String?) =
                loop.execute { if (thisGeneration == generation) onSocketEnd(null, httpStatus, httpBody) }
        })
    }

    private fun onSocketEnd(closeCode: Int?, httpStatus: Int?, httpBody: String?) {
        socket?.cancel()
        socket = null
        generation++
        val wasWelcomed = welcomedAt
        welcomedAt = null
        val now = clock()
        events.emit("ws_closed", mapOf("code" to closeCode, "httpStatus" to httpStatus, "mode" to mode.name))
        if (mode == Mode.STOPPED || mode == Mode.RETIRED) return
        if (closeCode == CloseCode.DEVICE_RETIRED) return retire()
        if (closeCode == CloseCode.UNAUTHENTICATED || closeCode == CloseCode.TICKET_EXPIRED || httpStatus == 401) ticketRejected = true
        if (httpStatus == 503) lastRetryAfterMs = com.nexmdm.agent.core.protocol.HttpErrorBody.decodeOrNull(httpBody)?.retryAfterMs ?: lastRetryAfterMs
        // 12.1: a drop within 60 s of welcome counts as a failed attempt.
        if (wasWelcomed != null && now - wasWelcomed >= config.stableAfterMs) failures = 0 else failures++
        if (closeCode == CloseCode.SUPERSEDED) {
            // 11: 4004 three times within 5 minutes: the credentials are probably used elsewhere.
            supersededAt.addLast(now)
            while (supersededAt.isNotEmpty() && now - supersededAt.first() > 5 * 60_000L) supersededAt.removeFirst()
            events.emit("superseded", mapOf("recent" to supersededAt.size))
            if (supersededAt.size >= 3) lastRetryAfterMs = 5 * 60_000L
        }
        if (mode == Mode.FALLBACK) {
            scheduleFallbackRetry()
            return
        }
        if (failures >= config.fallbackAfterFailures && !ticketRejected) {
            probeHttpThenFallback()
            return
        }
        scheduleReconnect()
    }

    private fun scheduleReconnect() {
        mode = Mode.WAITING
        if (!networkAvailable) return
        val delay = config.backoff.delayMs(maxOf(0, failures - 1), lastRetryAfterMs)
        lastRetryAfterMs = null
        holdUntil = clock() + delay
        events.emit("ws_reconnect_scheduled", mapOf("delayMs" to delay, "failures" to failures))
        reconnectTask?.cancel(false)
        reconnectTask = loop.schedule({ stats.wakeups.incrementAndGet(); connect() }, delay, TimeUnit.MILLISECONDS)
    }

    /** 12.2: switch to HTTP only when HTTP works; else keep trying the socket. */
    private fun probeHttpThenFallback() {
        mode = Mode.WAITING
        val ticket = credentials.ticket
        io.execute {
            val works = try {
                handleMessages(api.pollMessages(ticket, 0))
                true
            } catch (error: ApiError) {
                false
            }
            loop.execute {
                if (mode != Mode.WAITING) return@execute
                if (works) enterFallback() else scheduleReconnect()
            }
        }
    }

    private fun enterFallback() {
        events.emit("fallback_enter", mapOf("failures" to failures))
        mode = Mode.FALLBACK
        startPolling()
        flushHttpHeartbeats()
        flushUpdates()
        scheduleFallbackRetry()
    }

    private fun scheduleFallbackRetry() {
        fallbackRetryTask?.cancel(false)
        fallbackRetryTask = loop.schedule({
            if (mode == Mode.FALLBACK && socket == null) {
                stats.wakeups.incrementAndGet()
                connect()
            }
        }, config.webSocketRetryInFallbackMs, TimeUnit.MILLISECONDS)
    }

    private fun leaveFallback() {
        if (mode != Mode.FALLBACK) return
        events.emit("fallback_leave", emptyMap())
        fallbackRetryTask?.cancel(false)
        polling = false
    }

    private fun renewTicketThen(next: () -> Unit) {
        val current = credentials
        io.execute {
            try {
                val renewed = api.renewTicket(current.deviceId, current.deviceSecret)
                loop.execute {
                    ticketRejected = false
                    storeCredentials(credentials.copy(ticket = renewed.ticket, ticketExpiresAt = renewed.ticketExpiresAt))
                    events.emit("ticket_renewed", mapOf("via" to "http"))
                    next()
                }
            } catch (error: ApiError) {
                loop.execute {
                    when {
                        error.isRetired -> retire()
                        error.code == "CREDENTIALS_INVALID" -> {
                            mode = Mode.NEEDS_ENROLLMENT
                            events.emit("needs_enrollment", mapOf("code" to error.code))
                        }
                        else -> {
                            failures++
                            lastRetryAfterMs = error.retryAfterMs
                            if (mode != Mode.FALLBACK) scheduleReconnect() else loop.schedule({ renewTicketThen(next) }, config.backoff.delayMs(failures, error.retryAfterMs), TimeUnit.MILLISECONDS)
                        }
                    }
                }
            }
        }
    }

    private fun retire() {
        events.emit("retired", emptyMap())
        mode = Mode.RETIRED
        socket?.cancel()
        socket = null
        polling = false
        heartbeatTask?.cancel(false)
        reconnectTask?.cancel(false)
        fallbackRetryTask?.cancel(false)
        outbox.clear()
        storage.delete(Credentials.DOCUMENT)
        storage.delete(FCM_TOKEN_DOCUMENT)
        records.clear()
    }

    private fun storeCredentials(updated: Credentials) {
        credentials = updated
        storage.write(Credentials.DOCUMENT, Json.write(updated.toJson()))
    }

    // -----------------------------------------------------------------------------------------
    // Frames from the engine

    private fun onFrame(text: String) {
        lastFrameAt = clock()
        val obj = try {
            ProtocolCodec.parseObject(text)
        } catch (error: com.nexmdm.agent.core.protocol.FrameError) {
            events.emit("frame_ignored", mapOf("error" to error.message))
            return
        }
        if (obj["type"] == "command") {
            dispatcher.handle(obj)
            return
        }
        when (val decoded = ProtocolCodec.decodeEngineFrame(text, lenientPolicy = true)) {
            is Decoded.Rejected -> {
                events.emit("frame_ignored", mapOf("type" to decoded.type, "error" to decoded.error.message))
                // 1: an error frame with an unknown code is still an error: obey retryAfterMs.
                if (obj["type"] == "error") (obj["retryAfterMs"] as? Long)?.let { pause(it) }
            }
            is Decoded.Ok<EngineFrame> -> when (val frame = decoded.frame) {
                is Welcome -> {
                    if (frame.heartbeatPolicy == null && obj.containsKey("heartbeatPolicy")) events.emit("heartbeat_policy_ignored", mapOf("via" to "ws"))
                    onWelcome(frame)
                }
                is Ack -> {
                    ackedUpTo = maxOf(ackedUpTo, frame.seq)
                    trim(frame.durableSeq)
                }
                is Durable -> trim(frame.durableSeq)
                is Pong -> onPong(frame)
                is TicketIssued -> {
                    storeCredentials(credentials.copy(ticket = frame.ticket, ticketExpiresAt = frame.expiresAt))
                    events.emit("ticket_renewed", mapOf("via" to "socket"))
                }
                is ErrorFrame -> onError(frame)
                is CommandFrame -> dispatcher.handle(frame.toJson())
            }
        }
    }

    private fun onWelcome(welcome: Welcome) {
        val now = clock()
        welcomedAt = now
        clockOffsetMs = welcome.serverTime - now
        leaveFallback()
        mode = Mode.CONNECTED
        holdUntil = 0
        applyAdvice(welcome.heartbeatIntervalS, welcome.heartbeatPolicy)
        trim(welcome.durableSeq)
        // 9.4: resend everything above the watermark, in order, before any new heartbeat.
        sentUpTo = welcome.durableSeq
        ackedUpTo = welcome.durableSeq
        pausedUntil = 0
        updatesSentUpTo = 0
        fences.clear()
        events.emit("welcome", mapOf("durableSeq" to welcome.durableSeq, "outbox" to outbox.size, "heartbeatIntervalS" to welcome.heartbeatIntervalS, "intervalS" to intervalS))
        loop.schedule({ if (welcomedAt == now) failures = 0 }, config.stableAfterMs, TimeUnit.MILLISECONDS)
        rearmHeartbeats()
        pump()
        flushUpdates()
    }

    private fun onError(error: ErrorFrame) {
        events.emit("engine_error", mapOf("code" to error.code, "seq" to error.seq, "commandId" to error.commandId, "retryAfterMs" to error.retryAfterMs))
        when (error.code) {
            "UNKNOWN_COMMAND" -> error.commandId?.let { updates.dropCommand(it) }
            "SIGNATURE_INVALID" -> error.commandId?.let { updates.dropResult(it) }
            "BACKPRESSURE", "RATE_LIMITED", "SHUTTING_DOWN" -> {
                if (welcomedAt == null) {
                    lastRetryAfterMs = error.retryAfterMs?.toLong()
                    return
                }
                // 9.3: refused (or possibly a dropped frame): keep everything unacked, pause, resend in order.
                pause(error.retryAfterMs?.toLong() ?: 1000)
                if (error.seq == null) {
                    fences.clear()
                    updatesSentUpTo = 0
                }
            }
            "BAD_FRAME" -> if (error.seq != null) {
                // The heartbeat itself is invalid: resending would fail again (7.2).
                events.emit("heartbeat_rejected", mapOf("seq" to error.seq))
            }
            else -> error.retryAfterMs?.let { lastRetryAfterMs = it.toLong() }
        }
    }

    private fun pause(retryAfterMs: Long) {
        pausedUntil = clock() + retryAfterMs
        sentUpTo = maxOf(ackedUpTo, outbox.durableSeq)
        loop.schedule({ pump(); flushHttpHeartbeats(); flushUpdates() }, retryAfterMs, TimeUnit.MILLISECONDS)
    }

    private fun onPong(pong: Pong) {
        clockOffsetMs = pong.serverTime - clock()
        val nonce = pong.nonce ?: return
        pongWaiters.remove(nonce)?.let {
            pongTimes[nonce] = clock()
            it.countDown()
        }
        confirmFencesUpTo(nonce)
    }

    private fun confirmFencesUpTo(nonce: String) {
        if (nonce !in fences) return
        val iterator = fences.entries.iterator()
        while (iterator.hasNext()) {
            val (key, upTo) = iterator.next()
            updates.confirmUpTo(upTo)
            iterator.remove()
            if (key == nonce) break
        }
    }

    private fun trim(durableSeq: Long) {
        val removed = outbox.trimTo(durableSeq)
        if (removed > 0) events.emit("durable", mapOf("durableSeq" to durableSeq, "trimmed" to removed, "outbox" to outbox.size))
    }

    // -----------------------------------------------------------------------------------------
    // Heartbeats

    private fun scheduleHeartbeats(firstDelayMs: Long) {
        heartbeatTask?.cancel(false)
        val periodMs = intervalS * 1000L
        heartbeatTask = loop.scheduleAtFixedRate({ onHeartbeatTick() }, firstDelayMs, periodMs, TimeUnit.MILLISECONDS)
    }

    /** The next tick one interval after the last sample (at once if that has passed), then every interval. */
    private fun rearmHeartbeats() {
        scheduleHeartbeats((lastSampleAt + intervalS * 1000L - clock()).coerceAtLeast(0))
    }

    /**
     * The engine's latest advice (9.5, 9.6): its interval and policy replace what the agent held; a
     * missing (or malformed) policy means none. Re-arms the timer when the interval in use changes.
     */
    private fun applyAdvice(heartbeatIntervalS: Int, policy: HeartbeatPolicy?) {
        if (heartbeatIntervalS == credentials.heartbeatIntervalS && policy == credentials.heartbeatPolicy) return
        val before = intervalS
        storeCredentials(credentials.copy(heartbeatIntervalS = heartbeatIntervalS, heartbeatPolicy = policy))
        if (intervalS != before) intervalChanged("engine")
    }

    private fun intervalChanged(reason: String) {
        intervalChangedAt = clock()
        events.emit("heartbeat_interval", mapOf("intervalS" to intervalS, "reason" to reason, "powerState" to powerState?.toJson()))
        if (mode != Mode.STOPPED && mode != Mode.RETIRED && mode != Mode.NEEDS_ENROLLMENT) rearmHeartbeats()
    }

    private fun onHeartbeatTick() {
        if (mode == Mode.RETIRED || mode == Mode.NEEDS_ENROLLMENT || mode == Mode.STOPPED) return
        stats.wakeups.incrementAndGet()
        if (!samplingPaused) takeSample()
        // Liveness (6): nothing from the engine for two intervals plus 30 s means a dead socket
        // (counted from the last change of interval too: a longer one may have let the socket idle).
        if (mode == Mode.CONNECTED && clock() - maxOf(lastFrameAt, intervalChangedAt) > intervalS * 2000L + 30_000) {
            events.emit("ws_dead", emptyMap())
            onSocketEnd(1006, null, null)
        }
    }

    private fun takeSample(): Long {
        val sample = telemetry.sample()
        val now = clock()
        val usingS = intervalS.takeIf { it in 1..MAX_INTERVAL_S }
        // 9.6: the cost is fixed here and stored with the sample, so a resend carries the same values.
        val heartbeat = stats.sample { cost ->
            Heartbeat(
                seq = outbox.nextSeq(), ts = now, batteryPct = sample.batteryPct, charging = sample.charging,
                memFreeMb = sample.memFreeMb, memTotalMb = sample.memTotalMb, storageFreeMb = sample.storageFreeMb,
                network = sample.network, signalDbm = sample.signalDbm, foregroundApp = sample.foregroundApp,
                agentVersion = config.agentVersion, uptimeS = sample.uptimeS,
                intervalS = usingS, wakeups = cost.wakeups, txBytes = cost.txBytes, reconnects = cost.reconnects,
            ).also { outbox.add(it) }
        }
        lastSampleAt = now
        events.emit("heartbeat_queued", mapOf("seq" to heartbeat.seq, "outbox" to outbox.size, "intervalS" to usingS))
        if (mode == Mode.CONNECTED) pump() else if (mode == Mode.FALLBACK) flushHttpHeartbeats()
        return heartbeat.seq
    }

    /** Sends outbox entries above [sentUpTo] in order, paced to [SessionConfig.resendFramesPerSecond]. */
    private fun pump() {
        if (mode != Mode.CONNECTED || socket == null) return
        val now = clock()
        if (now < pausedUntil) return
        val spacing = 1000L / config.resendFramesPerSecond
        val next = outbox.entriesAbove(sentUpTo, 1).firstOrNull() ?: return
        if (now - lastSendAt < spacing) {
            if (!pumpScheduled) {
                pumpScheduled = true
                loop.schedule({ pumpScheduled = false; pump() }, spacing - (now - lastSendAt), TimeUnit.MILLISECONDS)
            }
            return
        }
        if (sendFrame(next)) {
            sentUpTo = next.seq
            stats.heartbeatsSent.incrementAndGet()
            lastSendAt = now
            events.emit("heartbeat_sent", mapOf("seq" to next.seq, "via" to "ws"))
        }
        if (outbox.entriesAbove(sentUpTo, 1).isNotEmpty()) pump()
    }

    private fun sendFrame(frame: DeviceFrame): Boolean {
        val current = socket ?: return false
        val text = ProtocolCodec.encode(frame)
        val ok = current.send(text)
        if (ok) stats.bytesSent.addAndGet(text.toByteArray(Charsets.UTF_8).size.toLong())
        return ok
    }

    // -----------------------------------------------------------------------------------------
    // Command updates (15.5)

    private fun flushUpdates() {
        when (mode) {
            Mode.CONNECTED -> {
                if (clock() < pausedUntil || socket == null) return
                val pending = updates.pendingAfter(updatesSentUpTo)
                if (pending.isEmpty()) return
                // 15.5 / 9.4: paced like everything else; a batch and its fence ping make at most 10 frames.
                val batch = pending.take(config.resendFramesPerSecond - 1)
                for (entry in batch) {
                    if (!sendFrame(entry.frame)) return
                    updatesSentUpTo = entry.n
                }
                val nonce = "fence-${++fenceCounter}"
                fences[nonce] = updatesSentUpTo
                sendFrame(Ping(nonce))
                if (pending.size > batch.size && !updatesFlushScheduled) {
                    updatesFlushScheduled = true
                    loop.schedule({ updatesFlushScheduled = false; flushUpdates() }, 1000, TimeUnit.MILLISECONDS)
                }
            }
            Mode.FALLBACK -> flushHttpUpdates()
            else -> Unit
        }
    }

    private fun flushHttpUpdates() {
        if (httpUpdatesInFlight) return
        val batch = updates.pending().take(100)
        if (batch.isEmpty()) return
        httpUpdatesInFlight = true
        val ticket = credentials.ticket
        io.execute {
            val outcome = try {
                api.postCommandUpdates(ticket, batch.map { it.frame })
                null
            } catch (error: ApiError) {
                error
            }
            loop.execute {
                httpUpdatesInFlight = false
                if (outcome == null) {
                    updates.confirm(batch.map { it.n })
                    flushUpdates()
                } else {
                    handleHttpError(outcome) { flushUpdates() }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // HTTP fallback (12.2)

    private fun flushHttpHeartbeats() {
        if (mode != Mode.FALLBACK || httpHeartbeatInFlight || clock() < pausedUntil) return
        val batch = outbox.entriesAbove(outbox.durableSeq, 100)
        if (batch.isEmpty()) return
        httpHeartbeatInFlight = true
        val ticket = credentials.ticket
        io.execute {
            val outcome: Any = try {
                api.postHeartbeats(ticket, batch)
            } catch (error: ApiError) {
                error
            }
            loop.execute {
                httpHeartbeatInFlight = false
                when (outcome) {
                    is com.nexmdm.agent.core.protocol.HeartbeatBatchResponse -> {
                        stats.heartbeatsSent.addAndGet(outcome.acked.size.toLong())
                        events.emit("heartbeat_sent", mapOf("seqs" to outcome.acked, "via" to "http", "durableSeq" to outcome.durableSeq))
                        trim(outcome.durableSeq)
                        if (outcome.ticket != null && outcome.ticketExpiresAt != null) {
                            storeCredentials(credentials.copy(ticket = outcome.ticket, ticketExpiresAt = outcome.ticketExpiresAt))
                        }
                        applyAdvice(outcome.heartbeatIntervalS, outcome.heartbeatPolicy)
                        // A short `acked` means a refusal (9.3): the next request starts with the first missing entry.
                        if (outcome.acked.size < batch.size) pause(credentials.heartbeatIntervalS * 1000L)
                        else if (outbox.entriesAbove(batch.last().seq, 1).isNotEmpty()) flushHttpHeartbeats()
                    }
                    is ApiError -> handleHttpError(outcome) { flushHttpHeartbeats() }
                }
            }
        }
    }

    private fun startPolling() {
        if (polling) return
        polling = true
        io.execute {
            try {
                while (polling && mode == Mode.FALLBACK) pollOnce(config.pollWaitS)
            } catch (stopped: InterruptedException) {
                // shutdown
            }
        }
    }

    /** One long poll (12.2); runs on [io]. */
    private fun pollOnce(waitS: Int) {
        val ticket = credentials.ticket
        try {
            handleMessages(api.pollMessages(ticket, waitS))
        } catch (error: ApiError) {
            val latch = CountDownLatch(1)
            loop.execute { handleHttpError(error) {}; latch.countDown() }
            latch.await()
            Thread.sleep(config.backoff.delayMs(minOf(failures, 6), error.retryAfterMs))
        }
    }

    private fun handleMessages(messages: com.nexmdm.agent.core.protocol.PendingMessages) {
        loop.execute {
            trim(messages.durableSeq)
            for (message in messages.messages) dispatcher.handle(message)
        }
    }

    private fun handleHttpError(error: ApiError, retry: () -> Unit) {
        events.emit("http_error", mapOf("status" to error.status, "code" to error.code))
        when {
            error.isRetired -> retire()
            error.isTicketProblem -> renewTicketThen(retry)
            else -> {
                val delay = config.backoff.delayMs(minOf(failures, 6), error.retryAfterMs)
                loop.schedule({ retry() }, delay, TimeUnit.MILLISECONDS)
            }
        }
    }

    // -----------------------------------------------------------------------------------------

    private fun engineNow(): Long = clock() + clockOffsetMs

    private fun <T> callOnLoop(block: () -> T): T = loop.submit<T>(block).get()

    private fun runOnLoop(block: () -> Unit) {
        loop.submit(block).get()
    }

    companion object {
        /** The FCM token registered last (17.1: register again only when it changed). */
        const val FCM_TOKEN_DOCUMENT = "fcm-token.txt"
    }

    private inner class AgentCommandsImpl : AgentCommands {
        override val agentVersion: String get() = config.agentVersion

        override fun measureRttMs(): Long? {
            val nonce = "rtt-${clock()}"
            val latch = CountDownLatch(1)
            val sentAt = callOnLoop {
                if (mode != Mode.CONNECTED) return@callOnLoop null
                pongWaiters[nonce] = latch
                if (sendFrame(Ping(nonce))) clock() else null
            } ?: return null
            if (!latch.await(10, TimeUnit.SECONDS)) return null
            return callOnLoop { pongTimes.remove(nonce) }?.let { it - sentAt }
        }

        override fun requestHeartbeat(): Long = heartbeatNow()

        /** 15.7, 9.6: the policy held is scaled to the new interval until the engine sends its own for it. */
        override fun setHeartbeatInterval(intervalS: Int) = runOnLoop {
            val before = this@AgentSession.intervalS
            storeCredentials(credentials.copy(intervalOverrideS = intervalS, heartbeatPolicy = credentials.heartbeatPolicy?.scaledTo(intervalS)))
            if (this@AgentSession.intervalS != before) intervalChanged("set_heartbeat_interval")
        }
    }
}
