#!/usr/bin/env node
// A fleet of simulated devices for the console's frame-rate test, in its own process (one process
// can hold at most ~19,000 sockets, and the engine under test holds the other ends).
// Usage: node simulate.mjs <devices.json> <wsUrl> <seconds>
// devices.json: [{ "ticket": "..." }, ...]. Each device opens its socket, then heartbeats once a
// second (spread over the second) until the time is up; prints one JSON line with the counts.
import { readFileSync } from "node:fs"
import WebSocket from "ws"

const [file, wsUrl, secondsText] = process.argv.slice(2)
const devices = JSON.parse(readFileSync(file, "utf8"))
const seconds = Number(secondsText ?? 20)
let opened = 0
let sent = 0
let acked = 0
let failed = 0
const sockets = []

const open = (device) =>
  new Promise((resolve) => {
    const socket = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${device.ticket}` } })
    let seq = 0
    let timer
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data))
      if (frame.type === "welcome") {
        opened++
        resolve()
        const beat = () => {
          seq++
          sent++
          socket.send(
            JSON.stringify({
              type: "heartbeat",
              seq,
              ts: Date.now(),
              batteryPct: 20 + ((seq * 7) % 80),
              charging: seq % 5 === 0,
              memFreeMb: 500 + ((seq * 37) % 1500),
              memTotalMb: 4000,
              storageFreeMb: 20000,
              network: "wifi",
              signalDbm: -50 - (seq % 30),
              foregroundApp: `com.example.app${seq % 7}`,
              agentVersion: "1.0.0",
              uptimeS: seq
            })
          )
        }
        setTimeout(() => {
          beat()
          timer = setInterval(beat, 1000)
        }, Math.random() * 1000)
      } else if (frame.type === "ack") acked++
    })
    socket.on("error", () => {
      failed++
      resolve()
    })
    socket.on("close", () => clearInterval(timer))
    sockets.push(socket)
  })

// Open in waves so the engine's per-connection set-up is not one burst.
for (let i = 0; i < devices.length; i += 250) await Promise.all(devices.slice(i, i + 250).map(open))
process.stdout.write(JSON.stringify({ event: "ready", opened, failed }) + "\n")
setTimeout(() => {
  for (const socket of sockets) socket.close(1000)
  process.stdout.write(JSON.stringify({ event: "done", opened, sent, acked, failed }) + "\n")
  setTimeout(() => process.exit(0), 200)
}, seconds * 1000)
