/**
 * Cross-language end to end: the Kotlin agent core (android-agent/core), run on the JVM by its
 * DeviceRunner with OkHttp and file storage, against a real engine on real PostgreSQL. The
 * device enrols with a token, connects, heartbeats, survives an engine restart without losing a
 * heartbeat (outbox + durable watermark), executes a signed command, rejects one tampered with
 * in flight, falls back to HTTP when WebSocket upgrades are blocked, and follows the engine's
 * interval advice by power state while reporting its own cost in every heartbeat (battery budget).
 *
 * Between the device and the engine sits a TCP proxy the test controls: it follows the engine to
 * its new port after the restart, refuses WebSocket upgrades on demand and can rewrite bytes of
 * engine frames (the tampering). Needs java and kotlinc (android-agent/scripts/build-core.mjs);
 * skipped with a message without them unless NEXMDM_TEST_REQUIRE_TOOLCHAINS=1.
 */
import { SqlClient } from "@effect/sql"
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Commands, type CreateCommand } from "../src/commands/Commands.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, eventually, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

interface BuildCoreModule {
  readonly missingToolchain: () => Array<string>
  readonly buildCore: (options: { tests: boolean; log?: (line: string) => void }) =>
    | { ok: true; runtimeClasspath: Array<string> }
    | { ok: false; missing: Array<string> }
}

const buildScript = fileURLToPath(new URL("../../android-agent/scripts/build-core.mjs", import.meta.url))
const { buildCore, missingToolchain } = (await import(pathToFileURL(buildScript).href)) as BuildCoreModule
const missing = missingToolchain()
if (missing.length > 0) {
  const message = `agent cross-language test: toolchain missing: ${missing.join(", ")}`
  if (process.env["NEXMDM_TEST_REQUIRE_TOOLCHAINS"] === "1") throw new Error(`${message} (NEXMDM_TEST_REQUIRE_TOOLCHAINS=1)`)
  console.warn(`${message}; skipping`)
}

/** TCP proxy in front of the device plane: retargetable, can refuse WebSocket upgrades and rewrite engine bytes. */
class DevicePlaneProxy {
  target: number
  blockWebSockets = false
  tamper: { readonly from: Buffer; readonly to: Buffer } | undefined
  upgradesRefused = 0
  tampered = 0
  private readonly sockets = new Set<net.Socket>()

  private constructor(private readonly server: net.Server, readonly port: number, target: number) {
    this.target = target
  }

  static start(target: number): Promise<DevicePlaneProxy> {
    return new Promise((resolve) => {
      let proxy: DevicePlaneProxy
      const server = net.createServer((client) => proxy.accept(client))
      server.listen(0, "127.0.0.1", () => {
        proxy = new DevicePlaneProxy(server, (server.address() as net.AddressInfo).port, target)
        resolve(proxy)
      })
    })
  }

  private accept(client: net.Socket) {
    const upstream = net.connect(this.target, "127.0.0.1")
    for (const socket of [client, upstream]) {
      this.sockets.add(socket)
      socket.on("close", () => this.sockets.delete(socket))
      socket.on("error", () => {})
    }
    client.on("data", (chunk) => {
      if (this.blockWebSockets && /upgrade:\s*websocket/i.test(chunk.toString("latin1"))) {
        this.upgradesRefused++
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        upstream.destroy()
        return
      }
      upstream.write(chunk)
    })
    upstream.on("data", (chunk: Buffer) => {
      const tamper = this.tamper
      if (tamper !== undefined) {
        const at = chunk.indexOf(tamper.from)
        if (at >= 0) {
          // Same length: the WebSocket frame header stays valid, only the payload changes.
          tamper.to.copy(chunk, at)
          this.tampered++
        }
      }
      client.write(chunk)
    })
    client.on("close", () => upstream.destroy())
    upstream.on("close", () => client.destroy())
  }

  /** Cuts every open connection (sockets and HTTP keep-alive). */
  dropAll() {
    for (const socket of this.sockets) socket.destroy()
  }

