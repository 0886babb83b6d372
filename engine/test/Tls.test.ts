import { Option } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import https from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import WebSocket from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, heartbeat, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()
if (!hasOpenssl) console.warn("Tls.test.ts skipped: no openssl on PATH to make a self-signed certificate")

let dir: string
let ca: Buffer
let database: TestDatabase
let releaseDatabase: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  if (!hasOpenssl) return
  dir = mkdtempSync(join(tmpdir(), "nexmdm-tls-"))
  const cert = join(dir, "cert.pem")
  const key = join(dir, "key.pem")
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
    { stdio: "ignore" }
  )
  ca = readFileSync(cert)
  ;({ database, release: releaseDatabase } = await openDatabase())
  engine = await startEngine(database, { tlsCertFile: Option.some(cert), tlsKeyFile: Option.some(key) })
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

/** POST over https trusting only the test certificate. */
const httpsPost = (url: string, body: unknown) =>
  new Promise<{ status: number; body: any }>((resolve, reject) => {
    const request = https.request(url, { method: "POST", ca, headers: { "content-type": "application/json" } }, (response) => {
      let text = ""
      response.on("data", (chunk: Buffer) => (text += chunk.toString()))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }))
    })
    request.on("error", reject)
    request.end(JSON.stringify(body))
  })

describe.skipIf(!hasOpenssl)("device plane over TLS", () => {
  it("enrols over https and heartbeats over wss with a certificate the client verifies", async () => {
    const plane = await engine.run(DevicePlane)
    expect(plane.tls).toBe(true)
    expect(plane.url).toMatch(/^https:\/\//)

    const token = await createToken(engine)
    const enrolled = await httpsPost(`${plane.url}/v1/enroll`, { token: token.token, hardwareId: "hw-tls" })
    expect(enrolled.status).toBe(201)

    const socket = new WebSocket(`${plane.url.replace(/^https/, "wss")}/v1/device/ws`, {
      ca,
      headers: { authorization: `Bearer ${enrolled.body.ticket}` }
    })
    const frames: Array<any> = []
    const ack = new Promise<any>((resolve, reject) => {
      socket.on("message", (raw) => {
        const frame = JSON.parse(String(raw))
        frames.push(frame)
        if (frame.type === "welcome") socket.send(JSON.stringify(heartbeat(1)))
        if (frame.type === "ack") resolve(frame)
      })
      socket.on("error", reject)
      socket.on("close", (code) => reject(new Error(`closed ${code} after ${JSON.stringify(frames)}`)))
    })
    try {
      expect(await ack).toMatchObject({ type: "ack", seq: 1 })
      expect(frames[0]).toMatchObject({ type: "welcome", deviceId: enrolled.body.deviceId })
    } finally {
      socket.close()
    }
  })

  it("is refused by a client that does not trust the certificate", async () => {
    const refused = await new Promise<Error>((resolve) => {
      const request = https.request(`${engine.url}/v1/enroll`, { method: "POST" }, () => resolve(new Error("connected")))
      request.on("error", resolve)
      request.end("{}")
    })
    expect(refused.message).toMatch(/self[- ]signed/i)
  })
})
