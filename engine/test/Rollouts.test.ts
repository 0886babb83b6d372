/**
 * Staged agent updates through a real engine, PostgreSQL and simulated agents on WebSockets: each
 * agent heartbeats, answers install_apk by downloading the APK from the URL it was given, checking
 * its SHA-256 and reporting (signed) success, or failure, or success and then vanishing. Rollouts
 * advance stage by stage when installs succeed and halt by themselves on failures or on devices that
 * go offline after updating.
 */
import { SqlClient } from "@effect/sql"
import { resultSigningString, sign } from "@nexmdm/protocol/signing"
import { Duration, Effect, Stream } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Releases } from "../src/releases/Releases.js"
import { decide, Rollouts, type StartRollout } from "../src/releases/Rollouts.js"
import { apkToolsAvailable, fixtureApk, signingKey } from "./support/ApkFixtures.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, DeviceSocket, enrol, type Enrolled, eventually, type Frame, heartbeat, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

const toolsRequired = process.env["NEXMDM_TEST_REQUIRE_TOOLCHAINS"] === "1"
const tools = await apkToolsAvailable()
if (!tools && toolsRequired) throw new Error("apksigner/keytool missing but NEXMDM_TEST_REQUIRE_TOOLCHAINS=1")

describe("rollout decisions", () => {
  const rollout = { stages: [5, 25, 100], currentStage: 0, maxFailureRate: 0.2, maxOfflineRate: 0.3, soakSeconds: 60 }
  const stats = { members: 10, succeeded: 10, failed: 0, pending: 0, offlineAfterUpdate: 0, lastFinishedAt: new Date(0) }
  it("waits while installs are pending or the stage is soaking, then advances, and completes after the last stage", () => {
    expect(decide(rollout, { ...stats, succeeded: 9, pending: 1 }, 100_000)._tag).toBe("Wait")
    expect(decide(rollout, stats, 30_000)._tag).toBe("Wait")
    expect(decide(rollout, stats, 60_000)._tag).toBe("Advance")
    expect(decide({ ...rollout, currentStage: 2 }, stats, 60_000)._tag).toBe("Complete")
  })
  it("halts above the failure bound or the offline-after-update bound, not at it", () => {
    expect(decide(rollout, { ...stats, succeeded: 8, failed: 2 }, 100_000)._tag).toBe("Advance")
    expect(decide(rollout, { ...stats, succeeded: 7, failed: 3 }, 100_000)._tag).toBe("Halt")
    expect(decide(rollout, { ...stats, offlineAfterUpdate: 3 }, 100_000)._tag).toBe("Advance")
    expect(decide(rollout, { ...stats, offlineAfterUpdate: 4 }, 100_000)._tag).toBe("Halt")
  })
})

type Behaviour = "install" | "fail" | "install-then-vanish"

/** A simulated agent: heartbeats every 300 ms and answers install_apk as its behaviour says. */
class Agent {
  installs: Array<Frame> = []
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  version = "1.0.0"

  private constructor(
    readonly enrolled: Enrolled,
    readonly socket: DeviceSocket,
    public behaviour: Behaviour
  ) {}

  static async start(engine: TestEngine, hardwareId: string, behaviour: Behaviour) {
    const token = await createToken(engine)
    const enrolled = await enrol(engine, token.token, hardwareId)
    const socket = await DeviceSocket.open(engine.wsUrl, enrolled.ticket)
    await socket.waitFor((frame) => frame.type === "welcome")
    const agent = new Agent(enrolled, socket, behaviour)
    agent.beat()
    agent.timer = setInterval(() => agent.beat(), 300)
    socket.socket.on("message", (raw) => {
      const frame = JSON.parse(String(raw)) as Frame
      if (frame.type === "command" && frame.commandType === "install_apk") void agent.install(frame)
    })
    return agent
  }

  private beat() {
    if (this.socket.closed === undefined) this.socket.send(heartbeat(++this.seq, { agentVersion: this.version }))
  }

  private async install(frame: Frame) {
    this.installs.push(frame)
    this.socket.send({ type: "command_ack", id: frame.id, stage: "received" })
    this.socket.send({ type: "command_ack", id: frame.id, stage: "accepted" })
    if (this.behaviour === "fail") return this.report(frame.id, "failed", { error: "INSTALL_FAILED_UPDATE_INCOMPATIBLE" })
    // What the agent does before installing: fetch the APK and check it is the one it was told about.
    const body = new Uint8Array(await (await fetch(frame.params.url as string)).arrayBuffer())
    const sha256 = createHash("sha256").update(body).digest("hex")
    if (sha256 !== frame.params.sha256) return this.report(frame.id, "failed", { error: "SHA256_MISMATCH" })
    this.version = `v${frame.params.versionCode}`
    this.report(frame.id, "succeeded", { result: { installedVersionCode: frame.params.versionCode } })
    if (this.behaviour === "install-then-vanish") this.stop()
  }

  private report(id: string, status: "succeeded" | "failed", extra: { result?: Record<string, unknown>; error?: string }) {
    const completedAt = Date.now()
    const sig = sign(Buffer.from(this.enrolled.hmacKey, "base64"), resultSigningString({ id, deviceId: this.enrolled.deviceId, status, completedAt, ...extra }))
    this.socket.send({ type: "command_result", id, status, completedAt, ...extra, sig })
  }

  stop() {
    clearInterval(this.timer)
    this.socket.close()
  }
}

let database: TestDatabase
let release: () => Promise<void>
let engine: TestEngine
const agents: Array<Agent> = []

