package com.nexmdm.agent.core.transport

import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okhttp3.WebSocket
import java.util.concurrent.TimeUnit

/**
 * [HttpTransport] and [WebSocketTransport] over OkHttp 3.13 (the version Debian ships; the
 * Android app uses the same API). One client: sockets and HTTP share its connection pool.
 */
class OkHttpTransport(private val client: OkHttpClient = defaultClient()) : HttpTransport, WebSocketTransport {
    override fun request(method: String, url: String, headers: Map<String, String>, body: String?, timeoutMs: Long): HttpResponse {
        val requestBody = body?.let { RequestBody.create(JSON, it) }
        val builder = Request.Builder().url(url).method(method, requestBody)
        headers.forEach { (name, value) -> builder.header(name, value) }
        val call = client.newBuilder().readTimeout(timeoutMs, TimeUnit.MILLISECONDS).callTimeout(timeoutMs + 5_000, TimeUnit.MILLISECONDS).build()
            .newCall(builder.build())
        call.execute().use { response ->
            return HttpResponse(response.code(), response.body()?.string() ?: "", response.header("Retry-After")?.toLongOrNull())
        }
    }

    override fun connect(url: String, headers: Map<String, String>, listener: WebSocketListener): WebSocketConnection {
        val builder = Request.Builder().url(url)
        headers.forEach { (name, value) -> builder.header(name, value) }
        val socket = client.newWebSocket(builder.build(), object : okhttp3.WebSocketListener() {
            override fun onOpen(webSocket: WebSocket, response: Response) = listener.onOpen()
            override fun onMessage(webSocket: WebSocket, text: String) = listener.onMessage(text)
            override fun onClosing(webSocket: WebSocket, code: Int, reason: String) {
                // Answer with 1000: echoing the engine's code could hit one OkHttp refuses to send (1005, 1015...).
                webSocket.close(1000, null)
            }
            override fun onClosed(webSocket: WebSocket, code: Int, reason: String) = listener.onClosed(code, reason)
            override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) {
                val body = try { response?.body()?.string() } catch (error: Exception) { null }
                listener.onFailure(t, response?.code(), body)
            }
        })
        return object : WebSocketConnection {
            override fun send(text: String) = socket.send(text)
            override fun close(code: Int, reason: String) { socket.close(code, reason) }
            override fun cancel() = socket.cancel()
        }
    }

    companion object {
        private val JSON: MediaType = MediaType.get("application/json; charset=utf-8")

        fun defaultClient(): OkHttpClient = OkHttpClient.Builder()
            .connectTimeout(10, TimeUnit.SECONDS)
            .readTimeout(45, TimeUnit.SECONDS)
            .writeTimeout(15, TimeUnit.SECONDS)
            // The engine pings quiet sockets; OkHttp answers them. Our own liveness check is the ping frame.
            .build()
    }
}
