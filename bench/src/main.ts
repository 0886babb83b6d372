/**
 * NexMDM load benchmark.
 *
 *   npm run bench -- --devices 2000 --duration 60
 *
 * Without --target it creates a fresh database, starts its own engine (pinned to core 0 when
 * possible), enrolls N simulated devices spread over W forked workers (pinned to core 1), sends one
 * heartbeat per device per second for the duration, then measures ack latency, throughput,
 * simulator CPU, engine memory, write-behind lag and checks that every acked heartbeat is in
 * PostgreSQL exactly once. The last line of stdout is one JSON object with the figures.
 */
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { availableParallelism } from "node:os"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import {
  CHEAP_ARGON2_ENV,
  createEnrollmentToken,
  fetchMetrics,
  metricValue,
  readCommandCpuMs,
  readMachineBusyMs,
  readProcessCpuMs,
  createFreshDatabase,
  DEFAULT_DATABASE_URL,
  findTaskset,
  metricsRssMb,
  repoRoot,
  startEngine,
  type FreshDatabase,
  type RunningEngine
} from "./EngineProcess.js"
import { LatencyHistogram, round } from "./Stats.js"
import type { Counters, DeviceReport, ParentMessage, WorkerConfig, WorkerMessage } from "./WorkerMessages.js"
import { checkZeroLoss, RowCounter, type ZeroLossResult } from "./ZeroLoss.js"
import type { AttackerConfig, AttackerResult } from "./Attacker.js"
import { startBaseline, type ServerProcess } from "./BaselineProcess.js"
import type { SubscribersConfig, SubscribersResult } from "./LiveSubscribers.js"
import { Progress } from "./Progress.js"
import { forkSidecar, type Sidecar } from "./Sidecar.js"
import { type SeriesPoint, Timeline, type TimelineEvent } from "./Timeline.js"
import { findPreviousRun, ratio, type Ratio, runName, writeReport } from "./Report.js"
import { createThrowawayPostgres, type ThrowawayPostgres } from "./ThrowawayPostgres.js"
import {
  commandsEngineEnv,
  login,
  computeCommandFigures,
  createApiKey,
  randomOwner,
  readCommandRows,
  runFanOut,
  runRoundTrips,
  type FanOutPhase,
  type RoundTripPhase
} from "./Commands.js"

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: npm run bench -- <scenario> [options]

scenarios (each runs alone; README.md describes what each measures):
  steady           N devices at 1 heartbeat/s (--http-share of them on the HTTP fallback). Alias: heartbeats
  max              closed loop: each device sends its next heartbeat when the previous one is acked
  reconnect-storm  restart the engine mid-run (SIGTERM, same ports): time until every device is back online
  crash            kill -9 the engine mid-run and restart it: devices resend past the durable watermark;
                   every heartbeat generated must be in PostgreSQL exactly once
  db-outage        stop PostgreSQL (a throwaway cluster of the bench's own) for --outage s mid-run, start it again
  fan-out          one bulk command to every device: delivery p50/p95/p99, heartbeat ack p95 meanwhile
  console          --subscribers live WatchFleet streams over /api/live while the fleet heartbeats
  abuse            malformed, oversized, unauthenticated frames and bad logins flood alongside the fleet
                   in the second half of the run; the fleet's p95 must stay within 2x of the first half
  commands         round trips of single commands at --cmd-rate, then a fan-out (WebSocket devices only)

  --devices N            simulated devices (default 100)
  --duration S           seconds of load, after enrollment and connect (default 30)
  --target T             engine (default: start one), ceiling or naive (start that baseline from
                         bench/baselines/), or the URL of a running engine's device plane
  --baseline / --ceiling after the run, run the same scenario against that baseline and report ratios
  --workers W            simulator processes (default min(4, ceil(N / 2500)))
  --http-share F         share of devices on the HTTP fallback (default 0.05 for steady, crash,
                         reconnect-storm, db-outage, abuse; 0 for the others)
  --disrupt-at S         reconnect-storm, crash, db-outage: seconds into the run (default duration / 3)
  --outage S             db-outage: how long PostgreSQL stays down (default 20)
  --subscribers M        console: live subscribers (default 10)
  --flush-ms MS          console: WatchFleet flushMs asked for (default 100)
  --abuse-rate R         abuse: attack attempts per second (default 200)
  --abuse-kinds K,K      abuse: only these attacks (socket-no-auth, socket-bad-ticket, socket-bad-hello,
                         socket-oversized, device-malformed, enroll-bad-token, login-bad-password, http-garbage)
  --database-url URL     with a URL --target: its database, for the zero-loss check and the token;
                         otherwise: the PostgreSQL server to create a fresh database on
                         (default $DATABASE_URL or ${DEFAULT_DATABASE_URL})
  --admin-url URL        with a URL --target: admin plane, for process_resident_memory_bytes
  --token T              enrollment token (default: created with the engine CLI)
  --keep-db              keep the fresh database
  --engine-env K=V       extra environment for the spawned engine (repeatable), e.g.
                         --engine-env NEXMDM_BUFFER_MAX_ROWS=100 to provoke BACKPRESSURE
  --pin / --no-pin       pin engine to core 0 and simulator to core 1 (default: on with taskset and 2+ cores)
  --hardware-prefix P    hardware ids are P-<i> (default bench)
  --warmup S             first seconds of the run left out of the latency figures (default 5)
  --drain-timeout S      wait for outstanding acks after the run (default 10)
  --durable-timeout S    wait for every acked heartbeat to be durable (default 30)
  --results-dir DIR      where the JSON, Markdown and SVG reports go (default bench/results)
  --json-out FILE        also write the result JSON there
  --no-report            no files at all (the JSON line is still printed)
  --no-build             reuse engine/build/ instead of bundling the engine first
  --no-thresholds        a latency target missed (abuse: p95 over 2x) is a problem, not a failure;
                         lost or duplicated heartbeats always fail the run
  --cmd-rate R           commands scenario: single-device commands per second (default 20)
  --fanout-timeout S     commands, fan-out: wait for the bulk job to finish (default 120)
`

export const SCENARIOS = ["steady", "max", "reconnect-storm", "crash", "db-outage", "fan-out", "console", "abuse", "commands"] as const
export type Scenario = (typeof SCENARIOS)[number]
/** Scenarios the baselines can run: they have no admin plane, no commands, no restart logic worth measuring. */
const BASELINE_SCENARIOS: ReadonlyArray<Scenario> = ["steady", "max"]
/** Scenarios that need an engine of the bench's own (an owner account, or processes to kill). */
const OWN_ENGINE_SCENARIOS: ReadonlyArray<Scenario> = ["commands", "fan-out", "console", "crash", "reconnect-storm", "db-outage"]
/** Scenarios that log in as the owner (admin API or live streams). */
const OWNER_SCENARIOS: ReadonlyArray<Scenario> = ["commands", "fan-out", "console"]

type TargetKind = "engine" | "ceiling" | "naive" | "url"

interface Options {
  readonly scenario: Scenario
  readonly targetKind: TargetKind
  readonly compareBaseline: boolean
  readonly compareCeiling: boolean
  readonly disruptAtMs: number
  readonly outageMs: number
  readonly subscribers: number
  readonly flushMs: number
  readonly abuseRate: number
  readonly abuseKinds: ReadonlyArray<string> | null
  readonly resultsDir: string
  readonly report: boolean
  /** Latency targets (abuse: 2x) fail the run; off for smoke runs on a busy machine. Loss always fails. */
  readonly thresholds: boolean
  /** Bundle the engine before starting it (off: reuse engine/build/, e.g. the smoke run built it once). */
  readonly build: boolean
  readonly argv: ReadonlyArray<string>
  readonly cmdRate: number
  readonly fanoutTimeoutMs: number
  readonly devices: number
  readonly duration: number
  readonly workers: number
  readonly httpShare: number
  readonly target: string | null
  readonly databaseUrl: string
  readonly databaseUrlGiven: boolean
  readonly adminUrl: string | null
  readonly token: string | null
  readonly keepDb: boolean
  readonly engineEnv: Readonly<Record<string, string>>
  readonly pin: boolean | null
  readonly hardwarePrefix: string
  readonly warmupMs: number
  readonly drainTimeoutMs: number
  readonly durableTimeoutMs: number
  readonly jsonOut: string | null
}

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      devices: { type: "string" },
      duration: { type: "string" },
      workers: { type: "string" },
      "http-share": { type: "string" },
      target: { type: "string" },
      "database-url": { type: "string" },
      "admin-url": { type: "string" },
      token: { type: "string" },
      "keep-db": { type: "boolean" },
      "engine-env": { type: "string", multiple: true },
      pin: { type: "boolean" },
      "no-pin": { type: "boolean" },
      "hardware-prefix": { type: "string" },
      warmup: { type: "string" },
      "drain-timeout": { type: "string" },
      "durable-timeout": { type: "string" },
      "json-out": { type: "string" },
      "results-dir": { type: "string" },
      "no-report": { type: "boolean" },
      "no-thresholds": { type: "boolean" },
      "no-build": { type: "boolean" },
      baseline: { type: "boolean" },
      ceiling: { type: "boolean" },
      "disrupt-at": { type: "string" },
      outage: { type: "string" },
      subscribers: { type: "string" },
      "flush-ms": { type: "string" },
      "abuse-rate": { type: "string" },
      "abuse-kinds": { type: "string" },
      "cmd-rate": { type: "string" },
      "fanout-timeout": { type: "string" },
      help: { type: "boolean", short: "h" }
    },
    strict: true
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  const number = (name: string, raw: string | undefined, fallback: number, min: number, max: number): number => {
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number between ${min} and ${max}`)
    return n
  }
  if (positionals.length > 1) throw new Error(`one scenario at most, got ${positionals.join(" ")}`)
  const named = positionals[0] ?? "steady"
  const scenario = (named === "heartbeats" ? "steady" : named) as Scenario
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario "${named}" (${SCENARIOS.join(", ")})`)
  const devices = Math.floor(number("devices", values.devices, 100, 1, 100_000))
  const rawTarget = values.target ?? "engine"
  const targetKind: TargetKind = rawTarget === "engine" || rawTarget === "ceiling" || rawTarget === "naive" ? rawTarget : "url"
  if (targetKind === "url" && !/^https?:\/\//.test(rawTarget)) throw new Error(`--target must be engine, ceiling, naive or an http(s) URL, got "${rawTarget}"`)
  if ((targetKind === "ceiling" || targetKind === "naive") && !BASELINE_SCENARIOS.includes(scenario)) {
    throw new Error(`the ${targetKind} baseline runs ${BASELINE_SCENARIOS.join(" and ")} only`)
  }
  if (targetKind === "url" && OWN_ENGINE_SCENARIOS.includes(scenario)) {
    throw new Error(`the ${scenario} scenario starts its own engine (no --target URL)`)
  }
  const websocketOnly = scenario === "commands" || scenario === "fan-out"
  if (websocketOnly && values["http-share"] !== undefined && Number(values["http-share"]) !== 0) {
    // Commands reach HTTP-fallback devices only by long-polling, which the simulator does not do.
    throw new Error(`the ${scenario} scenario needs --http-share 0 (WebSocket devices only)`)
  }
  if ((values.baseline === true || values.ceiling === true) && targetKind !== "engine") throw new Error("--baseline and --ceiling compare the engine: no --target")
  const duration = number("duration", values.duration, 30, 1, 86_400)
  const defaultHttpShare = ["steady", "crash", "reconnect-storm", "db-outage", "abuse"].includes(scenario) ? 0.05 : 0
  const databaseUrl = values["database-url"] ?? process.env["DATABASE_URL"]
  return {
    scenario,
    targetKind,
    compareBaseline: values.baseline === true,
    compareCeiling: values.ceiling === true,
    disruptAtMs: number("disrupt-at", values["disrupt-at"], duration / 3, 0, 86_400) * 1000,
    outageMs: number("outage", values.outage, 20, 0, 3600) * 1000,
    subscribers: Math.floor(number("subscribers", values.subscribers, 10, 1, 1000)),
    flushMs: Math.floor(number("flush-ms", values["flush-ms"], 100, 50, 10_000)),
    abuseRate: number("abuse-rate", values["abuse-rate"], 200, 1, 100_000),
    abuseKinds: values["abuse-kinds"] === undefined ? null : values["abuse-kinds"].split(",").map((k) => k.trim()).filter((k) => k.length > 0),
    resultsDir: values["results-dir"] ?? `${repoRoot}bench/results`,
    report: values["no-report"] !== true,
    thresholds: values["no-thresholds"] !== true,
    build: values["no-build"] !== true,
    argv: [...argv],
    cmdRate: number("cmd-rate", values["cmd-rate"], 20, 0.1, 10_000),
    fanoutTimeoutMs: number("fanout-timeout", values["fanout-timeout"], 120, 1, 3600) * 1000,
    devices,
    duration,
    workers: Math.floor(number("workers", values.workers, Math.min(4, Math.ceil(devices / 2500)), 1, 64)),
    httpShare: number("http-share", values["http-share"], defaultHttpShare, 0, 1),
    target: targetKind === "url" ? rawTarget : null,
    databaseUrl: databaseUrl ?? DEFAULT_DATABASE_URL,
    databaseUrlGiven: values["database-url"] !== undefined,
    adminUrl: values["admin-url"] ?? null,
    token: values.token ?? null,
    keepDb: values["keep-db"] === true,
    engineEnv: Object.fromEntries(
      (values["engine-env"] ?? []).map((pair) => {
        const at = pair.indexOf("=")
        if (at <= 0) throw new Error(`--engine-env expects KEY=VALUE, got "${pair}"`)
        return [pair.slice(0, at), pair.slice(at + 1)]
      })
    ),
    pin: values["no-pin"] === true ? false : values.pin === true ? true : null,
    hardwarePrefix: values["hardware-prefix"] ?? "bench",
    warmupMs: number("warmup", values.warmup, 5, 0, 3600) * 1000,
    drainTimeoutMs: number("drain-timeout", values["drain-timeout"], 10, 0, 600) * 1000,
    durableTimeoutMs: number("durable-timeout", values["durable-timeout"], 30, 0, 600) * 1000,
    jsonOut: values["json-out"] ?? null
  }
}

// ---------------------------------------------------------------------------------------------
// Output: human lines on stdout, engine and worker logs on stderr, the JSON result last.
// ---------------------------------------------------------------------------------------------

const t0 = performance.now()
const say = (text: string) => process.stdout.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${text}\n`)
const warn = (text: string) => process.stderr.write(`[bench] ${text}\n`)
const fmt = (ms: number) => (Number.isFinite(ms) ? `${round(ms)} ms` : "n/a")
const nullable = (value: number | null | undefined): number | null =>
  value === null || value === undefined || !Number.isFinite(value) ? null : round(value)

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

