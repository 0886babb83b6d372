/**
 * Small helpers for uWS HTTP handlers: reading a bounded body, answering once (uWS forbids writing
 * to an aborted response and requires cork() when answering outside the handler's own tick).
 */
import type { ErrorCode } from "@nexmdm/protocol"
import type { HttpResponse } from "./Uws.js"

export interface Exchange {
  readonly res: HttpResponse
  aborted: boolean
  answered: boolean
}

export const exchange = (res: HttpResponse): Exchange => {
  const ex: Exchange = { res, aborted: false, answered: false }
  res.onAborted(() => {
    ex.aborted = true
  })
  return ex
}

const statusText: Record<number, string> = {
  200: "200 OK",
  201: "201 Created",
  204: "204 No Content",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  405: "405 Method Not Allowed",
  410: "410 Gone",
  413: "413 Payload Too Large",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  503: "503 Service Unavailable"
}

/** Answers with a body that is already JSON text (e.g. signed frames kept as sent). */
export const respondRaw = (ex: Exchange, status: number, json: string, headers: Record<string, string> = {}): void => {
  if (ex.aborted || ex.answered) return
  ex.answered = true
  ex.res.cork(() => {
    ex.res.writeStatus(statusText[status] ?? `${status} Unknown`)
    ex.res.writeHeader("content-type", "application/json")
    ex.res.writeHeader("cache-control", "no-store")
    for (const [name, value] of Object.entries(headers)) ex.res.writeHeader(name, value)
    ex.res.end(json)
  })
}

export const respond = (ex: Exchange, status: number, body: unknown, headers: Record<string, string> = {}): void =>
  respondRaw(ex, status, JSON.stringify(body), headers)

export const respondError = (
  ex: Exchange,
  status: number,
  code: ErrorCode,
  message: string,
  retryAfterMs?: number
): void =>
  respond(
    ex,
    status,
    { error: retryAfterMs === undefined ? { code, message } : { code, message, retryAfterMs } },
    retryAfterMs === undefined ? {} : { "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
  )

/** Collects the request body (copying each chunk: uWS reuses its buffers) up to `limit` bytes. */
export const readBody = (ex: Exchange, limit: number, onBody: (text: string) => void): void => {
  const chunks: Array<Buffer> = []
  let size = 0
  ex.res.onData((chunk, isLast) => {
    if (ex.answered) return
    size += chunk.byteLength
    if (size > limit) {
      respondError(ex, 413, "PAYLOAD_TOO_LARGE", `request body over ${limit} bytes`)
      return
    }
    chunks.push(Buffer.from(chunk.slice(0)))
    if (isLast) onBody(Buffer.concat(chunks).toString("utf8"))
  })
}
