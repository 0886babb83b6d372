/**
 * What HTTP exchanges one call into a client library made, seen from outside the library.
 *
 * firebase-admin retries inside `send()` and throws an error that keeps neither the number of
 * attempts nor the response headers, so a 429/503 `Retry-After` would be lost. Node publishes every
 * outgoing request on the `http.client.request.start` diagnostics channel (synchronously, in the
 * caller's async context) and its response on `http.client.response.finish`. `track` runs the call
 * inside an AsyncLocalStorage context; requests to the given host started in that context
 * (retries included: the context follows promises and timers; other hosts, such as an OAuth token
 * exchange on the way, are left out) are counted and their responses' status and Retry-After
 * kept. Requests made outside a tracked call are ignored at the cost of one `getStore()`.
 */
import { AsyncLocalStorage } from "node:async_hooks"
import diagnosticsChannel from "node:diagnostics_channel"
import type { ClientRequest, IncomingMessage } from "node:http"

export interface Exchanges {
  /** The host whose requests count. */
  readonly host: string
  /** Requests started, retries included. */
  attempts: number
  /** Status of the last response received, if any. */
  lastStatus: number | undefined
  /** The last response's Retry-After, in milliseconds (absent, malformed or past: undefined). */
  retryAfterMs: number | undefined
}

const current = new AsyncLocalStorage<Exchanges>()
const byRequest = new WeakMap<ClientRequest, Exchanges>()

/** Retry-After as delay-seconds or an HTTP-date, in milliseconds from `now`. */
export const parseRetryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const date = Date.parse(text)
  return Number.isNaN(date) || date < now ? undefined : date - now
}

const onRequestStart = (message: unknown) => {
  const exchanges = current.getStore()
  if (exchanges === undefined) return
  const { request } = message as { request: ClientRequest }
  if (request.host !== exchanges.host) return
  exchanges.attempts++
  byRequest.set(request, exchanges)
}

const onResponseFinish = (message: unknown) => {
  const { request, response } = message as { request: ClientRequest; response: IncomingMessage }
  const exchanges = byRequest.get(request)
  if (exchanges === undefined) return
  const retryAfter = response.headers["retry-after"]
  exchanges.lastStatus = response.statusCode
  exchanges.retryAfterMs = parseRetryAfter(retryAfter, Date.now())
}

let subscribers = 0

/** Starts observing (reference-counted); returns the function that stops. */
export const observe = (): (() => void) => {
  if (subscribers++ === 0) {
    diagnosticsChannel.subscribe("http.client.request.start", onRequestStart)
    diagnosticsChannel.subscribe("http.client.response.finish", onResponseFinish)
  }
  let stopped = false
  return () => {
    if (stopped) return
    stopped = true
    if (--subscribers === 0) {
      diagnosticsChannel.unsubscribe("http.client.request.start", onRequestStart)
      diagnosticsChannel.unsubscribe("http.client.response.finish", onResponseFinish)
    }
  }
}

/** Runs `call` and returns its promise with its exchanges with `host` (filled in as they happen). */
export const track = <A>(host: string, call: () => Promise<A>): { readonly exchanges: Exchanges; readonly result: Promise<A> } => {
  const exchanges: Exchanges = { host, attempts: 0, lastStatus: undefined, retryAfterMs: undefined }
  return { exchanges, result: current.run(exchanges, call) }
}