type MessageOf<T extends WorkerMessage["type"]> = Extract<WorkerMessage, { type: T }>

/** One simulator process and the latest state it reported. */
class Worker {
  readonly received = new Map<string, WorkerMessage>()
  private readonly waiters = new Map<string, Array<{ resolve: (m: WorkerMessage) => void; reject: (e: Error) => void }>>()
  counters: Counters | null = null
  /** The latest tick and when it arrived (performance.now()): devices online, latest welcome. */
  lastTick: MessageOf<"tick"> | null = null
  lastTickAt = 0
  exited: { code: number | null; signal: NodeJS.Signals | null } | null = null

  constructor(readonly index: number, readonly child: ChildProcess, onMessage: (worker: Worker, message: WorkerMessage) => void) {
    child.on("message", (raw) => {
      const message = raw as WorkerMessage
      if (message.type === "tick" || message.type === "drained" || message.type === "final") this.counters = message.counters
      if (message.type === "tick") {
        this.lastTick = message
        this.lastTickAt = performance.now()
      }
      onMessage(this, message)
      this.received.set(message.type, message)
      for (const waiter of this.waiters.get(message.type) ?? []) waiter.resolve(message)
      this.waiters.delete(message.type)
    })
    child.on("exit", (code, signal) => {
      this.exited = { code, signal }
      for (const list of this.waiters.values()) {
        for (const waiter of list) waiter.reject(new Error(`worker ${index} exited (code ${code}, signal ${signal})`))
      }
      this.waiters.clear()
    })
  }

  send(message: ParentMessage) {
    if (this.exited === null && this.child.connected) this.child.send(message)
  }