/** Publishes a fixture APK as the channel's release (what an upload does, without HTTP). */
const publish = async (versionCode: number, channel: "stable" | "beta") => {
  const bytes = await readFile(await fixtureApk({ versionCode, versionName: `v${versionCode}` }))
  return engine.run(
    Effect.gen(function* () {
      const releases = yield* Releases
      const staged = yield* releases.stage(Stream.make(new Uint8Array(bytes)))
      return yield* releases.publish(staged, { channel, uploadedBy: "test", notes: null })
    })
  )
}

const startRollout = (input: Partial<StartRollout> & Pick<StartRollout, "channel">) =>
  engine.run(
    Effect.flatMap(Rollouts, (rollouts) =>
      rollouts.start({ stages: [10, 50, 100], maxFailureRate: 0.2, maxOfflineRate: 0.3, soakSeconds: 0, startedBy: "test", ...input })
    )
  )

const rolloutNow = (id: string) => engine.run(Effect.flatMap(Rollouts, (rollouts) => rollouts.get(id)))

describe.skipIf(!tools)("agent rollouts", () => {
  beforeAll(async () => {
    ;({ database, release } = await openDatabase())
    const rsa = await signingKey("rsa")
    engine = await startEngine(database, {
      dataDir: mkdtempSync(join(tmpdir(), "nexmdm-rollouts-")),
      apkSignerSha256: [rsa.certSha256Hex],
      rolloutCheckInterval: Duration.millis(100),
      grace: Duration.millis(200),
      offlineAfter: Duration.seconds(3)
    })
  }, 120_000)

  afterAll(async () => {
    for (const agent of agents) agent.stop()
    await engine?.dispose()
    await release?.()
  })

  it("rolls a stable release out in stages of 10%, 50% and 100% as installs succeed", async () => {
    for (let index = 0; index < 20; index++) agents.push(await Agent.start(engine, `hw-rollout-${index}`, "install"))
    const info = await publish(100, "stable")
    const started = await startRollout({ channel: "stable" })
    expect(started.state).toBe("running")
    expect(started.perStage.map((stage) => stage.devices)).toEqual([2, 0, 0])

    const done = await eventually(async () => {
      const now = await rolloutNow(started.id)
      return now.state === "completed" ? now : undefined
    }, 30_000)
    expect(done.perStage.map((stage) => [stage.devices, stage.succeeded, stage.failed])).toEqual([
      [2, 2, 0],
      [8, 8, 0],
      [10, 10, 0]
    ])
    // Every device got exactly one install command, for this release, with a URL that served it.
    for (const agent of agents) {
      expect(agent.installs).toHaveLength(1)
      expect(agent.installs[0]!.params).toMatchObject({ sha256: info.sha256Hex, packageName: "com.nexmdm.agent", versionCode: 100 })
    }
    // The device-plane downloads were recorded as the devices' own.
    const downloads = await engine.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from release_downloads where release_id = ${info.id} and client_kind = 'device' and completed`)
    )
    expect(downloads[0]!.n).toBe(20)
    // Adoption follows the heartbeats' agent version.
    const adoption = await eventually(async () => {
      const rows = await engine.run(Effect.flatMap(Releases, (releases) => releases.adoption))
      const updated = rows.find((row) => row.channel === "stable" && row.agentVersion === "v100")
      return updated?.devices === 20 ? rows : undefined
    }, 5000)
    expect(adoption.filter((row) => row.channel === "stable").map((row) => row.agentVersion)).toEqual(["v100"])
  }, 60_000)

  it("halts by itself when the first stage's installs fail, and issues nothing further", async () => {
    for (const agent of agents) agent.behaviour = "fail"
    await publish(101, "stable")
    const started = await startRollout({ channel: "stable" })
    const halted = await eventually(async () => {
      const now = await rolloutNow(started.id)
      return now.state === "halted" ? now : undefined
    }, 15_000)
    expect(halted.haltReason).toMatch(/failure rate 2\/2/)
    expect(halted.perStage.map((stage) => stage.devices)).toEqual([2, 0, 0])
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect((await rolloutNow(started.id)).perStage.map((stage) => stage.devices)).toEqual([2, 0, 0])
    expect(agents.reduce((total, agent) => total + agent.installs.length, 0)).toBe(22)

    // Pause / resume are explicit; a halted rollout resumed by a person halts again while failures stand.
    const rejected = await engine.run(Effect.flip(Effect.flatMap(Rollouts, (rollouts) => rollouts.pause(started.id))))
    expect(rejected).toMatchObject({ _tag: "RolloutRejected", code: "BAD_STATE" })
    await engine.run(Effect.flatMap(Rollouts, (rollouts) => rollouts.resume(started.id)))
    expect((await rolloutNow(started.id)).state).toBe("halted")
  }, 60_000)

  it("halts when devices go offline after installing, on the beta channel only", async () => {
    const beta: Array<Agent> = []
    for (let index = 0; index < 4; index++) beta.push(await Agent.start(engine, `hw-beta-${index}`, "install-then-vanish"))
    agents.push(...beta)
    await engine.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`update devices set tags = array['channel:beta'] where hardware_id like 'hw-beta-%'`)
    )
    await publish(200, "beta")
    const started = await startRollout({ channel: "beta", stages: [50, 100], soakSeconds: 30 })
    expect(started.perStage[0]!.devices).toBe(2)
    const halted = await eventually(async () => {
      const now = await rolloutNow(started.id)
      return now.state === "halted" ? now : undefined
    }, 20_000)
    expect(halted.haltReason).toMatch(/offline after update 2\/2/)
    expect(halted.offlineAfterUpdate).toBe(2)
    expect(beta.filter((agent) => agent.installs.length === 1)).toHaveLength(2)
    // Stable devices were never sent the beta release.
    expect(agents.slice(0, 20).every((agent) => agent.installs.every((frame) => frame.params.versionCode !== 200))).toBe(true)
  }, 60_000)
})
