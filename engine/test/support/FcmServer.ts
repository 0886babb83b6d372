/**
 * A local FCM HTTP v1 server for tests, so the real firebase-admin SDK can be driven end to end.
 *
 * It speaks HTTPS with a throwaway CA and a leaf certificate for `fcm.googleapis.com` (made with
 * openssl in a temp dir), and implements `POST /v1/projects/{project}/messages:send`: it checks
 * `authorization: Bearer <token>`, parses `{ message: {...} }` and answers
 * `{ "name": "projects/<p>/messages/<id>" }`. Every request (method, path, headers, body) is
 * recorded. It also answers the OAuth token exchange a service-account credential makes
 * (`POST /token` on oauth2.googleapis.com, a JWT signed with the account's key, checked against
 * the public key given to `trustServiceAccount`); the access tokens it issues are then accepted. Failures are programmed per device token with FCM's own error bodies: UNREGISTERED
 * (404), INVALID_ARGUMENT (400), QUOTA_EXCEEDED (429), UNAVAILABLE (503), or a connection closed
 * after the request arrived.
 *
 * The SDK's FCM host is hard-coded: `agent()` returns an https.Agent that connects every request to
 * this server, keeping the requested host as TLS servername so the certificate is checked as usual.
 */
import { execFileSync } from "node:child_process"
import { createPublicKey, type KeyObject, randomUUID, verify } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http"
import https from "node:https"
import net, { type AddressInfo, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import tls from "node:tls"

/** True when `openssl` can be run (the certificates need it). */
export const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

export type FcmFailure =
  | { readonly kind: "unregistered" }
  | { readonly kind: "invalidArgument" }
  | { readonly kind: "quotaExceeded"; readonly retryAfterS?: number }
  | { readonly kind: "unavailable"; readonly retryAfterS?: number }
  /** The server closes the connection once the request arrived: the client sees ECONNRESET. */
  | { readonly kind: "reset" }

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  /** Parsed JSON, or the raw text when it was not JSON. */
  readonly body: unknown
  /** `message.token` of a send, if any. */
  readonly token: string | undefined
  /** What the server did: "sent", a failure kind, "unauthenticated", "bad-request" or "not-found". */
  readonly answer: string
  /** The message name answered to a successful send ("projects/<p>/messages/<id>"). */
  readonly name: string | undefined
  readonly at: number
}

interface Programmed {
  readonly failure: FcmFailure
  /** Requests left to fail; then the token works again. */
  remaining: number
}

/** FCM's error body: google.rpc.Status with an FcmError detail. */
const fcmError = (code: number, status: string, message: string, errorCode?: string) => ({
  error: {
    code,
    message,
    status,
    ...(errorCode === undefined
      ? {}
      : { details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] })
  }
})