  /** The next (or already received) message of a type. */
  expect<T extends WorkerMessage["type"]>(type: T, timeoutMs: number): Promise<MessageOf<T>> {
    const seen = this.received.get(type)
    if (seen !== undefined) return Promise.resolve(seen as MessageOf<T>)
    if (this.exited !== null) return Promise.reject(new Error(`worker ${this.index} has exited`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${this.index}: no "${type}" within ${timeoutMs / 1000} s`)), timeoutMs)
      const list = this.waiters.get(type) ?? []
      list.push({
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as MessageOf<T>)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        }
      })
      this.waiters.set(type, list)
    })
  }
}

const simulatorPath = fileURLToPath(new URL("./Simulator.ts", import.meta.url))
const sidecarPath = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url))

/** Enrolled by the abuse scenario's attacker with the run's token (its malformed-frame devices). */
const ATTACKER_DEVICES = 4

/** What a scenario did to the server mid-run, in epoch ms. */
interface Disruption {
  readonly kind: "restart" | "crash" | "outage"
  readonly downAtEpochMs: number
  /** The engine answered /readyz again (restart, crash) or PostgreSQL was started again (outage). */
  readonly readyAtEpochMs: number
  /** Every device was online again (restart, crash). */
  readonly recoveredAtEpochMs: number | null
}

const forkWorker = (index: number, taskset: string | null, core: number | null, onMessage: (w: Worker, m: WorkerMessage) => void): Worker => {
  // With pinning, fork runs `taskset -c <core> node --import tsx Simulator.ts` so that every thread
  // of the worker (including libuv's) is pinned from the start.
  const pinned = taskset !== null && core !== null
  const child = fork(simulatorPath, [], {
    cwd: repoRoot,
    execPath: pinned ? taskset : process.execPath,
    // BENCH_WORKER_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the workers.
    execArgv: [
      ...(pinned ? ["-c", String(core), process.execPath] : []),
      "--import",
      "tsx",
      ...(process.env["BENCH_WORKER_NODE_OPTIONS"]?.split(" ").filter((a) => a !== "") ?? [])
    ],
    // Workers never write to our stdout: its last line is reserved for the JSON result.
    stdio: ["ignore", 2, "inherit", "ipc"]
  })
  return new Worker(index, child, onMessage)
}

const sumCounters = (all: ReadonlyArray<Counters | null>): Counters => {
  const total = { produced: 0, sent: 0, resent: 0, acks: 0, backpressure: 0, disconnects: 0, reconnects: 0, ticketRenewals: 0, violations: 0, errors: {} as Record<string, number> }
  for (const c of all) {
    if (c === null) continue
    total.produced += c.produced
    total.sent += c.sent
    total.resent += c.resent
    total.acks += c.acks
    total.backpressure += c.backpressure
    total.disconnects += c.disconnects
    total.reconnects += c.reconnects
    total.ticketRenewals += c.ticketRenewals
    total.violations += c.violations
    for (const [code, n] of Object.entries(c.errors)) total.errors[code] = (total.errors[code] ?? 0) + n
  }
  return total
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

interface Cleanup {
  workers: Array<Worker>
  engine: ServerProcess | null
  database: FreshDatabase | null
  keepDb: boolean
  throwaway: ThrowawayPostgres | null
  subscribers: { stop: () => Promise<unknown> } | null
}
const cleanup: Cleanup = { workers: [], engine: null, database: null, keepDb: false, throwaway: null, subscribers: null }

const releaseResources = async () => {
  for (const worker of cleanup.workers) if (worker.exited === null) worker.child.kill("SIGTERM")
  if (cleanup.subscribers !== null) await cleanup.subscribers.stop().catch(() => undefined)
  if (cleanup.engine !== null && cleanup.engine.alive()) await cleanup.engine.stop(30_000)
  if (cleanup.throwaway !== null) {
    // The whole cluster goes, database and all.
    await cleanup.throwaway.destroy().catch((e: unknown) => warn(`could not remove the throwaway cluster: ${String(e)}`))
    return
  }
  if (cleanup.database !== null && !cleanup.keepDb) {
    await cleanup.database.drop().catch((e: unknown) => warn(`could not drop ${cleanup.database?.name}: ${String(e)}`))
  }
}

interface Outcome {
  readonly result: Record<string, unknown>
  readonly ok: boolean
  /** The engine's /metrics at the end of the run, saved next to the result. */
  readonly metrics: string | null
  readonly series: ReadonlyArray<SeriesPoint>
  readonly events: ReadonlyArray<TimelineEvent>
}

const run = async (options: Options): Promise<Outcome> => {
  const problems: Array<string> = []
  let failed = false
  const fail = (text: string) => {
    failed = true
    problems.push(text)
    warn(`FAILED: ${text}`)
  }

  // ---- pinning ----
  const taskset = findTaskset()
  const cores = availableParallelism()
  const pin = options.pin ?? (taskset !== null && cores >= 2)
  if (pin && (taskset === null || cores < 2)) throw new Error("--pin needs taskset and at least 2 cores")
  if (pin && taskset !== null) {
    // The orchestrator itself (DB polling, histogram merging) stays off the engine's core too.
    execFileSync(taskset, ["-a", "-p", "-c", "1", String(process.pid)], { stdio: "ignore" })
  }
  const engineCore = pin && options.targetKind !== "url" ? 0 : null
  const simulatorCore = pin ? 1 : null
  say(pin ? `pinning: engine -> core 0, simulator -> core 1 (taskset); PostgreSQL is not pinned` : `pinning: off (${taskset === null ? "no taskset" : `${cores} core(s)`}${options.pin === false ? ", --no-pin" : ""})`)

  // ---- database, then the engine or a baseline ----
  const owner = randomOwner()
  const ownerEnv = OWNER_SCENARIOS.includes(options.scenario) ? commandsEngineEnv(owner.email, owner.password) : {}
  // max: the closed loop sends far more than the production 20 frames/s per connection.
  const maxEnv = options.scenario === "max" ? { NEXMDM_FRAME_RATE_PER_S: "100000" } : {}
  const engineEnv = { ...ownerEnv, ...maxEnv, ...options.engineEnv }
  let deviceUrl: string
  let databaseUrl: string | null
  let engine: RunningEngine | null = null
  /** The process under test (engine or baseline) when the bench started it. */
  let server: ServerProcess | null = null
  let throwaway: ThrowawayPostgres | null = null
  if (options.targetKind !== "url") {
    let serverUrl = options.databaseUrl
    if (options.scenario === "db-outage") {
      // Never the shared server: the outage is made by stopping this cluster.
      throwaway = await createThrowawayPostgres()
      cleanup.throwaway = throwaway
      serverUrl = throwaway.url
      say(`throwaway PostgreSQL cluster on port ${throwaway.port} (${throwaway.dataDir})`)
    }
    if (options.targetKind !== "ceiling") {
      const database = await createFreshDatabase(serverUrl)
      cleanup.database = database
      cleanup.keepDb = options.keepDb && throwaway === null
      databaseUrl = database.url
      say(`database ${database.name} created`)
    } else databaseUrl = null
    if (options.targetKind === "engine") {
      say("starting the engine (argon2 for device secrets at 1 MiB / 1 pass, so enrollment is cheap: enrollment cost is not measured)")
      engine = await startEngine({ databaseUrl: databaseUrl!, pinCore: engineCore, env: engineEnv, build: options.build || !existsSync(`${repoRoot}engine/build/main.mjs`) })
      if (Object.keys(options.engineEnv).length > 0) say(`engine environment overrides: ${JSON.stringify(options.engineEnv)}`)
      cleanup.engine = engine
      server = engine
      say(`engine ready: pid ${engine.pid}, device plane ${engine.deviceUrl}, admin ${engine.adminUrl}`)
    } else {
      server = await startBaseline({ kind: options.targetKind, databaseUrl, pinCore: engineCore })
      cleanup.engine = server
      say(`${options.targetKind} baseline ready: pid ${server.pid}, ${server.deviceUrl}`)
    }
    deviceUrl = server.deviceUrl
  } else {
    deviceUrl = options.target!
    databaseUrl = options.databaseUrlGiven ? options.databaseUrl : null
    say(`target engine ${deviceUrl}${databaseUrl === null ? " (no --database-url: zero-loss check skipped)" : ""}`)
  }
  const readRss = async (): Promise<number | null> =>
    server !== null ? server.rssMb() : options.adminUrl !== null ? await metricsRssMb(options.adminUrl) : null
  const rssBaseline = await readRss()
  const adminUrl = engine !== null ? engine.adminUrl : options.targetKind === "url" ? options.adminUrl : null
  const metricsBaseline = adminUrl !== null ? await fetchMetrics(adminUrl) : null
  let apiKey: string | null = null
  let accessToken: string | null = null
  if (OWNER_SCENARIOS.includes(options.scenario)) {
    if (adminUrl === null) throw new Error(`the ${options.scenario} scenario needs the admin plane`)
    if (options.scenario === "console") {
      accessToken = await login(adminUrl, owner.email, owner.password)
      say("console scenario: owner logged in")
    } else {
      apiKey = await createApiKey(adminUrl, owner.email, owner.password)
      say(`${options.scenario} scenario: owner logged in, API key with commands:send + read created`)
    }
  }

  // ---- enrollment token ----
  let token = options.token
  if (token === null && engine === null && options.targetKind !== "url") token = "baseline-accepts-any-token"
  if (token === null) {
    if (databaseUrl === null) throw new Error("with --target, pass --token or --database-url (to create one with the engine CLI)")
    // With our own engine the CLI hashes the token as cheaply as the engine hashes device secrets
    // (every enrollment verifies the token's hash).
    const created = await createEnrollmentToken(databaseUrl, options.devices + (options.scenario === "abuse" ? ATTACKER_DEVICES : 0), engine !== null ? CHEAP_ARGON2_ENV : {})
    token = created.token
    say(`enrollment token ${created.id} created (max uses ${created.maxUses})`)
  }

  // ---- workers: enroll and connect ----
  const wsAll = new LatencyHistogram()
  const httpAll = new LatencyHistogram()
  const window = new LatencyHistogram()
  /** Per second and per phase; created when the load starts. */
  let timeline: Timeline | null = null
  let schedLagMax = 0
  let schedLagWindowMax = 0
  const enrollProgress = new Map<number, { enroll: number; connect: number; failed: number }>()
  const onMessage = (worker: Worker, message: WorkerMessage) => {
    switch (message.type) {
      case "log":
        warn(`worker ${worker.index}: ${message.text}`)
        return
      case "progress": {
        const p = enrollProgress.get(worker.index) ?? { enroll: 0, connect: 0, failed: 0 }
        p[message.phase] = message.done
        p.failed = message.failed
        enrollProgress.set(worker.index, p)
        return
      }
      case "tick":
        timeline?.record(performance.now(), worker.index, [message.ws, message.http], message.counters.acks, message.online)
        wsAll.merge(message.ws)
        httpAll.merge(message.http)
        window.merge(message.ws)
        window.merge(message.http)
        schedLagMax = Math.max(schedLagMax, message.schedLagMaxMs)
        schedLagWindowMax = Math.max(schedLagWindowMax, message.schedLagMaxMs)
        return
      default:
        return
    }
  }
  const workerCount = Math.min(options.workers, options.devices)
  const workers: Array<Worker> = []
  for (let w = 0; w < workerCount; w++) {
    const worker = forkWorker(w, pin ? taskset : null, simulatorCore, onMessage)
    workers.push(worker)
    cleanup.workers.push(worker)
    const indices: Array<number> = []
    // Interleaved: worker w simulates devices w, w + W, w + 2W, ... so each worker's share is spread over the whole second.
    for (let i = w; i < options.devices; i += workerCount) indices.push(i)
    const config: WorkerConfig = {
      workerIndex: w,
      target: deviceUrl,
      token,
      indices,
      totalDevices: options.devices,
      httpShare: options.httpShare,
      hardwareIdPrefix: options.hardwarePrefix,
      rateHz: 1,
      enrollConcurrency: 16,
      connectConcurrency: 64,
      closedLoop: options.scenario === "max"
    }
    worker.send({ type: "init", config })
  }
  say(`${workerCount} worker(s) enrolling and connecting ${options.devices} devices`)
  const setupStarted = performance.now()
  const setupProgress = setInterval(() => {
    let enrolled = 0
    let connected = 0
    for (const p of enrollProgress.values()) {
      enrolled += p.enroll
      connected += p.connect
    }
    say(`setup: ${enrolled} enrolled, ${connected} sockets connected`)
  }, 5000)
  const setupTimeoutMs = 120_000 + options.devices * 20
  let readies: Array<MessageOf<"ready">>
  try {
    readies = await Promise.all(workers.map((w) => w.expect("ready", setupTimeoutMs)))
  } finally {
    clearInterval(setupProgress)
  }
  const readyDevices = readies.flatMap((r) => r.devices)
  const httpDevices = readies.reduce((n, r) => n + r.http, 0)
  const setupFailed = readies.reduce((n, r) => n + r.failed, 0)
  const reenrolled = readies.reduce((n, r) => n + r.reenrolled, 0)
  say(`setup done in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s: ${readyDevices.length} devices ready (${readyDevices.length - httpDevices} WebSocket, ${httpDevices} HTTP fallback)${reenrolled > 0 ? `, ${reenrolled} re-enrolled` : ""}`)
  if (setupFailed > 0) {
    fail(`${setupFailed} device(s) could not be enrolled or connected`)
    for (const r of readies) for (const f of r.failures) warn(`  ${f}`)
  }
  if (readyDevices.length === 0) throw new Error("no device is ready; nothing to measure")
  const rssConnected = await readRss()

  // ---- steady load ----
  const startAtEpochMs = Date.now() + 500
  // The warm-up never takes more than half the run.
  const warmupMs = Math.min(options.warmupMs, (options.duration * 1000) / 2)
  for (const w of workers) w.send({ type: "start", atEpochMs: startAtEpochMs, warmupMs })
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAtEpochMs - Date.now())))
  const steadyStart = performance.now()
  // CPU accounting over the steady period: who used the two cores (a busy machine skews latency).
  const cpuAtStart = {
    engine: server !== null ? readProcessCpuMs(server.pid) : null,
    postgres: readCommandCpuMs("postgres"),
    machine: readMachineBusyMs(),
    parent: process.cpuUsage()
  }
  timeline = new Timeline(steadyStart, warmupMs > 0 ? "warmup" : "steady")
  const tl = timeline
  if (warmupMs > 0) setTimeout(() => tl.phase === "warmup" && tl.setPhase("steady", performance.now(), "end of warm-up"), warmupMs)
  say(
    options.scenario === "max"
      ? `sending: ${readyDevices.length} devices, closed loop (next heartbeat when the previous one is acked) for ${options.duration} s (latency recorded after a ${warmupMs / 1000} s warm-up)`
      : `sending: ${readyDevices.length} devices x 1 heartbeat/s for ${options.duration} s (latency recorded after a ${warmupMs / 1000} s warm-up)`
  )
  let rssPeak = rssConnected ?? 0
  let lastAcks = 0
  let lastAt = steadyStart
  const progressBar = new Progress(options.duration, say)
  const progress = setInterval(() => {
    void (async () => {
      const now = performance.now()
      const counters = sumCounters(workers.map((w) => w.counters))
      const rate = ((counters.acks - lastAcks) * 1000) / (now - lastAt)
      lastAcks = counters.acks
      lastAt = now
      const rss = serverDown ? null : await readRss()
      if (rss !== null) rssPeak = Math.max(rssPeak, rss)
      const p95 = window.percentile(95)
      progressBar.update({
        elapsedS: (now - steadyStart) / 1000,
        rate,
        p95Ms: Number.isFinite(p95) ? p95 : null,
        online: workers.reduce((n, w) => n + (w.lastTick?.online ?? 0), 0),
        phase: tl.phase,
        detail: `p99 ${fmt(window.percentile(99))}  backpressure ${counters.backpressure}  disconnects ${counters.disconnects}  sched lag max ${fmt(schedLagWindowMax)}` +
          (rss !== null ? `  server RSS ${rss.toFixed(0)} MB` : "")
      })
      window.reset()
      schedLagWindowMax = 0
    })()
  }, 1000)

  // ---- disruptions: reconnect-storm, crash, db-outage; the console's subscribers; the abuse ----
  let runAborted = false
  /** True while the bench itself has the server down (the run loop must not call that a failure). */
  let serverDown = false
  /** CPU the engine processes that were stopped mid-run used during the run. */
  let engineCpuCarriedMs = 0
  let disruption: Disruption | null = null
  const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())))
  const onlineNow = () => workers.reduce((n, w) => n + (w.lastTick?.online ?? 0), 0)
  const restartEngine = async (crash: boolean): Promise<void> => {
    const before = engine
    if (before === null || databaseUrl === null) throw new Error("no engine of ours to restart")
    await sleepUntil(steadyStart + options.disruptAtMs)
    engineCpuCarriedMs += (readProcessCpuMs(before.pid) ?? 0) - (cpuAtStart.engine ?? 0)
    serverDown = true
    const downAtEpochMs = Date.now()
    tl.setPhase("recovery", performance.now(), crash ? "kill -9" : "engine stopped")
    say(crash ? `kill -9 the engine (pid ${before.pid})` : `stopping the engine (SIGTERM, pid ${before.pid})`)
    if (crash) await before.kill()
    else await before.stop(60_000)
    const restarted = await startEngine({ databaseUrl, pinCore: engineCore, env: engineEnv, ports: before.ports, build: false })
    engine = restarted
    server = restarted
    cleanup.engine = restarted
    cpuAtStart.engine = readProcessCpuMs(restarted.pid)
    serverDown = false
    const readyAtEpochMs = Date.now()
    const readyAtPerf = performance.now()
    tl.mark("engine ready", readyAtPerf)
    say(`engine restarted: pid ${restarted.pid}, ready after ${fmt(readyAtEpochMs - downAtEpochMs)}; waiting for every device to be back`)
    const deadline = performance.now() + 60_000 + readyDevices.length * 10
    let recoveredAtEpochMs: number | null = null
    while (performance.now() < deadline && !runAborted) {
      // A tick that left the worker after the restart, showing all of its devices online.
      const fresh = workers.every((w) => w.lastTickAt > readyAtPerf + 50)
      if (fresh && onlineNow() >= readyDevices.length) {
        recoveredAtEpochMs = Math.max(...workers.map((w) => w.lastTick?.lastWelcomeEpochMs ?? 0))
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    tl.setPhase("after", performance.now(), recoveredAtEpochMs === null ? "gave up waiting" : "all online")
    disruption = {
      kind: crash ? "crash" : "restart",
      downAtEpochMs,
      readyAtEpochMs,
      recoveredAtEpochMs: recoveredAtEpochMs === null ? null : Math.max(recoveredAtEpochMs, readyAtEpochMs)
    }
    if (recoveredAtEpochMs === null) fail(`not every device was back online within ${((deadline - readyAtPerf) / 1000).toFixed(0)} s of the restart (${onlineNow()} of ${readyDevices.length})`)
    else say(`all ${readyDevices.length} devices back online ${fmt(recoveredAtEpochMs - downAtEpochMs)} after the ${crash ? "kill" : "stop"}`)
  }
  const outage = async (): Promise<void> => {
    if (throwaway === null) throw new Error("no throwaway cluster")
    await sleepUntil(steadyStart + options.disruptAtMs)
    const downAtEpochMs = Date.now()
    tl.setPhase("outage", performance.now(), "PostgreSQL stopped")
    say(`stopping PostgreSQL (throwaway cluster, port ${throwaway.port}) for ${options.outageMs / 1000} s`)
    await throwaway.stop()
    await new Promise((resolve) => setTimeout(resolve, options.outageMs))
    await throwaway.start()
    const upAtEpochMs = Date.now()
    tl.setPhase("after", performance.now(), "PostgreSQL started")
    say(`PostgreSQL started again after ${fmt(upAtEpochMs - downAtEpochMs)}`)
    disruption = { kind: "outage", downAtEpochMs, readyAtEpochMs: upAtEpochMs, recoveredAtEpochMs: null }
  }
  let subscribers: Sidecar<SubscribersResult> | null = null
  if (options.scenario === "console" && adminUrl !== null && accessToken !== null) {
    subscribers = forkSidecar<SubscribersConfig, SubscribersResult>(
      sidecarPath("LiveSubscribers.ts"),
      { adminUrl, accessToken, count: options.subscribers, flushMs: options.flushMs, recordFromEpochMs: startAtEpochMs + warmupMs },
      { taskset: pin ? taskset : null, core: simulatorCore, log: (text) => warn(`subscribers: ${text}`) }
    )
    cleanup.subscribers = subscribers
    say(`${options.subscribers} live subscriber(s) on ${adminUrl}/api/live (WatchFleet, flushMs ${options.flushMs})`)
  }
  let attacker: Sidecar<AttackerResult> | null = null
  const abuse = async (): Promise<void> => {
    // First half after the warm-up: the fleet alone (the reference); second half: under attack.
    await sleepUntil(steadyStart + warmupMs + (options.duration * 1000 - warmupMs) / 2)
    tl.setPhase("abuse", performance.now(), "attack starts")
    say(`attack: ${options.abuseRate} hostile attempts/s alongside the fleet`)
    attacker = forkSidecar<AttackerConfig, AttackerResult>(
      sidecarPath("Attacker.ts"),
      { deviceUrl, adminUrl, token: token!, rate: options.abuseRate, ownerEmail: owner.email, kinds: options.abuseKinds },
      { taskset: pin ? taskset : null, core: simulatorCore, log: (text) => warn(`attacker: ${text}`) }
    )
    cleanup.subscribers = attacker
  }
  let scenarioError: string | null = null
  const scenarioTask: Promise<void> | null =
    options.scenario === "crash" || options.scenario === "reconnect-storm"
      ? restartEngine(options.scenario === "crash")
      : options.scenario === "db-outage"
        ? outage()
        : options.scenario === "abuse"
          ? abuse()
          : null
  let scenarioDone = scenarioTask === null
  void scenarioTask
    ?.catch((error: unknown) => {
      scenarioError = error instanceof Error ? error.message : String(error)
    })
    .finally(() => {
      scenarioDone = true
    })
  // ---- commands scenario: round trips, then the fan-out, while the heartbeats go on ----
  let roundTrips: RoundTripPhase | null = null
  let fanOut: FanOutPhase | null = null
  let commandsPhaseError: string | null = null
  const receipts = new Map<string, number>()
  let signatureFailures = 0
  let commandRejections = 0
  let commandDuplicates = 0
  const fanoutAck = new LatencyHistogram()
  const collectCommandReports = async () => {
    const reports = await Promise.all(
      workers.map((w) => {
        w.received.delete("commands")
        w.send({ type: "commands" })
        return w.expect("commands", 60_000)
      })
    )
    signatureFailures = 0
    commandRejections = 0
    commandDuplicates = 0
    for (const r of reports) {
      for (const receipt of r.receipts) if (!receipts.has(receipt.id)) receipts.set(receipt.id, receipt.atEpochMs)
      signatureFailures += r.signatureFailures
      commandRejections += r.rejections
      commandDuplicates += r.duplicates
      fanoutAck.merge(r.mark)
    }
  }
  const commandsPhases = (options.scenario !== "commands" && options.scenario !== "fan-out") || apiKey === null || adminUrl === null
    ? null
    : (async (key: string, admin: string) => {
      // Commands start after the heartbeat warm-up.
      await new Promise((resolve) => setTimeout(resolve, warmupMs))
      if (runAborted) return
      if (options.scenario === "commands") {
        say(`round-trip phase: ${options.cmdRate} ping/s to random devices for ${options.duration} s (POST /api/v1/devices/:id/commands with X-Admin-Key)`)
        roundTrips = await runRoundTrips({
          adminUrl: admin,
          apiKey: key,
          deviceIds: readyDevices.map((d) => d.deviceId),
          ratePerS: options.cmdRate,
          durationMs: options.duration * 1000,
          abort: () => runAborted
        })
        say(`round-trip phase done: ${roundTrips.sent.length} commands created, ${roundTrips.failedPosts} POSTs failed`)
        // Let the last results land before the fan-out starts.
        await new Promise((resolve) => setTimeout(resolve, 2000))
        if (runAborted) return
      }
      tl.setPhase("fan-out", performance.now(), "bulk command")
      for (const w of workers) w.send({ type: "mark", on: true })
      say(`fan-out phase: POST /api/v1/commands/bulk {type: ping, target: {all: true}} to ${readyDevices.length} devices`)
      try {
        fanOut = await runFanOut(admin, key, options.fanoutTimeoutMs, () => runAborted)
      } finally {
        for (const w of workers) w.send({ type: "mark", on: false })
      }
      tl.setPhase("after", performance.now(), "bulk job done")
      say(
        fanOut.doneAtEpochMs === null
          ? `fan-out: job ${fanOut.jobId} not done within ${options.fanoutTimeoutMs / 1000} s: ${JSON.stringify(fanOut.lastProgress)}`
          : `fan-out: job ${fanOut.jobId} done (${fanOut.total} commands) in ${fmt(fanOut.doneAtEpochMs - fanOut.postAtEpochMs)}`
      )
    })(apiKey, adminUrl)
      .catch((error: unknown) => {
        commandsPhaseError = error instanceof Error ? error.message : String(error)
      })
      // Receipts and signature failures, also when a phase failed.
      .then(() => collectCommandReports())
      .catch((error: unknown) => warn(`could not collect the workers' command reports: ${String(error)}`))
  let commandsDone = commandsPhases === null
  void commandsPhases?.finally(() => {
    commandsDone = true
  })
  const steadyEnd = steadyStart + options.duration * 1000
  // The load goes on for --duration and at least until the scenario's own phase is over.
  const keepGoing = () =>
    options.scenario === "commands" ? !commandsDone : performance.now() < steadyEnd || !scenarioDone || !commandsDone
  while (keepGoing()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(10, steadyEnd - performance.now()))))
    if (server !== null && !serverDown && !server.alive()) {
      fail(`the ${options.targetKind === "engine" ? "engine" : `${options.targetKind} baseline`} exited during the run`)
      break
    }
    const dead = workers.find((w) => w.exited !== null)
    if (dead !== undefined) {
      fail(`worker ${dead.index} exited during the run`)
      break
    }
  }
  runAborted = true
  if (commandsPhases !== null) {
    await commandsPhases
    if (commandsPhaseError !== null) fail(`${options.scenario} scenario: ${commandsPhaseError}`)
  }
  if (scenarioTask !== null) {
    await scenarioTask
    if (scenarioError !== null) fail(`${options.scenario} scenario: ${scenarioError}`)
  }
  clearInterval(progress)
  progressBar.stop()
  const serverAliveAtEnd = server === null ? null : server.alive()
  let subscribersResult: SubscribersResult | null = null
  if (subscribers !== null) {
    subscribersResult = await (subscribers as Sidecar<SubscribersResult>).stop().catch((e: unknown) => {
      fail(`live subscribers: ${String(e)}`)
      return null
    })
    cleanup.subscribers = null
  }
  let attackerResult: AttackerResult | null = null
  if (attacker !== null) {
    attackerResult = await (attacker as Sidecar<AttackerResult>).stop().catch((e: unknown) => {
      fail(`attacker: ${String(e)}`)
      return null
    })
    cleanup.subscribers = null
  } else if (options.scenario === "abuse") fail("the attack never started")
  const rssLoaded = await readRss()
  if (rssLoaded !== null) rssPeak = Math.max(rssPeak, rssLoaded)

