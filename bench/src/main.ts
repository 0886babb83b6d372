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
import { execFileSync, fork, type ChildProcess } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
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
import {
  commandsEngineEnv,
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

const USAGE = `usage: npm run bench -- [heartbeats|commands] [options]

  scenario               heartbeats (default): steady heartbeats only
                         commands: heartbeats plus signed remote commands over the admin API:
                         a round-trip phase (--cmd-rate pings/s to random devices for --duration),
                         then one bulk ping to every device (fan-out). WebSocket devices only.

  --devices N            simulated devices (default 100)
  --duration S           seconds of steady load, after enrollment and connect (default 30)
  --workers W            simulator processes (default min(4, ceil(N / 2500)))
  --http-share F         share of devices on the HTTP fallback (default 0.05)
  --target URL           device plane of a running engine (default: start one)
  --database-url URL     with --target: its database, for the zero-loss check and the token;
                         without: the PostgreSQL server to create a fresh database on
                         (default $DATABASE_URL or ${DEFAULT_DATABASE_URL})
  --admin-url URL        with --target: admin plane, for process_resident_memory_bytes
  --token T              enrollment token (default: created with the engine CLI)
  --keep-db              keep the fresh database
  --engine-env K=V       extra environment for the spawned engine (repeatable), e.g.
                         --engine-env NEXMDM_BUFFER_MAX_ROWS=100 to provoke BACKPRESSURE
  --pin / --no-pin       pin engine to core 0 and simulator to core 1 (default: on with taskset and 2+ cores)
  --hardware-prefix P    hardware ids are P-<i> (default bench)
  --warmup S             first seconds of the run left out of the latency figures (default 5)
  --drain-timeout S      wait for outstanding acks after the run (default 10)
  --durable-timeout S    wait for every acked heartbeat to be durable (default 30)
  --json-out FILE        also write the result JSON there (default bench/results/<time>.json)
  --cmd-rate R           commands scenario: single-device commands per second (default 20)
  --fanout-timeout S     commands scenario: wait for the bulk job to finish (default 120)
`

interface Options {
  readonly scenario: "heartbeats" | "commands"
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
  const scenario = positionals[0] ?? "heartbeats"
  if (scenario !== "heartbeats" && scenario !== "commands") throw new Error(`unknown scenario "${scenario}" (heartbeats or commands)`)
  const devices = Math.floor(number("devices", values.devices, 100, 1, 100_000))
  if (scenario === "commands") {
    // Commands reach HTTP-fallback devices only by long-polling, which the simulator does not do.
    if (values["http-share"] !== undefined && Number(values["http-share"]) !== 0) throw new Error("the commands scenario needs --http-share 0 (WebSocket devices only)")
    if (values.target !== undefined) throw new Error("the commands scenario starts its own engine (no --target): it needs an owner account")
  }
  const databaseUrl = values["database-url"] ?? process.env["DATABASE_URL"]
  return {
    scenario,
    cmdRate: number("cmd-rate", values["cmd-rate"], 20, 0.1, 10_000),
    fanoutTimeoutMs: number("fanout-timeout", values["fanout-timeout"], 120, 1, 3600) * 1000,
    devices,
    duration: number("duration", values.duration, 30, 1, 86_400),
    workers: Math.floor(number("workers", values.workers, Math.min(4, Math.ceil(devices / 2500)), 1, 64)),
    httpShare: number("http-share", values["http-share"], scenario === "commands" ? 0 : 0.05, 0, 1),
    target: values.target ?? null,
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
  exited: { code: number | null; signal: NodeJS.Signals | null } | null = null

  constructor(readonly index: number, readonly child: ChildProcess, onMessage: (worker: Worker, message: WorkerMessage) => void) {
    child.on("message", (raw) => {
      const message = raw as WorkerMessage
      if (message.type === "tick" || message.type === "drained" || message.type === "final") this.counters = message.counters
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
  engine: RunningEngine | null
  database: FreshDatabase | null
  keepDb: boolean
}
const cleanup: Cleanup = { workers: [], engine: null, database: null, keepDb: false }

const releaseResources = async () => {
  for (const worker of cleanup.workers) if (worker.exited === null) worker.child.kill("SIGTERM")
  if (cleanup.engine !== null && cleanup.engine.alive()) await cleanup.engine.stop(30_000)
  if (cleanup.database !== null && !cleanup.keepDb) {
    await cleanup.database.drop().catch((e: unknown) => warn(`could not drop ${cleanup.database?.name}: ${String(e)}`))
  }
}

interface Outcome {
  readonly result: Record<string, unknown>
  readonly ok: boolean
  /** The engine's /metrics at the end of the run, saved next to the result. */
  readonly metrics: string | null
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
  const engineCore = pin && options.target === null ? 0 : null
  const simulatorCore = pin ? 1 : null
  say(pin ? `pinning: engine -> core 0, simulator -> core 1 (taskset); PostgreSQL is not pinned` : `pinning: off (${taskset === null ? "no taskset" : `${cores} core(s)`}${options.pin === false ? ", --no-pin" : ""})`)

  // ---- engine and database ----
  const owner = randomOwner()
  let deviceUrl: string
  let databaseUrl: string | null
  let engine: RunningEngine | null = null
  if (options.target === null) {
    const database = await createFreshDatabase(options.databaseUrl)
    cleanup.database = database
    cleanup.keepDb = options.keepDb
    say(`database ${database.name} created`)
    say("starting the engine (argon2 for device secrets at 1 MiB / 1 pass, so enrollment is cheap: enrollment cost is not measured)")
    engine = await startEngine({
      databaseUrl: database.url,
      pinCore: engineCore,
      env: options.scenario === "commands" ? { ...commandsEngineEnv(owner.email, owner.password), ...options.engineEnv } : options.engineEnv
    })
    if (Object.keys(options.engineEnv).length > 0) say(`engine environment overrides: ${JSON.stringify(options.engineEnv)}`)
    cleanup.engine = engine
    deviceUrl = engine.deviceUrl
    databaseUrl = database.url
    say(`engine ready: pid ${engine.pid}, device plane ${engine.deviceUrl}, admin ${engine.adminUrl}`)
  } else {
    deviceUrl = options.target
    databaseUrl = options.databaseUrlGiven ? options.databaseUrl : null
    say(`target engine ${deviceUrl}${databaseUrl === null ? " (no --database-url: zero-loss check skipped)" : ""}`)
  }
  const readRss = async (): Promise<number | null> =>
    engine !== null ? engine.rssMb() : options.adminUrl !== null ? await metricsRssMb(options.adminUrl) : null
  const rssBaseline = await readRss()
  const adminUrl = engine !== null ? engine.adminUrl : options.adminUrl
  const metricsBaseline = adminUrl !== null ? await fetchMetrics(adminUrl) : null
  let apiKey: string | null = null
  if (options.scenario === "commands") {
    if (adminUrl === null) throw new Error("the commands scenario needs the admin plane")
    apiKey = await createApiKey(adminUrl, owner.email, owner.password)
    say("commands scenario: owner logged in, API key with commands:send + read created")
  }

  // ---- enrollment token ----
  let token = options.token
  if (token === null) {
    if (databaseUrl === null) throw new Error("with --target, pass --token or --database-url (to create one with the engine CLI)")
    // With our own engine the CLI hashes the token as cheaply as the engine hashes device secrets
    // (every enrollment verifies the token's hash).
    const created = await createEnrollmentToken(databaseUrl, options.devices, engine !== null ? CHEAP_ARGON2_ENV : {})
    token = created.token
    say(`enrollment token ${created.id} created (max uses ${created.maxUses})`)
  }

  // ---- workers: enroll and connect ----
  const wsAll = new LatencyHistogram()
  const httpAll = new LatencyHistogram()
  const window = new LatencyHistogram()
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
      connectConcurrency: 64
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
    engine: engine !== null ? readProcessCpuMs(engine.pid) : null,
    postgres: readCommandCpuMs("postgres"),
    machine: readMachineBusyMs(),
    parent: process.cpuUsage()
  }
  say(`sending: ${readyDevices.length} devices x 1 heartbeat/s for ${options.duration} s (latency recorded after a ${warmupMs / 1000} s warm-up)`)
  let rssPeak = rssConnected ?? 0
  let lastAcks = 0
  let lastAt = steadyStart
  const progress = setInterval(() => {
    void (async () => {
      const now = performance.now()
      const counters = sumCounters(workers.map((w) => w.counters))
      const rate = ((counters.acks - lastAcks) * 1000) / (now - lastAt)
      lastAcks = counters.acks
      lastAt = now
      const all = new LatencyHistogram()
      all.merge(wsAll)
      all.merge(httpAll)
      const rss = await readRss()
      if (rss !== null) rssPeak = Math.max(rssPeak, rss)
      say(
        `${((now - steadyStart) / 1000).toFixed(0).padStart(4)} s  ${rate.toFixed(0).padStart(6)} hb/s  ` +
          `p95 ${fmt(all.percentile(95))} (last 5 s ${fmt(window.percentile(95))}, p99 ${fmt(window.percentile(99))})  ` +
          `backpressure ${counters.backpressure}  disconnects ${counters.disconnects}  sched lag max ${fmt(schedLagWindowMax)}` +
          (rss !== null ? `  engine RSS ${rss.toFixed(0)} MB` : "")
      )
      window.reset()
      schedLagWindowMax = 0
    })()
  }, 5000)
  // ---- commands scenario: round trips, then the fan-out, while the heartbeats go on ----
  let runAborted = false
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
  const commandsPhases = options.scenario !== "commands" || apiKey === null || adminUrl === null
    ? null
    : (async (key: string, admin: string) => {
      // Commands start after the heartbeat warm-up.
      await new Promise((resolve) => setTimeout(resolve, warmupMs))
      if (runAborted) return
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
      for (const w of workers) w.send({ type: "mark", on: true })
      say(`fan-out phase: POST /api/v1/commands/bulk {type: ping, target: {all: true}} to ${readyDevices.length} devices`)
      try {
        fanOut = await runFanOut(admin, key, options.fanoutTimeoutMs, () => runAborted)
      } finally {
        for (const w of workers) w.send({ type: "mark", on: false })
      }
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
  while (options.scenario === "commands" ? !commandsDone : performance.now() < steadyEnd) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(0, steadyEnd - performance.now()))))
    if (engine !== null && !engine.alive()) {
      fail("the engine exited during the run")
      break
    }
    const dead = workers.find((w) => w.exited !== null)
    if (dead !== undefined) {
      fail(`worker ${dead.index} exited during the run`)
      break
    }
  }
  if (commandsPhases !== null) {
    runAborted = true
    await commandsPhases
    if (commandsPhaseError !== null) fail(`commands scenario: ${commandsPhaseError}`)
  }
  clearInterval(progress)
  const rssLoaded = await readRss()
  if (rssLoaded !== null) rssPeak = Math.max(rssPeak, rssLoaded)

  // ---- stop, drain, durability ----
  const stopAt = performance.now()
  const cpuAtStop = {
    engine: engine !== null ? readProcessCpuMs(engine.pid) : null,
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
  if (engine !== null) {
    const stopping = performance.now()
    engineExit = await engine.stop(60_000)
    say(`engine stopped in ${((performance.now() - stopping) / 1000).toFixed(1)} s (exit code ${engineExit.code}${engineExit.signal !== null ? `, signal ${engineExit.signal}` : ""})`)
    if (engineExit.killed) fail("the engine did not exit within 60 s of SIGTERM and was killed")
    else if (engineExit.code !== 0) problems.push(`the engine exited with code ${engineExit.code} after SIGTERM`)
  }
  let zeroLoss: ZeroLossResult | null = null
  if (databaseUrl !== null) {
    zeroLoss = await checkZeroLoss(databaseUrl, reports.map((r) => ({ deviceId: r.deviceId, firstSeq: r.firstSeq, acked: r.acked })))
    if (zeroLoss.missing > 0) {
      fail(`${zeroLoss.missing} acked heartbeat(s) missing from PostgreSQL`)
      for (const m of zeroLoss.missingSamples) warn(`  missing: ${m.deviceId} seq ${m.lo}..${m.hi}: ${m.present} of ${m.hi - m.lo + 1} present`)
    }
    if (zeroLoss.duplicated > 0) problems.push(`${zeroLoss.duplicated} duplicated heartbeat row(s)`)
  }
  // ---- commands: statuses and completed_at from PostgreSQL (the engine flushed its command log when it stopped) ----
  let commandFigures: ReturnType<typeof computeCommandFigures> | null = null
  if (options.scenario === "commands") {
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
    if (rt.sent.length === 0) fail("no command was created")
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
  const engineCpuPct = cpuAtStart.engine !== null && cpuAtStop.engine !== null ? pct(cpuAtStop.engine - cpuAtStart.engine) : null
  const postgresCpuPct = pct(cpuAtStop.postgres - cpuAtStart.postgres)
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

  const result: Record<string, unknown> = {
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
    engine: engine !== null ? "spawned" : deviceUrl,
    engine_exit_code: engineExit?.code ?? null,
    cheap_argon2: engine !== null,
    ...(options.scenario === "commands"
      ? (() => {
        const fo = fanOut as FanOutPhase | null
        return {
          scenario: "commands",
          cmd_rate_per_s: options.cmdRate,
          cmd_rtt_p50_ms: nullable(commandFigures?.rtt.percentile(50)),
          cmd_rtt_p95_ms: nullable(commandFigures?.rtt.percentile(95)),
          cmd_rtt_p99_ms: nullable(commandFigures?.rtt.percentile(99)),
          cmd_rtt_max_ms: nullable(commandFigures?.rtt.max),
          cmd_count: commandFigures?.rttCount ?? 0,
          cmd_sent: (roundTrips as RoundTripPhase | null)?.sent.length ?? 0,
          cmd_post_p95_ms: nullable(commandFigures?.postP95Ms),
          cmd_rtt_source: "postgres completed_at",
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
  return { result, ok: !failed, metrics: metricsText }
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
  let outcome: Outcome
  try {
    outcome = await run(options)
  } catch (error) {
    warn(`run failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    outcome = { result: { devices: options.devices, ok: false, error: error instanceof Error ? error.message : String(error) }, ok: false, metrics: null }
  }
  await releaseResources()
  const json = JSON.stringify(outcome.result)
  try {
    const file = options.jsonOut ?? `${repoRoot}bench/results/${new Date().toISOString().replace(/[:.]/g, "-")}.json`
    if (options.jsonOut === null) mkdirSync(`${repoRoot}bench/results`, { recursive: true })
    writeFileSync(file, `${json}\n`)
    if (outcome.metrics !== null) writeFileSync(file.replace(/\.json$/, "") + ".metrics.txt", outcome.metrics)
  } catch (error) {
    warn(`could not write the result file: ${String(error)}`)
  }
  process.stdout.write(`${json}\n`)
  process.exit(outcome.ok ? 0 : 1)
}

void main()
