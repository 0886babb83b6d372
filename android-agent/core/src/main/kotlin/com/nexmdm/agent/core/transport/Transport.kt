package com.nexmdm.agent.core.transport

/**
 * The agent's only view of the network: small enough for a fake in tests, implemented with
 * OkHttp ([OkHttpTransport]) on the JVM and on Android alike.
 */
interface HttpTransport {
    /** Blocking: call it from an I/O thread. Throws [java.io.IOException] when no answer arrived. */
    fun request(method: String, url: String, headers: Map<String, String>, body: String?, timeoutMs: Long): HttpResponse
}

data class HttpResponse(val status: Int, val body: String, val retryAfterHeaderS: Long? = null)

interface WebSocketTransport {
    /** Opens a socket; every outcome arrives at [listener] on a transport thread. */
    fun connect(url: String, headers: Map<String, String>, listener: WebSocketListener): WebSocketConnection
}

interface WebSocketConnection {
    /** False when the socket is closing or its send buffer is full (the frame was not queued). */
    fun send(text: String): Boolean
    fun close(code: Int, reason: String)
    /** Drops the socket without a close handshake. */
    fun cancel()
}

interface WebSocketListener {
    fun onOpen()
    fun onMessage(text: String)
    /** The engine closed the socket (or the close handshake finished). */
    fun onClosed(code: Int, reason: String)
    /** Connecting or the connection failed; [httpStatus]/[httpBody] are set when the upgrade was refused with an answer. */
    fun onFailure(error: Throwable, httpStatus: Int?, httpBody: String?)
}