  // ---- stop, drain, durability ----
  const stopAt = performance.now()
  const cpuAtStop = {
    engine: server !== null ? readProcessCpuMs(server.pid) : null,
    postgres: readCommandCpuMs("postgres"),
    machine: readMachineBusyMs(),
    parent: process.cpuUsage(cpuAtStart.parent)
  }
  for (const w of workers) {
    w.send({ type: "stop", atEpochMs: Date.now(), drainTimeoutMs: options.drainTimeoutMs, durableTimeoutMs: options.durableTimeoutMs })
  }
  say("stopped sending; waiting for outstanding acks and the write-behind flush")
  // Database side of the write lag: poll the row count from the stop instant; once the acked total is
  // known, the lag is when the first poll that saw it completed.
  const dbSamples: Array<{ at: number; rows: number }> = []
  let dbPollDone = false
  const dbPoll = (async () => {
    if (databaseUrl === null) return
    const counter = await RowCounter.open(databaseUrl, options.target === null ? "all" : readyDevices)
    try {
      const deadline = stopAt + options.drainTimeoutMs + options.durableTimeoutMs + 5000
      while (!dbPollDone && performance.now() < deadline) {
        const rows = await counter.count()
        dbSamples.push({ at: performance.now(), rows })
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    } finally {
      await counter.close()
    }
  })()
  const drainWait = options.drainTimeoutMs + 30_000
  const drained = await Promise.all(workers.map((w) => w.expect("drained", drainWait)))
  const ackedAtDrain = drained.reduce((n, d) => n + d.ackedDistinct, 0)
  const unacked = drained.reduce((n, d) => n + d.unacked, 0)
  const durables = await Promise.all(workers.map((w) => w.expect("durable", options.durableTimeoutMs + 30_000)))
  // Give the row count a moment to catch up when the devices' durable frames came first.
  const dbDeadline = performance.now() + 5000
  while (databaseUrl !== null && performance.now() < dbDeadline && !dbSamples.some((s) => s.rows >= ackedAtDrain)) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  dbPollDone = true
  await dbPoll.catch((e: unknown) => warn(`row-count polling failed: ${String(e)}`))
  const dbReached = dbSamples.find((s) => s.rows >= ackedAtDrain)
  const writeLagDbMs = databaseUrl === null ? null : dbReached === undefined ? null : dbReached.at - stopAt
  const wsLags = durables.map((d) => d.wsLagMs).filter((v): v is number => v !== null)
  const httpLags = durables.map((d) => d.httpLagMs).filter((v): v is number => v !== null)
  const notDurable = durables.reduce((n, d) => n + d.notDurable, 0)
  const writeLagMs = wsLags.length > 0 ? Math.max(...wsLags) : httpLags.length > 0 ? Math.max(...httpLags) : null
  if (notDurable > 0) problems.push(`${notDurable} device(s) never saw durableSeq reach their highest acked seq within ${options.durableTimeoutMs / 1000} s`)
  if (unacked > 0) problems.push(`${unacked} heartbeat(s) were never acked (drain timeout ${options.drainTimeoutMs / 1000} s)`)

  // ---- final reports, then close ----
  for (const w of workers) w.send({ type: "final" })
  const finals = await Promise.all(workers.map((w) => w.expect("final", 60_000)))
  const reports: Array<DeviceReport> = finals.flatMap((f) => f.devices)
  const counters = sumCounters(finals.map((f) => f.counters))
  for (const w of workers) w.send({ type: "close" })
  await Promise.all(
    workers.map((w) =>
      w.exited !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            w.child.kill("SIGKILL")
            resolve()
          }, 15_000)
          w.child.once("exit", () => {
            clearTimeout(timer)
            resolve()
          })
        })
    )
  )

  // ---- stop our engine (it flushes), then the zero-loss check ----
  // Keep the engine's own view of the run (its ack histogram, write batches) next to the result.
  const metricsText = adminUrl !== null ? await fetchMetrics(adminUrl) : null
  let engineExit: { code: number | null; signal: NodeJS.Signals | null; killed: boolean } | null = null
  if (server !== null) {
    const stopping = performance.now()
    engineExit = await server.stop(60_000)
    say(`engine stopped in ${((performance.now() - stopping) / 1000).toFixed(1)} s (exit code ${engineExit.code}${engineExit.signal !== null ? `, signal ${engineExit.signal}` : ""})`)
    if (engineExit.killed) fail("the engine did not exit within 60 s of SIGTERM and was killed")
    else if (engineExit.code !== 0) problems.push(`the engine exited with code ${engineExit.code} after SIGTERM`)
  }
  let zeroLoss: ZeroLossResult | null = null
  // After a crash or an outage the promise is stronger: every heartbeat any device generated (acked
  // or not when it happened) ends up in PostgreSQL exactly once, because devices keep everything
  // above the durable watermark and resend it.
  const checkGenerated = options.scenario === "crash" || options.scenario === "db-outage"
  if (databaseUrl !== null) {
    zeroLoss = await checkZeroLoss(
      databaseUrl,
      reports.map((r) => ({ deviceId: r.deviceId, firstSeq: r.firstSeq, acked: checkGenerated ? (r.lastSeq >= r.firstSeq ? [r.firstSeq, r.lastSeq] : []) : r.acked }))
    )
    if (zeroLoss.missing > 0) {
      fail(`${zeroLoss.missing} ${checkGenerated ? "generated" : "acked"} heartbeat(s) missing from PostgreSQL`)
      for (const m of zeroLoss.missingSamples) warn(`  missing: ${m.deviceId} seq ${m.lo}..${m.hi}: ${m.present} of ${m.hi - m.lo + 1} present`)
    }
    if (zeroLoss.duplicated > 0) {
      if (checkGenerated) fail(`${zeroLoss.duplicated} duplicated heartbeat row(s)`)
      else problems.push(`${zeroLoss.duplicated} duplicated heartbeat row(s)`)
    }
  }
  // ---- commands: statuses and completed_at from PostgreSQL (the engine flushed its command log when it stopped) ----
  let commandFigures: ReturnType<typeof computeCommandFigures> | null = null
  if (options.scenario === "commands" || options.scenario === "fan-out") {
    const rt: RoundTripPhase = roundTrips ?? { sent: [], failures: [], failedPosts: 0 }
    if (databaseUrl !== null) {
      commandFigures = computeCommandFigures(await readCommandRows(databaseUrl), rt, fanOut, receipts)
      if (commandFigures.notSucceeded > 0 || commandFigures.fanoutNotSucceeded > 0) {
        fail(`${commandFigures.notSucceeded} single-device and ${commandFigures.fanoutNotSucceeded} bulk command(s) did not reach succeeded`)
        for (const sample of commandFigures.notSucceededSamples) warn(`  ${sample}`)
      }
    }
    if (rt.failedPosts > 0) {
      fail(`${rt.failedPosts} command POST(s) failed`)
      for (const f of rt.failures) warn(`  ${f}`)
    }
    if (rt.sent.length === 0 && options.scenario === "commands") fail("no command was created")
    if (signatureFailures > 0) fail(`${signatureFailures} command frame(s) failed signature verification`)
    if (commandRejections > 0) problems.push(`${commandRejections} command ack/result(s) refused by the engine (error frames with a commandId)`)
    const fo = fanOut as FanOutPhase | null
    if (fo === null) fail("the fan-out phase did not run")
    else {
      if (fo.doneAtEpochMs === null) fail(`bulk job ${fo.jobId} did not reach done == total within ${options.fanoutTimeoutMs / 1000} s`)
      if (fo.total !== readyDevices.length) problems.push(`bulk job total ${fo.total} != ${readyDevices.length} devices ready`)
      if (commandFigures !== null && commandFigures.fanoutDelivered < fo.total) fail(`only ${commandFigures.fanoutDelivered} of ${fo.total} devices received the bulk command`)
    }
  }
  if (counters.violations > 0) problems.push(`${counters.violations} protocol violation(s) by the engine (see the worker logs above)`)

  // ---- figures ----
  const acked = reports.reduce((n, r) => n + r.acked.reduce((m, v, i) => (i % 2 === 0 ? m - v + 1 : m + v), 0), 0)
  if (acked === 0) fail("no heartbeat was acked")
  const steadyS = (stopAt - steadyStart) / 1000
  const cpuUs = drained.reduce((n, d) => n + d.cpuUserUs + d.cpuSystemUs, 0)
  const steadyWallMs = Math.max(...drained.map((d) => d.steadyWallMs))
  const all = new LatencyHistogram()
  all.merge(wsAll)
  all.merge(httpAll)
  const steadyMs = stopAt - steadyStart
  const pct = (ms: number | null) => (ms === null ? null : (ms / steadyMs) * 100)
  const simCpuPct = (cpuUs / 1000 / steadyWallMs) * 100
  const engineCpuPct = cpuAtStart.engine !== null && cpuAtStop.engine !== null ? pct(cpuAtStop.engine - cpuAtStart.engine + engineCpuCarriedMs) : null
  // Backends that ended during the run take their CPU time with them: never below zero.
  const postgresCpuPct = pct(Math.max(0, cpuAtStop.postgres - cpuAtStart.postgres))
  const machineCpuPct = cpuAtStart.machine !== null && cpuAtStop.machine !== null ? pct(cpuAtStop.machine - cpuAtStart.machine) : null
  const parentCpuPct = pct((cpuAtStop.parent.user + cpuAtStop.parent.system) / 1000)
  // What nobody of ours used: another process competing for the cores.
  const otherCpuPct = machineCpuPct === null || engineCpuPct === null
    ? null
    : Math.max(0, machineCpuPct - engineCpuPct - simCpuPct - (postgresCpuPct ?? 0) - (parentCpuPct ?? 0))
  if (otherCpuPct !== null && otherCpuPct > 20) {
    problems.push(`other processes used ~${Math.round(otherCpuPct)} % of a core during the run: latency figures are not representative`)
  }
  const heapMb = (text: string | null) => {
    const bytes = metricValue(text, "nodejs_heap_used_bytes")
    return bytes === null ? null : bytes / (1024 * 1024)
  }
  const ackSum = metricValue(metricsText, "engine_hb_ack_seconds_sum")
  const ackCount = metricValue(metricsText, "engine_hb_ack_seconds_count")
  const engineAckMeanMs = ackSum !== null && ackCount !== null && ackCount > 0 ? (ackSum / ackCount) * 1000 : null
  const rssPer1000 = rssLoaded !== null && rssBaseline !== null ? ((rssLoaded - rssBaseline) / readyDevices.length) * 1000 : null

  // ---- the scenario's own figures ----
  const phaseP95 = (name: string) => nullable(tl.phaseLatency(name).percentile(95))
  const scenarioFigures: Record<string, unknown> = {}
  const d = disruption as Disruption | null
  if (options.scenario === "crash" || options.scenario === "reconnect-storm") {
    scenarioFigures["recovery_s"] = d?.recoveredAtEpochMs == null ? null : round((d.recoveredAtEpochMs - d.downAtEpochMs) / 1000)
    scenarioFigures["restart_s"] = d === null ? null : round((d.readyAtEpochMs - d.downAtEpochMs) / 1000)
    scenarioFigures["recovery_ack_p95_ms"] = phaseP95("recovery")
    scenarioFigures["recovery_ack_samples"] = tl.phaseLatency("recovery").count
    scenarioFigures["after_ack_p95_ms"] = phaseP95("after")
    scenarioFigures["disrupt_at_s"] = round(options.disruptAtMs / 1000)
  }
  if (options.scenario === "crash" || options.scenario === "db-outage") scenarioFigures["zero_loss_basis"] = "generated"
  if (options.scenario === "db-outage") {
    scenarioFigures["outage_s"] = d === null ? null : round((d.readyAtEpochMs - d.downAtEpochMs) / 1000)
    scenarioFigures["outage_ack_p95_ms"] = phaseP95("outage")
    scenarioFigures["outage_ack_samples"] = tl.phaseLatency("outage").count
    scenarioFigures["after_ack_p95_ms"] = phaseP95("after")
    scenarioFigures["disrupt_at_s"] = round(options.disruptAtMs / 1000)
  }
  if (options.scenario === "console") {
    const latency = subscribersResult === null ? null : LatencyHistogram.fromSnapshot(subscribersResult.latency)
    scenarioFigures["subscribers"] = options.subscribers
    scenarioFigures["flush_ms"] = options.flushMs
    scenarioFigures["subscriber_p50_ms"] = nullable(latency?.percentile(50))
    scenarioFigures["subscriber_p95_ms"] = nullable(latency?.percentile(95))
    scenarioFigures["subscriber_p99_ms"] = nullable(latency?.percentile(99))
    scenarioFigures["subscriber_updates"] = subscribersResult?.updates ?? null
    scenarioFigures["subscriber_updates_per_s"] = subscribersResult === null ? null : round(subscribersResult.updates / ((stopAt - steadyStart) / 1000))
    scenarioFigures["subscriber_snapshots"] = subscribersResult?.snapshots ?? null
    scenarioFigures["subscriber_snapshot_max_ms"] = nullable(subscribersResult?.snapshotMaxMs)
    scenarioFigures["subscriber_streams_ended"] = subscribersResult?.ended ?? null
    if (subscribersResult !== null) {
      if (subscribersResult.snapshots < options.subscribers) fail(`${options.subscribers - subscribersResult.snapshots} subscriber(s) never received their snapshot`)
      if (subscribersResult.ended > 0) fail(`${subscribersResult.ended} live stream(s) ended during the run`)
      if (latency === null || latency.count === 0) fail("no subscriber received a heartbeat update")
      for (const f of subscribersResult.failures) warn(`  subscriber: ${f}`)
    }
  }
  if (options.scenario === "abuse") {
    const reference = tl.phaseLatency("steady").percentile(95)
    const underAttack = tl.phaseLatency("abuse").percentile(95)
    const steadyRatio = Number.isFinite(reference) && Number.isFinite(underAttack) && reference > 0 ? underAttack / reference : null
    scenarioFigures["steady_ack_p95_ms"] = nullable(reference)
    scenarioFigures["abuse_ack_p95_ms"] = nullable(underAttack)
    scenarioFigures["steady_ratio"] = nullable(steadyRatio)
    scenarioFigures["abuse_rate_per_s"] = options.abuseRate
    scenarioFigures["abuse_attempts"] = attackerResult?.attempts ?? null
    scenarioFigures["abuse_outcomes"] = attackerResult?.byKind ?? null
    const accepted = attackerResult === null ? 0 : Object.values(attackerResult.byKind).reduce((n, o) => n + o.accepted, 0)
    scenarioFigures["abuse_accepted"] = accepted
    scenarioFigures["engine_up"] = serverAliveAtEnd
    if (serverAliveAtEnd === false) fail("the engine did not survive the attack")
    if (accepted > 0) fail(`${accepted} hostile attempt(s) were accepted: ${attackerResult?.samples.join("; ")}`)
    if (steadyRatio !== null && steadyRatio > 2) {
      const text = `the fleet's p95 under attack is ${steadyRatio.toFixed(2)}x its p95 before (limit 2x)`
      if (options.thresholds) fail(text)
      else problems.push(text)
    }
  }
  if (options.scenario === "max") {
    // "Sustained with everything persisted": acked heartbeats over the load plus the time the last
    // of them took to reach PostgreSQL.
    const persistedS = steadyS + (writeLagDbMs ?? writeLagMs ?? 0) / 1000
    scenarioFigures["persisted_hb_per_s"] = zeroLoss === null || zeroLoss.missing > 0 ? null : round(acked / persistedS)
  }

  const result: Record<string, unknown> = {
    scenario: options.scenario,
    target: options.targetKind === "url" ? deviceUrl : options.targetKind,
    devices: readyDevices.length,
    http_devices: httpDevices,
    workers: workerCount,
    duration_s: round(steadyS),
    sent: counters.produced,
    transmissions: counters.sent,
    resent: counters.resent,
    acked,
    persisted: zeroLoss?.persisted ?? null,
    missing: zeroLoss?.missing ?? null,
    duplicated: zeroLoss?.duplicated ?? null,
    unacked,
    ack_p50_ms: nullable(all.percentile(50)),
    ack_p95_ms: nullable(all.percentile(95)),
    ack_p99_ms: nullable(all.percentile(99)),
    ack_max_ms: nullable(all.max),
    ws_ack_p50_ms: nullable(wsAll.percentile(50)),
    ws_ack_p95_ms: nullable(wsAll.percentile(95)),
    ws_ack_p99_ms: nullable(wsAll.percentile(99)),
    http_ack_p50_ms: nullable(httpAll.percentile(50)),
    http_ack_p95_ms: nullable(httpAll.percentile(95)),
    http_ack_p99_ms: nullable(httpAll.percentile(99)),
    latency_samples: all.count,
    warmup_s: warmupMs / 1000,
    hb_per_s: round(acked / steadyS),
    sim_cpu_pct: round(simCpuPct),
    engine_cpu_pct: nullable(engineCpuPct),
    postgres_cpu_pct: nullable(postgresCpuPct),
    machine_cpu_pct: nullable(machineCpuPct),
    other_cpu_pct: nullable(otherCpuPct),
    engine_ack_mean_ms: nullable(engineAckMeanMs),
    engine_heap_mb: nullable(heapMb(metricsText)),
    engine_heap_baseline_mb: nullable(heapMb(metricsBaseline)),
    sim_sched_lag_max_ms: nullable(schedLagMax),
    engine_rss_mb: nullable(rssLoaded),
    engine_rss_baseline_mb: nullable(rssBaseline),
    engine_rss_peak_mb: rssPeak > 0 ? round(rssPeak) : null,
    rss_per_1000_devices_mb: nullable(rssPer1000),
    write_lag_ms: nullable(writeLagMs),
    write_lag_db_ms: nullable(writeLagDbMs),
    http_write_lag_ms: nullable(httpLags.length > 0 ? Math.max(...httpLags) : null),
    not_durable_devices: notDurable,
    backpressure: counters.backpressure,
    disconnects: counters.disconnects,
    reconnects: counters.reconnects,
    ticket_renewals: counters.ticketRenewals,
    errors: counters.errors,
    violations: counters.violations,
    reenrolled,
    pinned: pin,
    engine: server !== null ? "spawned" : deviceUrl,
    engine_exit_code: engineExit?.code ?? null,
    cheap_argon2: engine !== null,
    ...scenarioFigures,
    ...(options.scenario === "commands" || options.scenario === "fan-out"
      ? (() => {
        const fo = fanOut as FanOutPhase | null
        const roundTripFigures = options.scenario !== "commands" ? {} : {
          cmd_rate_per_s: options.cmdRate,
          cmd_rtt_p50_ms: nullable(commandFigures?.rtt.percentile(50)),
          cmd_rtt_p95_ms: nullable(commandFigures?.rtt.percentile(95)),
          cmd_rtt_p99_ms: nullable(commandFigures?.rtt.percentile(99)),
          cmd_rtt_max_ms: nullable(commandFigures?.rtt.max),
          cmd_count: commandFigures?.rttCount ?? 0,
          cmd_sent: (roundTrips as RoundTripPhase | null)?.sent.length ?? 0,
          cmd_post_p95_ms: nullable(commandFigures?.postP95Ms),
          cmd_rtt_source: "postgres completed_at"
        }
        return {
          ...roundTripFigures,
          fanout_total: fo?.total ?? null,
          fanout_delivered: commandFigures?.fanoutDelivered ?? null,
          fanout_all_ms: nullable(commandFigures?.fanoutAllMs),
          fanout_p95_ms: nullable(commandFigures?.fanoutP95Ms),
          fanout_completed_ms: nullable(commandFigures?.fanoutCompletedMs),
          fanout_done_ms: nullable(fo === null || fo.doneAtEpochMs === null ? null : fo.doneAtEpochMs - fo.postAtEpochMs),
          fanout_ack_p95_ms: nullable(fanoutAck.percentile(95)),
          fanout_ack_samples: fanoutAck.count,
          signature_failures: signatureFailures,
          command_rejections: commandRejections,
          command_resends: commandDuplicates
        }
      })()
      : {}),
    problems,
    ok: !failed
  }

  // ---- human summary ----
  say("---- results ----")
  say(`devices ${readyDevices.length} (${httpDevices} HTTP), ${workerCount} worker(s), ${round(steadyS)} s steady, pinned: ${pin}`)
  say(`heartbeats: ${counters.produced} produced, ${acked} acked, ${zeroLoss?.persisted ?? "?"} persisted, ${zeroLoss?.missing ?? "?"} missing, ${zeroLoss?.duplicated ?? "?"} duplicated, ${counters.resent} resends, ${counters.backpressure} BACKPRESSURE`)
  say(`ack latency: p50 ${fmt(all.percentile(50))}  p95 ${fmt(all.percentile(95))}  p99 ${fmt(all.percentile(99))}  max ${fmt(all.max)}  (WebSocket p99 ${fmt(wsAll.percentile(99))}, HTTP p99 ${fmt(httpAll.percentile(99))})`)
  say(`throughput ${round(acked / steadyS)} hb/s; scheduler lag max ${fmt(schedLagMax)}; engine's own mean ack time ${engineAckMeanMs === null ? "n/a" : fmt(engineAckMeanMs)}`)
  say(
    `CPU (% of one core): simulator ${round(simCpuPct)}, engine ${engineCpuPct === null ? "n/a" : round(engineCpuPct)}, ` +
      `PostgreSQL ${postgresCpuPct === null ? "n/a" : round(postgresCpuPct)}, machine ${machineCpuPct === null ? "n/a" : round(machineCpuPct)} of ${cores * 100}, ` +
      `other processes ${otherCpuPct === null ? "n/a" : round(otherCpuPct)}`
  )
  if (rssLoaded !== null) {
    say(`engine RSS ${round(rssLoaded)} MB (idle ${rssBaseline === null ? "?" : round(rssBaseline)} MB, peak ${round(rssPeak)} MB) -> ${rssPer1000 === null ? "?" : round(rssPer1000)} MB per 1,000 devices; JS heap used ${heapMb(metricsText) === null ? "?" : round(heapMb(metricsText)!)} MB (idle ${heapMb(metricsBaseline) === null ? "?" : round(heapMb(metricsBaseline)!)} MB)`)
  }
  say(`write-behind lag: ${writeLagMs === null ? "n/a" : fmt(writeLagMs)} (durable frames), ${writeLagDbMs === null ? "n/a" : fmt(writeLagDbMs)} (PostgreSQL row count)`)
  if (options.scenario === "commands" && commandFigures !== null) {
    say(`commands: ${commandFigures.rttCount} round trips (POST -> completed_at): p50 ${fmt(commandFigures.rtt.percentile(50))}  p95 ${fmt(commandFigures.rtt.percentile(95))}  p99 ${fmt(commandFigures.rtt.percentile(99))}; signature failures ${signatureFailures}`)
    say(`fan-out: ${commandFigures.fanoutDelivered} delivered, last device ${fmt(commandFigures.fanoutAllMs ?? Number.NaN)}, p95 ${fmt(commandFigures.fanoutP95Ms ?? Number.NaN)}; heartbeat ack p95 during fan-out ${fmt(fanoutAck.percentile(95))}`)
  }
  for (const p of problems) say(`problem: ${p}`)
  return { result, ok: !failed, metrics: metricsText, series: tl.series(), events: tl.events }
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