/** Test CA + leaf for the Google hosts the SDK talks to, in `dir`. */
const makeCertificates = (dir: string) => {
  const file = (name: string) => join(dir, name)
  const run = (args: ReadonlyArray<string>) => execFileSync("openssl", args, { stdio: "ignore" })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  run(["req", "-x509", ...ec, "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "1",
    "-subj", "/CN=NexMDM test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
  run(["req", ...ec, "-keyout", file("leaf.key"), "-out", file("leaf.csr"), "-subj", "/CN=fcm.googleapis.com"])
  writeFileSync(
    file("leaf.ext"),
    "subjectAltName=DNS:fcm.googleapis.com,DNS:oauth2.googleapis.com\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
  )
  run(["x509", "-req", "-in", file("leaf.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial",
    "-out", file("leaf.pem"), "-days", "1", "-extfile", file("leaf.ext")])
  return { ca: readFileSync(file("ca.pem")), key: readFileSync(file("leaf.key")), cert: readFileSync(file("leaf.pem")) }
}

const sendPath = /^\/v1\/projects\/([^/]+)\/messages:send$/

export class FcmServer {
  /** Every request received, in arrival order. */
  readonly requests: Array<RecordedRequest> = []
  private readonly programmed = new Map<string, Programmed>()
  private readonly serviceAccounts = new Map<string, KeyObject>()
  private readonly issuedTokens = new Set<string>()
  private readonly sockets = new Set<Socket>()

  private constructor(
    private readonly server: https.Server,
    private readonly dir: string,
    /** The test CA (PEM) that signed the server's certificate. */
    readonly ca: Buffer,
    readonly port: number,
    /** The bearer token a send must carry. */
    readonly accessToken: string
  ) {}

  /** Starts on 127.0.0.1 (port 0). Requires openssl (see `hasOpenssl`). */
  static async start(options: { readonly accessToken?: string } = {}): Promise<FcmServer> {
    const dir = mkdtempSync(join(tmpdir(), "nexmdm-fcm-"))
    const { ca, key, cert } = makeCertificates(dir)
    let self: FcmServer | undefined
    const server = https.createServer({ key, cert }, (request, response) => self!.handle(request, response))
    server.on("secureConnection", (socket) => {
      self!.sockets.add(socket)
      socket.on("close", () => self!.sockets.delete(socket))
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    self = new FcmServer(server, dir, ca, (server.address() as AddressInfo).port, options.accessToken ?? "test")
    return self
  }

  /**
   * An agent that sends every request to this server, whatever host it names, verifying the
   * server's certificate against the test CA for the requested host name. `port` redirects to
   * another local port instead (e.g. one nobody listens on).
   */
  agent(port = this.port): https.Agent {
    const { ca } = this
    return new (class extends https.Agent {
      override createConnection(options: tls.ConnectionOptions & { host?: string }, callback: () => void) {
        return tls.connect({ ...options, host: "127.0.0.1", port, servername: options.servername || options.host, ca, ALPNProtocols: ["http/1.1"] }, callback)
      }
    })()
  }

  /** Makes sends to `token` fail with `failure`, `times` times (default: until `reset()`). */
  fail(token: string, failure: FcmFailure, times = Number.POSITIVE_INFINITY): void {
    this.programmed.set(token, { failure, remaining: times })
  }

  /** Lets the token endpoint accept JWTs from `clientEmail` signed by the private key of `publicKey` (PEM, public or private). */
  trustServiceAccount(clientEmail: string, key: string): void {
    this.serviceAccounts.set(clientEmail, createPublicKey(key))
  }

  /** The send requests that named `token`, in order. */
  sendsTo(token: string): ReadonlyArray<RecordedRequest> {
    return this.requests.filter((request) => request.token === token)
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    rmSync(this.dir, { recursive: true, force: true })
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // recorded as text
      }
      const message = (body as { message?: { token?: unknown } } | null)?.message
      const token = typeof message?.token === "string" ? message.token : undefined
      const record = (answer: string, name?: string) =>
        this.requests.push({ method: request.method ?? "", path: request.url ?? "", headers: request.headers, body, token, answer, name, at: Date.now() })
      const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        response.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers })
        response.end(JSON.stringify(payload))
      }

      if (request.method === "POST" && request.url === "/token" && request.headers.host === "oauth2.googleapis.com") {
        return this.exchangeToken(text, record, reply)
      }
      const match = sendPath.exec(request.url ?? "")
      if (request.method !== "POST" || match === null) {
        record("not-found")
        return reply(404, fcmError(404, "NOT_FOUND", `no such method: ${request.method} ${request.url}`))
      }
      const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1]
      if (bearer !== this.accessToken && !(bearer !== undefined && this.issuedTokens.has(bearer))) {
        record("unauthenticated")
        return reply(401, fcmError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token."))
      }
      if (typeof message !== "object" || message === null) {
        record("bad-request")
        return reply(400, fcmError(400, "INVALID_ARGUMENT", "Invalid JSON payload received: no message.", "INVALID_ARGUMENT"))
      }

      const programmed = token === undefined ? undefined : this.programmed.get(token)
      if (programmed !== undefined && programmed.remaining > 0) {
        programmed.remaining--
        const { failure } = programmed
        record(failure.kind)
        const retryAfter = (seconds: number | undefined): Record<string, string> =>
          seconds === undefined ? {} : { "retry-after": String(seconds) }
        switch (failure.kind) {
          case "unregistered":
            return reply(404, fcmError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"))
          case "invalidArgument":
            return reply(400, fcmError(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT"))
          case "quotaExceeded":
            return reply(429, fcmError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages to this device.", "QUOTA_EXCEEDED"), retryAfter(failure.retryAfterS))
          case "unavailable":
            return reply(503, fcmError(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"), retryAfter(failure.retryAfterS))
          case "reset":
            return void request.socket.destroy()
        }
      }

      const validateOnly = (body as { validate_only?: unknown }).validate_only === true
      const name = `projects/${match[1]!}/messages/${validateOnly ? "fake_message_id" : randomUUID()}`
      record("sent", name)
      reply(200, { name })
    })
  }

  /** OAuth 2.0 JWT-bearer grant (RFC 7523), as a service-account credential uses it. */
  private exchangeToken(
    text: string,
    record: (answer: string) => void,
    reply: (status: number, payload: unknown) => void
  ): void {
    const form = new URLSearchParams(text)
    const refuse = (description: string) => {
      record("token-refused")
      reply(400, { error: "invalid_grant", error_description: description })
    }
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return refuse("unsupported grant_type")
    const [header, payload, signature] = (form.get("assertion") ?? "").split(".")
    if (header === undefined || payload === undefined || signature === undefined) return refuse("malformed assertion")
    let claims: { iss?: unknown; aud?: unknown; scope?: unknown; exp?: unknown }
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"))
    } catch {
      return refuse("malformed assertion")
    }
    const key = typeof claims.iss === "string" ? this.serviceAccounts.get(claims.iss) : undefined
    if (key === undefined) return refuse("unknown service account")
    const signed = verify("RSA-SHA256", Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, "base64url"))
    if (!signed) return refuse("Invalid JWT Signature.")
    if (claims.aud !== "https://oauth2.googleapis.com/token") return refuse("wrong audience")
    if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) return refuse("expired assertion")
    if (typeof claims.scope !== "string" || !claims.scope.split(" ").includes("https://www.googleapis.com/auth/firebase.messaging")) {
      return refuse("scope lacks firebase.messaging")
    }
    const accessToken = `oauth-${randomUUID()}`
    this.issuedTokens.add(accessToken)
    record("token-issued")
    reply(200, { access_token: accessToken, expires_in: 3599, token_type: "Bearer" })
  }
}

/** A local port nothing listens on (bound, then released). */
export const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
