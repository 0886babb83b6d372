/**
 * The `commands` scenario's admin side: an owner login, an API key, commands sent over the admin
 * REST API (a steady stream of single-device pings, then one bulk ping to every device), and the
 * figures computed from the engine's `commands` table and the workers' receipt times.
 *
 * Clocks: the engine records `completed_at` with Date.now() when a device's signed result arrives;
 * the bench stamps its POSTs and the workers stamp command arrivals with Date.now() too. All run on
 * the same machine, so the differences are meaningful (millisecond resolution).
 */
import { randomBytes } from "node:crypto"
import pg from "pg"
import { LatencyHistogram } from "./Stats.js"

/** Engine environment of the scenario: a first owner, cheap password hashing, no admin rate limit in the way. */
export const commandsEngineEnv = (email: string, password: string): Record<string, string> => ({
  NEXMDM_OWNER_EMAIL: email,
  NEXMDM_OWNER_PASSWORD: password,
  NEXMDM_API_RATE_PER_MIN: "10000000",
  NEXMDM_ARGON2_PASSWORD_MEMORY_KIB: "1024",
  NEXMDM_ARGON2_PASSWORD_TIME_COST: "1",
  NEXMDM_ARGON2_PASSWORD_PARALLELISM: "1"
})

export const randomOwner = () => ({
  email: `bench-owner-${randomBytes(4).toString("hex")}@bench.invalid`,
  password: `Bx9!${randomBytes(24).toString("base64url")}`
})

interface Answer {
  readonly status: number
  readonly body: unknown
}

const call = async (adminUrl: string, method: "GET" | "POST", path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> => {
  const response = await fetch(new URL(`/api/v1${path}`, adminUrl), {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text.length > 0 ? JSON.parse(text) : null
  } catch {
    // keep the text
  }
  return { status: response.status, body: parsed }
}

const describe = (what: string, answer: Answer) => `${what} -> HTTP ${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`

/** Logs in as the owner; returns the access JWT (for the REST API and the live streams). */
export const login = async (adminUrl: string, email: string, password: string): Promise<string> => {
  const answer = await call(adminUrl, "POST", "/auth/login", {}, { email, password })
  const accessToken = (answer.body as { accessToken?: unknown } | null)?.accessToken
  if (answer.status !== 200 || typeof accessToken !== "string") throw new Error(describe("POST /api/v1/auth/login", answer))
  return accessToken
}

/** Logs in as the owner and creates an API key with commands:send + read; returns the key. */
export const createApiKey = async (adminUrl: string, email: string, password: string): Promise<string> => {
  const accessToken = await login(adminUrl, email, password)
  const created = await call(adminUrl, "POST", "/api-keys", { authorization: `Bearer ${accessToken}` }, { name: "bench", scopes: ["commands:send", "read"] })
  const key = (created.body as { key?: unknown } | null)?.key
  if (created.status !== 201 || typeof key !== "string") throw new Error(describe("POST /api/v1/api-keys", created))
  return key
}

export interface SentCommand {
  readonly id: string
  readonly deviceId: string
  /** Date.now() just before the POST. */
  readonly postAtEpochMs: number
  /** How long the POST itself took (201 answer). */
  readonly postMs: number
}

export interface RoundTripPhase {
  readonly sent: ReadonlyArray<SentCommand>
  readonly failures: ReadonlyArray<string>
  readonly failedPosts: number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Open-loop: POST /devices/:id/commands {type: ping} to a random device every 1/rate s for the
 * duration (a slow answer does not delay the next send). Stops early when `abort()` says so.
 */
export const runRoundTrips = async (options: {
  readonly adminUrl: string
  readonly apiKey: string
  readonly deviceIds: ReadonlyArray<string>
  readonly ratePerS: number
  readonly durationMs: number
  readonly abort: () => boolean
}): Promise<RoundTripPhase> => {
  const sent: Array<SentCommand> = []
  const failures: Array<string> = []
  let failedPosts = 0
  const inFlight = new Set<Promise<void>>()
  const start = performance.now()
  const periodMs = 1000 / options.ratePerS
  for (let k = 0; ; k++) {
    const due = start + k * periodMs
    if (due - start >= options.durationMs || options.abort()) break
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    const deviceId = options.deviceIds[Math.floor(Math.random() * options.deviceIds.length)]!
    const postAtEpochMs = Date.now()
    const t = performance.now()
    const request = call(options.adminUrl, "POST", `/devices/${deviceId}/commands`, { "x-admin-key": options.apiKey }, { type: "ping", params: {} })
      .then((answer) => {
        const id = (answer.body as { command?: { id?: unknown } } | null)?.command?.id
        if (answer.status !== 201 || typeof id !== "string") {
          failedPosts++
          if (failures.length < 10) failures.push(describe(`POST /api/v1/devices/${deviceId}/commands`, answer))
          return
        }
        sent.push({ id, deviceId, postAtEpochMs, postMs: performance.now() - t })
      })
      .catch((error: unknown) => {
        failedPosts++
        if (failures.length < 10) failures.push(`POST /api/v1/devices/${deviceId}/commands failed: ${String(error)}`)
      })
    const tracked = request.finally(() => inFlight.delete(tracked))
    inFlight.add(tracked)
  }
  await Promise.all(inFlight)
  return { sent, failures, failedPosts }
}

export interface FanOutPhase {
  readonly jobId: string
  readonly total: number
  readonly postAtEpochMs: number
  /** Date.now() when GET /commands/bulk/:jobId first showed done == total (null: never within the timeout). */
  readonly doneAtEpochMs: number | null
  readonly lastProgress: unknown
}

/** One POST /commands/bulk {type: ping, target: {all: true}}, then polls its progress every 50 ms. */
export const runFanOut = async (adminUrl: string, apiKey: string, timeoutMs: number, abort: () => boolean): Promise<FanOutPhase> => {
  const headers = { "x-admin-key": apiKey }
  const postAtEpochMs = Date.now()
  const created = await call(adminUrl, "POST", "/commands/bulk", headers, { type: "ping", params: {}, target: { all: true } })
  const job = created.body as { jobId?: unknown; total?: unknown } | null
  if (created.status !== 201 || typeof job?.jobId !== "string" || typeof job.total !== "number") {
    throw new Error(describe("POST /api/v1/commands/bulk", created))
  }
  const jobId = job.jobId
  const deadline = performance.now() + timeoutMs
  let lastProgress: unknown = null
  while (performance.now() < deadline && !abort()) {
    const progress = await call(adminUrl, "GET", `/commands/bulk/${jobId}`, headers)
    lastProgress = progress.body
    const p = progress.body as { done?: unknown; total?: unknown } | null
    if (progress.status === 200 && typeof p?.done === "number" && typeof p.total === "number" && p.done >= p.total) {
      return { jobId, total: job.total, postAtEpochMs, doneAtEpochMs: Date.now(), lastProgress }
    }
    await sleep(50)
  }
  return { jobId, total: job.total, postAtEpochMs, doneAtEpochMs: null, lastProgress }
}

export interface CommandRow {
  readonly id: string
  readonly deviceId: string
  readonly status: string
  readonly bulkJobId: string | null
  /** completed_at in epoch ms (engine clock), null while open. */
  readonly completedMs: number | null
}

/** Every command of the database (the bench's database holds only this run's). */
export const readCommandRows = async (databaseUrl: string): Promise<Array<CommandRow>> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ id: string; device_id: string; status: string; bulk_job_id: string | null; completed_ms: string | null }>(
      "select id, device_id, status, bulk_job_id, (extract(epoch from completed_at) * 1000)::float8 as completed_ms from commands"
    )
    return rows.map((r) => ({
      id: r.id,
      deviceId: r.device_id,
      status: r.status,
      bulkJobId: r.bulk_job_id,
      completedMs: r.completed_ms === null ? null : Number(r.completed_ms)
    }))
  } finally {
    await client.end()
  }
}