const main = async () => {
  let options: Options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    process.exit(2)
  }
  let interrupted = false
  process.on("SIGINT", () => {
    if (interrupted) process.exit(130)
    interrupted = true
    warn("interrupted: stopping workers and engine, dropping the database")
    void releaseResources().finally(() => process.exit(130))
  })
  const startedAt = new Date()
  let outcome: Outcome
  try {
    outcome = await run(options)
  } catch (error) {
    warn(`run failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    outcome = {
      result: { scenario: options.scenario, target: options.targetKind, devices: options.devices, ok: false, error: error instanceof Error ? error.message : String(error) },
      ok: false,
      metrics: null,
      series: [],
      events: []
    }
  }
  await releaseResources()
  const result: Record<string, unknown> = { ...outcome.result }
  // The line always carries these keys (null when the run did not get that far).
  for (const key of REQUIRED_FIELDS) if (!(key in result)) result[key] = null
  let ok = outcome.ok

  // ---- the references, run now (--baseline, --ceiling) or found among earlier results ----
  const ratios: Array<Ratio> = []
  for (const kind of ["naive", "ceiling"] as const) {
    const prefix = kind === "naive" ? "baseline" : "ceiling"
    const asked = kind === "naive" ? options.compareBaseline : options.compareCeiling
    let reference: Record<string, unknown> | null = null
    let source = ""
    if (asked) {
      say(`---- the same ${options.scenario} run against the ${kind} baseline ----`)
      reference = await runReference(options, kind)
      source = "run now"
      if (reference === null || reference["ok"] !== true) {
        warn(`the ${kind} reference run failed`)
        ok = false
      }
      result[`${prefix}_ack_p95_ms`] = reference?.["ack_p95_ms"] ?? null
      result[`${prefix}_hb_per_s`] = reference?.["hb_per_s"] ?? null
      const p95Ratio = ratio("", result["ack_p95_ms"], reference?.["ack_p95_ms"], "").ratio
      const rateRatio = ratio("", result["hb_per_s"], reference?.["hb_per_s"], "").ratio
      result[`ack_p95_vs_${prefix}`] = p95Ratio === null ? null : round(p95Ratio)
      result[`hb_per_s_vs_${prefix}`] = rateRatio === null ? null : round(rateRatio)
    } else if (options.targetKind === "engine" && options.report) {
      const stored = findPreviousRun(options.resultsDir, options.scenario, null, (r) => r["target"] === kind && r["devices"] === result["devices"] && r["ok"] === true)
      if (stored !== null) {
        reference = stored.result
        source = `stored ${stored.file}`
      }
    }
    if (reference !== null && options.targetKind === "engine") {
      ratios.push(ratio(`ack p95 (ms) vs ${kind}`, result["ack_p95_ms"], reference["ack_p95_ms"], source))
      ratios.push(ratio(`ack p99 (ms) vs ${kind}`, result["ack_p99_ms"], reference["ack_p99_ms"], source))
      ratios.push(ratio(`heartbeats/s vs ${kind}`, result["hb_per_s"], reference["hb_per_s"], source))
    }
  }
  result["ok"] = ok

  // ---- files: <scenario>-<stamp>.json/.md/-latency.svg/-throughput.svg, /metrics next to them ----
  const json = JSON.stringify(result)
  if (options.report) {
    try {
      const name = runName(options.scenario, startedAt)
      const previous = findPreviousRun(options.resultsDir, options.scenario, name, (r) => r["target"] === result["target"])
      const written = await writeReport(
        options.resultsDir,
        { name, scenario: options.scenario, result, series: outcome.series, events: outcome.events, previous, ratios, scenarioFigures: SCENARIO_FIGURES[options.scenario] },
        { result, series: outcome.series, events: outcome.events, argv: options.argv }
      )
      if (outcome.metrics !== null) writeFileSync(join(options.resultsDir, `${name}.metrics.txt`), outcome.metrics)
      say(`report: ${written.find((f) => f.endsWith(".md")) ?? written[0]}`)
    } catch (error) {
      warn(`could not write the report: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    }
  }
  if (options.jsonOut !== null) {
    try {
      writeFileSync(options.jsonOut, `${json}\n`)
    } catch (error) {
      warn(`could not write ${options.jsonOut}: ${String(error)}`)
    }
  }
  process.stdout.write(`${json}\n`)
  process.exit(ok ? 0 : 1)
}

