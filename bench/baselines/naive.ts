/**
 * The design most teams would write first: a plain Node `ws` server (and node:http for the HTTP
 * fallback) that INSERTs every heartbeat through a pg pool and acks once the INSERT returned.
 * Durable at ack time, simple, and bound by one round trip to PostgreSQL per heartbeat.
 *
 *   node --import tsx bench/baselines/naive.ts --port 0 --database-url postgres://...
 */
import http from "node:http"
import pg from "pg"
import { WebSocketServer } from "ws"
import {
  ackFrame,
  backpressureFrame,
  announce,
  argument,
  bearer,
  type DeviceState,
  enrollResponse,
  errorFrame,
  HEARTBEAT_INTERVAL_S,
  heartbeatSeq,
  httpError,
  welcomeFrame
} from "./BaselineProtocol.js"

const databaseUrl = argument("database-url")
if (databaseUrl === undefined) {
  process.stderr.write("naive: --database-url is required\n")
  process.exit(2)
}
const pool = new pg.Pool({ connectionString: databaseUrl, max: Number(argument("pool") ?? "10") })
// The same columns the zero-loss check reads from the engine's table: (device_id, seq) plus the sample.
await pool.query(`create table if not exists heartbeats (
  device_id text not null,
  seq bigint not null,
  recorded_at timestamptz not null default now(),
  sample jsonb not null
)`)

const devices = new Map<string, DeviceState>()
const stateOf = (deviceId: string): DeviceState => {
  let state = devices.get(deviceId)
  if (state === undefined) devices.set(deviceId, (state = { accepted: 0, durable: 0 }))
  return state
}

/** One INSERT per heartbeat; the answer waits for it. */
const insert = async (deviceId: string, seq: number, sample: unknown): Promise<number> => {
  await pool.query("insert into heartbeats (device_id, seq, sample) values ($1, $2, $3)", [deviceId, seq, JSON.stringify(sample)])
  const state = stateOf(deviceId)
  state.durable = Math.max(state.durable, seq)
  return state.durable
}

const readBody = (req: http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const send = (res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}) => {
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) })
  res.end(body)
}

const server = http.createServer((req, res) => {
  void (async () => {
    const path = (req.url ?? "/").split("?")[0]
    try {
      if (req.method === "POST" && path === "/v1/enroll") {
        const body = JSON.parse(await readBody(req)) as { hardwareId?: unknown }
        send(res, 201, enrollResponse(String(body.hardwareId ?? ""), "naive").body)
        return
      }
      const deviceId = bearer(req.headers.authorization)
      if (deviceId === null && path?.startsWith("/v1/device/")) {
        send(res, 401, httpError("UNAUTHENTICATED", "no ticket"))
        return
      }
      if (req.method === "POST" && path === "/v1/device/heartbeats" && deviceId !== null) {
        const body = JSON.parse(await readBody(req)) as { heartbeats?: ReadonlyArray<Record<string, unknown>> }
        const acked: Array<number> = []
        let durableSeq = stateOf(deviceId).durable
        for (const item of body.heartbeats ?? []) {
          const seq = heartbeatSeq({ ...item, type: "heartbeat" })
          if (seq === null) continue
          durableSeq = await insert(deviceId, seq, item)
          acked.push(seq)
        }
        send(res, 200, JSON.stringify({ acked, durableSeq, heartbeatIntervalS: HEARTBEAT_INTERVAL_S }))
        return
      }
      if (req.method === "GET" && path === "/v1/device/messages" && deviceId !== null) {
        send(res, 200, JSON.stringify({ messages: [], durableSeq: stateOf(deviceId).durable }))
        return
      }
      send(res, 404, httpError("NOT_FOUND", "no such route"))
    } catch (error) {
      // Not stored (e.g. PostgreSQL unreachable): the device keeps its heartbeats and retries.
      send(res, 503, httpError("BACKPRESSURE", String(error)), { "retry-after": "1" })
    }
  })()
})

const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024, perMessageDeflate: false })
server.on("upgrade", (req, socket, head) => {
  const deviceId = bearer(req.headers.authorization)
  if (deviceId === null || !req.url?.startsWith("/v1/device/ws")) {
    socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n")
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const state = stateOf(deviceId)
    ws.send(welcomeFrame(deviceId, state.durable))
    ws.on("message", (data: Buffer) => {
      let frame: unknown
      try {
        frame = JSON.parse(data.toString("utf8"))
      } catch {
        ws.send(errorFrame("BAD_FRAME", "not JSON"))
        return
      }
      const seq = heartbeatSeq(frame)
      if (seq === null) return
      state.accepted = Math.max(state.accepted, seq)
      const { type: _type, ...sample } = frame as Record<string, unknown>
      insert(deviceId, seq, sample).then(
        (durableSeq) => {
          if (ws.readyState === ws.OPEN) ws.send(ackFrame(seq, durableSeq))
        },
        (error: unknown) => {
          // Not stored: say so, the device keeps the heartbeat and resends it.
          if (ws.readyState === ws.OPEN) ws.send(backpressureFrame(seq, String(error)))
        }
      )
    })
  })
})

server.listen(Number(argument("port") ?? "0"), "127.0.0.1", () => {
  const address = server.address()
  announce(typeof address === "object" && address !== null ? address.port : 0)
})
process.on("SIGTERM", () => {
  wss.close()
  server.close()
  void pool.end().finally(() => process.exit(0))
})