export interface CommandFigures {
  readonly rtt: LatencyHistogram
  readonly rttCount: number
  readonly notSucceeded: number
  readonly notSucceededSamples: ReadonlyArray<string>
  readonly fanoutAllMs: number | null
  readonly fanoutP95Ms: number | null
  readonly fanoutDelivered: number
  readonly fanoutNotSucceeded: number
  /** Bulk POST start to the latest completed_at of the job's commands (engine clock). */
  readonly fanoutCompletedMs: number | null
  readonly postP95Ms: number | null
}

/** Round trips (POST to completed_at), fan-out delivery (POST to the workers' receipt times), statuses. */
export const computeCommandFigures = (
  rows: ReadonlyArray<CommandRow>,
  roundTrips: RoundTripPhase,
  fanOut: FanOutPhase | null,
  receipts: ReadonlyMap<string, number>
): CommandFigures => {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const rtt = new LatencyHistogram()
  const post = new LatencyHistogram()
  let notSucceeded = 0
  const samples: Array<string> = []
  for (const c of roundTrips.sent) {
    post.record(c.postMs)
    const row = byId.get(c.id)
    if (row === undefined || row.status !== "succeeded" || row.completedMs === null) {
      notSucceeded++
      if (samples.length < 10) samples.push(`${c.id} (${c.deviceId}): ${row === undefined ? "not in the table" : row.status}`)
      continue
    }
    rtt.record(Math.max(0, row.completedMs - c.postAtEpochMs))
  }
  let fanoutAllMs: number | null = null
  let fanoutP95Ms: number | null = null
  let fanoutDelivered = 0
  let fanoutNotSucceeded = 0
  let fanoutCompletedMs: number | null = null
  if (fanOut !== null) {
    const delivery = new LatencyHistogram()
    let last = 0
    for (const row of rows) {
      if (row.bulkJobId !== fanOut.jobId) continue
      if (row.status !== "succeeded") {
        fanoutNotSucceeded++
        if (samples.length < 10) samples.push(`${row.id} (${row.deviceId}, bulk): ${row.status}`)
      }
      if (row.completedMs !== null) fanoutCompletedMs = Math.max(fanoutCompletedMs ?? 0, row.completedMs - fanOut.postAtEpochMs)
      const at = receipts.get(row.id)
      if (at === undefined) continue
      fanoutDelivered++
      const ms = Math.max(0, at - fanOut.postAtEpochMs)
      delivery.record(ms)
      last = Math.max(last, ms)
    }
    // Every device of the job must have received it for "the last device" to mean anything.
    fanoutAllMs = fanoutDelivered === fanOut.total && fanoutDelivered > 0 ? last : null
    fanoutP95Ms = fanoutDelivered > 0 ? delivery.percentile(95) : null
  }
  return {
    rtt,
    rttCount: rtt.count,
    notSucceeded,
    notSucceededSamples: samples,
    fanoutAllMs,
    fanoutP95Ms,
    fanoutDelivered,
    fanoutNotSucceeded,
    fanoutCompletedMs,
    postP95Ms: post.count > 0 ? post.percentile(95) : null
  }
}