/** Keys every result line has, whatever happened. */
const REQUIRED_FIELDS = [
  "scenario", "devices", "sent", "acked", "persisted", "missing", "duplicated",
  "ack_p50_ms", "ack_p95_ms", "ack_p99_ms", "sim_cpu_pct"
] as const

/** Per scenario, the figures its Markdown summary lists besides the common ones. */
const SCENARIO_FIGURES: Readonly<Record<Scenario, ReadonlyArray<string>>> = {
  steady: ["http_devices", "http_ack_p95_ms", "ws_ack_p95_ms"],
  max: ["persisted_hb_per_s", "write_lag_db_ms", "backpressure"],
  "reconnect-storm": ["recovery_s", "restart_s", "recovery_ack_p95_ms", "after_ack_p95_ms", "reconnects"],
  crash: ["recovery_s", "restart_s", "recovery_ack_p95_ms", "after_ack_p95_ms", "reconnects", "resent", "zero_loss_basis"],
  "db-outage": ["outage_s", "outage_ack_p95_ms", "after_ack_p95_ms", "backpressure", "resent", "zero_loss_basis"],
  "fan-out": ["fanout_total", "fanout_delivered", "fanout_p95_ms", "fanout_all_ms", "fanout_completed_ms", "fanout_ack_p95_ms"],
  console: ["subscribers", "flush_ms", "subscriber_p50_ms", "subscriber_p95_ms", "subscriber_p99_ms", "subscriber_updates_per_s", "subscriber_snapshot_max_ms"],
  abuse: ["steady_ack_p95_ms", "abuse_ack_p95_ms", "steady_ratio", "abuse_attempts", "abuse_accepted", "engine_up", "abuse_outcomes"],
  commands: ["cmd_rtt_p50_ms", "cmd_rtt_p95_ms", "cmd_rtt_p99_ms", "fanout_p95_ms", "fanout_all_ms", "fanout_ack_p95_ms"]
}

/** Runs this scenario again against a baseline (a child bench, same options) and returns its result line. */
const runReference = (options: Options, kind: "naive" | "ceiling"): Promise<Record<string, unknown> | null> =>
  new Promise((resolve) => {
    const skip = new Set(["--baseline", "--ceiling", "--no-report"])
    const argv: Array<string> = []
    for (let i = 0; i < options.argv.length; i++) {
      const arg = options.argv[i]!
      if (skip.has(arg)) continue
      // Options with a value that must not carry over to the reference run.
      if (arg === "--json-out" || arg === "--target" || arg === "--engine-env") {
        i++
        continue
      }
      if (arg.startsWith("--json-out=") || arg.startsWith("--target=") || arg.startsWith("--engine-env=")) continue
      argv.push(arg)
    }
    if (!options.report) argv.push("--no-report")
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), ...argv, "--target", kind], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let last = ""
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.trim().startsWith("{")) last = line
      else process.stdout.write(`[${kind}] ${line}\n`)
    })
    child.once("exit", () => {
      try {
        resolve(JSON.parse(last) as Record<string, unknown>)
      } catch {
        resolve(null)
      }
    })
  })

void main()
