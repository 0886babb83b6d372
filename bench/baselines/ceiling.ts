/**
 * The ceiling: a bare uWebSockets.js server that parses every heartbeat frame and acks it at once.
 * No actors, no write-behind, no database: nothing to persist, so durableSeq is the seq itself.
 * What NexMDM does beyond this is the price of its features; this is the physical limit of the
 * machine for our protocol with this transport.
 *
 *   node --import tsx bench/baselines/ceiling.ts --port 0
 */
import uWS from "uWebSockets.js"
import {
  ackFrame,
  announce,
  argument,
  bearer,
  enrollResponse,
  errorFrame,
  HEARTBEAT_INTERVAL_S,
  heartbeatSeq,
  httpError,
  welcomeFrame
} from "./BaselineProtocol.js"

interface SocketData {
  readonly deviceId: string
}

/** Highest seq seen per device (for welcome.durableSeq and the HTTP fallback). */
const highest = new Map<string, number>()

/** Reads a whole request body (uWS hands it over in chunks that are only valid inside the callback). */
const readBody = (res: uWS.HttpResponse, done: (body: Buffer) => void) => {
  const chunks: Array<Buffer> = []
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(chunk.slice(0)))
    if (isLast) done(Buffer.concat(chunks))
  })
}

const json = (res: uWS.HttpResponse, status: string, body: string) => {
  res.cork(() => {
    res.writeStatus(status).writeHeader("content-type", "application/json").end(body)
  })
}

const app = uWS.App()
app.post("/v1/enroll", (res) => {
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  readBody(res, (body) => {
    if (aborted) return
    let hardwareId = ""
    try {
      hardwareId = String((JSON.parse(body.toString("utf8")) as { hardwareId?: unknown }).hardwareId ?? "")
    } catch {
      json(res, "400 Bad Request", httpError("BAD_REQUEST", "not JSON"))
      return
    }
    json(res, "201 Created", enrollResponse(hardwareId, "ceil").body)
  })
})
app.post("/v1/device/heartbeats", (res, req) => {
  const deviceId = bearer(req.getHeader("authorization"))
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  readBody(res, (body) => {
    if (aborted) return
    if (deviceId === null) {
      json(res, "401 Unauthorized", httpError("UNAUTHENTICATED", "no ticket"))
      return
    }
    const acked: Array<number> = []
    try {
      const batch = (JSON.parse(body.toString("utf8")) as { heartbeats?: ReadonlyArray<unknown> }).heartbeats ?? []
      for (const item of batch) {
        const seq = heartbeatSeq({ type: "heartbeat", ...(item as object) })
        if (seq !== null) acked.push(seq)
      }
    } catch {
      json(res, "400 Bad Request", httpError("BAD_REQUEST", "not JSON"))
      return
    }
    const top = Math.max(highest.get(deviceId) ?? 0, ...acked)
    highest.set(deviceId, top)
    json(res, "200 OK", JSON.stringify({ acked, durableSeq: top, heartbeatIntervalS: HEARTBEAT_INTERVAL_S }))
  })
})
app.get("/v1/device/messages", (res, req) => {
  const deviceId = bearer(req.getHeader("authorization"))
  if (deviceId === null) {
    json(res, "401 Unauthorized", httpError("UNAUTHENTICATED", "no ticket"))
    return
  }
  json(res, "200 OK", JSON.stringify({ messages: [], durableSeq: highest.get(deviceId) ?? 0 }))
})
app.ws<SocketData>("/v1/device/ws", {
  maxPayloadLength: 16 * 1024,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    const deviceId = bearer(req.getHeader("authorization"))
    if (deviceId === null) {
      res.writeStatus("401 Unauthorized").end()
      return
    }
    res.upgrade<SocketData>(
      { deviceId },
      req.getHeader("sec-websocket-key"),
      req.getHeader("sec-websocket-protocol"),
      req.getHeader("sec-websocket-extensions"),
      context
    )
  },
  open: (ws) => {
    const { deviceId } = ws.getUserData()
    ws.send(welcomeFrame(deviceId, highest.get(deviceId) ?? 0))
  },
  message: (ws, message) => {
    let frame: unknown
    try {
      frame = JSON.parse(Buffer.from(message).toString("utf8"))
    } catch {
      ws.send(errorFrame("BAD_FRAME", "not JSON"))
      return
    }
    const seq = heartbeatSeq(frame)
    if (seq === null) return
    const { deviceId } = ws.getUserData()
    const top = Math.max(highest.get(deviceId) ?? 0, seq)
    highest.set(deviceId, top)
    ws.send(ackFrame(seq, top))
  }
})
app.any("/*", (res) => {
  res.writeStatus("404 Not Found").end()
})

app.listen("127.0.0.1", Number(argument("port") ?? "0"), (socket) => {
  if (socket === false) {
    process.stderr.write("ceiling: could not listen\n")
    process.exit(1)
  }
  announce(uWS.us_socket_local_port(socket))
})
process.on("SIGTERM", () => process.exit(0))