  close(): Promise<void> {
    this.dropAll()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

interface RunnerEvent {
  readonly event: string
  readonly [key: string]: any
}

/** The JVM device: spawned DeviceRunner, its JSON-line events, and stdin commands. */
class JvmDevice {
  readonly events: Array<RunnerEvent> = []
  readonly stderr: Array<string> = []
  exited: number | null | undefined
  private waiters: Array<() => void> = []

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as RunnerEvent)
      } catch {
        this.stderr.push(`stdout: ${line}`)
      }
      this.notify()
    })
    createInterface({ input: child.stderr }).on("line", (line) => this.stderr.push(line))
    child.on("exit", (code) => {
      this.exited = code
      this.notify()
    })
  }

  private notify() {
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  send(command: string) {
    this.child.stdin.write(`${command}\n`)
  }

  /** The first event after index [from] matching [predicate]. */
  async waitFor(predicate: (event: RunnerEvent) => boolean, timeoutMs = 20_000, from = 0): Promise<RunnerEvent> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.events.slice(from).find(predicate)
      if (found !== undefined) return found
      if (this.exited !== undefined) throw new Error(`runner exited (${this.exited}); stderr: ${this.stderr.slice(-20).join("\n")}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out; last events: ${this.events.slice(-15).map((e) => JSON.stringify(e)).join("\n")}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500))
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  async status(): Promise<RunnerEvent> {
    const from = this.events.length
    this.send("status")
    return this.waitFor((e) => e.event === "status", 10_000, from)
  }

  kill() {
    if (this.exited === undefined) this.child.kill("SIGKILL")
  }
}

describe.skipIf(missing.length > 0)("Kotlin agent core against the engine", () => {
  let database: TestDatabase
  let release: () => Promise<void>
  let engine: TestEngine
  let proxy: DevicePlaneProxy
  let device: JvmDevice
  let deviceId: string
  let stateDir: string

  const sql = <A extends object>(run: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
    engine.run(Effect.flatMap(SqlClient.SqlClient, run))

  const createCommand = (input: Omit<CreateCommand, "createdBy" | "deviceId">) =>
    engine.run(Effect.flatMap(Commands, (commands) => commands.create({ createdBy: "test", deviceId, ...input })))

  const commandRow = async (id: string) =>
    (await sql<Record<string, any>>((s) => s`select status, error, result, sent_via from commands where id = ${id}`))[0]!

  /** Every seq the device used, each exactly once in the heartbeats table. */
  const heartbeatCounts = async () => {
    const rows = await sql<{ seq: string; n: string }>((s) => s`select seq::text, count(*)::text as n from heartbeats where device_id = ${deviceId} group by seq order by seq`)
    return new Map(rows.map((row) => [Number(row.seq), Number(row.n)]))
  }

  /** Stops sampling, waits until the outbox is empty (all durable), and returns the last seq. */
  const drain = async () => {
    device.send("pause-sampling")
    const settled = await eventually(async () => {
      const status = await device.status()
      return status["outbox"] === 0 && status["durableSeq"] === status["lastSeq"] ? status : undefined
    }, 30_000, 300)
    return settled["lastSeq"] as number
  }

  const expectEverySeqOnce = async (lastSeq: number) => {
    const counts = await heartbeatCounts()
    const missingSeqs = [] as Array<number>
    const duplicated = [] as Array<number>
    for (let seq = 1; seq <= lastSeq; seq++) {
      const n = counts.get(seq) ?? 0
      if (n === 0) missingSeqs.push(seq)
      if (n > 1) duplicated.push(seq)
    }
    expect({ missingSeqs, duplicated, extra: [...counts.keys()].filter((seq) => seq > lastSeq) }).toEqual({ missingSeqs: [], duplicated: [], extra: [] })
    return counts.size
  }

  beforeAll(async () => {
    const build = buildCore({ tests: false, log: (line) => console.log(line) })
    if (!build.ok) throw new Error(`agent core did not build: ${build.missing.join(", ")}`)
    ;({ database, release } = await openDatabase())
    engine = await startEngine(database)
    proxy = await DevicePlaneProxy.start(Number(new URL(engine.url).port))
    const token = await createToken(engine)
    stateDir = mkdtempSync(join(tmpdir(), "nexmdm-jvm-device-"))
    const child = spawn(
      "java",
      [
        "-cp", build.runtimeClasspath.join(":"),
        "com.nexmdm.agent.core.tools.DeviceRunner",
        "--server", `http://127.0.0.1:${proxy.port}`,
        "--state", stateDir,
        "--token", token.token,
        "--hardware-id", "jvm-cross-language-1",
        "--fallback-retry-ms", "4000",
        "--poll-wait-s", "5",
        "--backoff-cap-ms", "2000"
      ],
      { stdio: ["pipe", "pipe", "pipe"] }
    )
    device = new JvmDevice(child)
  }, 300_000)

  afterAll(async () => {
    if (device !== undefined) {
      device.send("exit")
      await eventually(() => (device.exited !== undefined ? true : undefined), 5000).catch(() => device.kill())
    }
    await proxy?.close()
    await engine?.dispose()
    await release?.()
    if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true })
  })

  it("enrols with a token, connects and heartbeats until the engine reports them durable", async () => {
    const enrolled = await device.waitFor((e) => e.event === "enrolled")
    deviceId = enrolled["deviceId"]
    expect(deviceId).toMatch(/^dev_[0-9a-z]{20,32}$/)
    await device.waitFor((e) => e.event === "welcome")
    await device.waitFor((e) => e.event === "durable" && e["durableSeq"] >= 3)
    const counts = await heartbeatCounts()
    expect([1, 2, 3].map((seq) => counts.get(seq))).toEqual([1, 1, 1])
  }, 60_000)

  it("survives an engine restart without losing a heartbeat", async () => {
    const before = await device.status()
    await engine.dispose()
    const downAt = device.events.length
    // The device keeps sampling into its outbox while the engine is away.
    await device.waitFor((e) => e.event === "ws_closed", 10_000, downAt)
    const queuedDuringOutage = await device.waitFor((e) => e.event === "heartbeat_queued", 10_000, downAt)
    await new Promise((resolve) => setTimeout(resolve, 3000))
    engine = await startEngine(database)
    proxy.target = Number(new URL(engine.url).port)
    const welcome = await device.waitFor((e) => e.event === "welcome", 30_000, downAt)
    const welcomeIndex = device.events.indexOf(welcome)
    const queuedWhileDown = device.events.slice(downAt, welcomeIndex).filter((e) => e.event === "heartbeat_queued").length
    const lastSeq = await drain()
    const persisted = await expectEverySeqOnce(lastSeq)
    console.log(
      `agent cross-language restart: heartbeats sent ${lastSeq}, persisted ${persisted} (each seq exactly once); ` +
        `last seq before the restart ${before["lastSeq"]}, ${queuedWhileDown} queued in the outbox while the engine was down ` +
        `(first ${queuedDuringOutage["seq"]}), engine watermark at reconnect ${welcome["durableSeq"]}`
    )
    expect(queuedWhileDown).toBeGreaterThanOrEqual(2)
    expect(persisted).toBe(lastSeq)
    expect(Number(queuedDuringOutage["seq"])).toBeGreaterThan(Number(welcome["durableSeq"]) - 1)
    device.send("resume-sampling")
  }, 90_000)

  it("executes a signed command and rejects one whose parameters were changed in flight", async () => {
    const { command } = await createCommand({ type: "lock", params: { message: "hello from the test" } })
    const executed = await device.waitFor((e) => e.event === "executed" && e["id"] === command.id)
    expect(executed["params"]).toEqual({ message: "hello from the test" })
    const done = await eventually(async () => {
      const row = await commandRow(command.id)
      return row.status === "succeeded" ? row : undefined
    }, 15_000)
    expect(done.result).toEqual({ locked: true })
    expect(done.sent_via).toBe("socket")

    proxy.tamper = { from: Buffer.from("tamper-me-0001"), to: Buffer.from("TAMPER-ME-0001") }
    const { command: forged } = await createCommand({ type: "lock", params: { message: "tamper-me-0001" } })
    const rejected = await device.waitFor((e) => e.event === "command_rejected" && e["id"] === forged.id)
    proxy.tamper = undefined
    expect(rejected["error"]).toBe("SIGNATURE_INVALID")
    expect(proxy.tampered).toBeGreaterThan(0)
    // The device reported the failure with a valid result signature; it never executed the command.
    const failed = await eventually(async () => {
      const row = await commandRow(forged.id)
      return row.status === "failed" ? row : undefined
    }, 15_000)
    expect(failed.error).toBe("SIGNATURE_INVALID")
    expect(device.events.some((e) => e.event === "executed" && e["id"] === forged.id)).toBe(false)
  }, 60_000)

  it("falls back to HTTP when WebSocket upgrades are blocked, and returns to the socket", async () => {
    const from = device.events.length
    proxy.blockWebSockets = true
    proxy.dropAll()
    await device.waitFor((e) => e.event === "fallback_enter", 30_000, from)
    await device.waitFor((e) => e.event === "heartbeat_sent" && e["via"] === "http", 15_000, from)
    const { command } = await createCommand({ type: "launch_app", params: { packageName: "com.example.kiosk" } })
    await device.waitFor((e) => e.event === "executed" && e["id"] === command.id, 20_000, from)
    const done = await eventually(async () => {
      const row = await commandRow(command.id)
      return row.status === "succeeded" ? row : undefined
    }, 20_000)
    expect(done.sent_via).toBe("poll")
    // On the fallback the device keeps trying the socket (every 4 s here, 5 min by default).
    await eventually(() => (proxy.upgradesRefused >= 1 ? true : undefined), 20_000, 100)

    proxy.blockWebSockets = false
    const back = device.events.length
    await device.waitFor((e) => e.event === "fallback_leave", 20_000, back)
    await device.waitFor((e) => e.event === "welcome", 20_000, back)
    const lastSeq = await drain()
    const persisted = await expectEverySeqOnce(lastSeq)
    const viaHttp = device.events.filter((e) => e.event === "heartbeat_sent" && e["via"] === "http").length
    console.log(`agent cross-language fallback: ${proxy.upgradesRefused} upgrades refused, ${viaHttp} heartbeat batches over HTTP, ${persisted} heartbeats persisted, each seq once`)
  }, 120_000)

  it("follows the engine's interval advice by power state and stores its own cost with each heartbeat", async () => {
    // The engine's policy for its 1 s interval (testConfig): x2 on battery, x4 metered, x10 at <= 15 %, Doze at least 900 s.
    const status = await device.status()
    expect(status["heartbeatPolicy"]).toEqual({ chargingS: 1, batteryS: 2, meteredS: 4, lowBatteryS: 10, lowBatteryPct: 15, dozeS: 900 })
    expect(status["intervalS"]).toBe(1)
    const chargingUpTo = Number(status["lastSeq"])

    // So far on external power (the runner's default): every sample at the engine's interval, each with its cost.
    const costRows = (fromSeq: number) =>
      sql<{ seq: string; interval_s: number | null; wakeups: number | null; tx_bytes: number | null; reconnects: number | null; at_ms: string }>(
        (s) => s`select seq::text, interval_s, wakeups, tx_bytes, reconnects, (extract(epoch from recorded_at) * 1000)::text as at_ms
          from heartbeats where device_id = ${deviceId} and seq > ${fromSeq} order by seq`
      )
    const charging = await costRows(0)
    expect(charging.length).toBe(chargingUpTo)
    expect(new Set(charging.map((row) => row.interval_s))).toEqual(new Set([1]))
    expect(charging.filter((row) => row.wakeups === null || row.tx_bytes === null || row.reconnects === null)).toEqual([])
    expect(charging[0]!.reconnects).toBeGreaterThanOrEqual(1)
    expect(charging.reduce((sum, row) => sum + row.tx_bytes!, 0)).toBeGreaterThan(0)

    // Unplugged at 50 %: the agent re-arms its timer at batteryS and says so in each heartbeat.
    const from = device.events.length
    device.send("power charging=false battery=50")
    const toBattery = await device.waitFor((e) => e.event === "heartbeat_interval" && e["reason"] === "power_state", 10_000, from)
    expect(toBattery["intervalS"]).toBe(2)
    device.send("resume-sampling")
    const onBattery = () => device.events.slice(from).filter((e) => e.event === "heartbeat_queued" && e["intervalS"] === 2)
    await eventually(() => (onBattery().length >= 4 ? true : undefined), 15_000, 100)

    // At or below 15 %: lowBatteryS. A requested heartbeat shows it without waiting 10 s for the timer.
    const low = device.events.length
    device.send("power battery=10")
    const toLow = await device.waitFor((e) => e.event === "heartbeat_interval", 10_000, low)
    expect(toLow["intervalS"]).toBe(10)
    device.send("heartbeat")
    const requested = await device.waitFor((e) => e.event === "heartbeat_requested", 10_000, low)
    const lastSeq = await drain()
    await expectEverySeqOnce(lastSeq)
    device.send("power charging=true battery=77")

    const rows = new Map((await costRows(chargingUpTo)).map((row) => [Number(row.seq), row]))
    const batterySeqs = onBattery().map((e) => Number(e["seq"]))
    const battery = batterySeqs.map((seq) => rows.get(seq)!)
    expect(battery.map((row) => row.interval_s)).toEqual(batterySeqs.map(() => 2))
    expect(battery.filter((row) => !(row.tx_bytes! > 0) || row.wakeups === null || row.reconnects === null)).toEqual([])
    expect(rows.get(Number(requested["seq"]))?.interval_s).toBe(10)
    // Spacing as the engine received them: about batteryS (the timer runs at a fixed rate, so the mean is tight).
    const at = battery.map((row) => Number(row.at_ms))
    const gaps = at.slice(1).map((t, i) => t - at[i]!)
    const meanGap = (at[at.length - 1]! - at[0]!) / gaps.length
    console.log(
      `agent cross-language battery budget: ${chargingUpTo} samples charging at 1 s (first: wakeups ${charging[0]!.wakeups}, ` +
        `txBytes ${charging[0]!.tx_bytes}, reconnects ${charging[0]!.reconnects}; txBytes in all ${charging.reduce((sum, row) => sum + row.tx_bytes!, 0)}); ` +
        `on battery seqs ${batterySeqs.join(",")} at intervalS 2, gaps ${gaps.map((gap) => Math.round(gap)).join("/")} ms (mean ${Math.round(meanGap)}), ` +
        `txBytes ${battery.map((row) => row.tx_bytes).join("/")}, wakeups ${battery.map((row) => row.wakeups).join("/")}; ` +
        `at 10 %: seq ${requested["seq"]} stored with interval_s ${rows.get(Number(requested["seq"]))?.interval_s}`
    )
    expect(meanGap).toBeGreaterThan(1700)
    expect(meanGap).toBeLessThan(2500)
    for (const gap of gaps) expect(gap).toBeGreaterThan(1000)
  }, 60_000)
})
