/**
 * Zero-touch enrollment as a technician does it: create a token, download the scripts from the
 * admin API, run the Bash one against a fake adb (test/support/fake-adb) with three simulated
 * devices, one of them with a Google account, against a real engine; the fake devices hand the
 * enrollment intent to a fake agent that enrols over HTTP. Plus quoting of hostile values in both
 * scripts, shellcheck, a PowerShell parse check and the QR code decoded back to its JSON.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { execFile, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import {
  agentComponents,
  bashScript,
  generateScript,
  powershellScript,
  psQuote,
  type ScriptInput,
  shQuote,
  UnsafeScriptValue
} from "../src/provisioning/EnrollmentScripts.js"
import { hasServer, type TestDatabase } from "./support/TestDatabase.js"
import { type ApiClient, signedIn, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"
import { decodePng } from "./support/QrDecode.js"

const support = fileURLToPath(new URL("./support/", import.meta.url))
const root = fileURLToPath(new URL("../../", import.meta.url))
// The CLI child process needs a database URL it can open: only a PostgreSQL server gives one.
const serverDatabase = await hasServer()
const requireToolchains = process.env["NEXMDM_TEST_REQUIRE_TOOLCHAINS"] === "1"
const hasCommand = (name: string) => spawnSync("sh", ["-c", `command -v ${name}`]).status === 0

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
let client: ApiClient
let deviceUrl: string
let work: string

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  work = await mkdtemp(join(tmpdir(), "nexmdm-scripts-"))
  admin = await startAdmin(database, { dataDir: work })
  deviceUrl = (await admin.run(DevicePlane)).url
  ;({ client } = await signedIn(admin, "admin"))
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

const SIGNER = "5f".repeat(32)

/** Publishes an agent "APK" (random bytes: the fake devices do not parse it) on the stable channel. */
const publishRelease = async () => {
  const apk = randomBytes(64 * 1024)
  const id = `rel_${randomBytes(10).toString("hex")}`
  const sha256Hex = createHash("sha256").update(apk).digest("hex")
  await mkdir(join(work, "releases"), { recursive: true })
  await writeFile(join(work, "releases", `${id}.apk`), apk)
  await admin.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.withTransaction(
        Effect.zipRight(
          sql`insert into agent_releases (id, package_name, version_code, version_name, channel, sha256_hex, size_bytes,
                signer_cert_sha256, signature_schemes, storage_path, uploaded_by)
              values (${id}, 'com.nexmdm.agent', ${Date.now() % 1_000_000_000}, '1.4.0', 'stable', ${sha256Hex}, ${apk.length},
                ${SIGNER}, '{2,3}', ${`${id}.apk`}, 'test')`,
          sql`insert into release_channel_events (channel, release_id, action, actor) values ('stable', ${id}, 'publish', 'test')`
        )
      )
    )
  )
  return { id, sha256Hex }
}

const createToken = async (maxUses: number) => {
  const response = await client.post("/api/v1/enrollment-tokens", { maxUses, label: "box of phones" })
  expect(response.status).toBe(201)
  return response.body as { id: string; token: string }
}

interface FakeDevice {
  readonly serial: string
  readonly model: string
  readonly release: string
  readonly sdk: number
  readonly accounts: number
  readonly state?: string
  /** Device owner already set (component), if any. */
  readonly owner?: string
}

const THREE_DEVICES: ReadonlyArray<FakeDevice> = [
  { serial: "emulator-5554", model: "Pixel 7", release: "14", sdk: 34, accounts: 0 },
  { serial: "R58N12ABCDE", model: "SM-T505", release: "11", sdk: 30, accounts: 0 },
  { serial: "ZY22ACCOUNT", model: "moto g", release: "12", sdk: 31, accounts: 1 }
]

/** A folder with `adb` (the fake) on PATH, the devices file and the state folder. */
const fakeAdb = async (devices: ReadonlyArray<FakeDevice>) => {
  const dir = await mkdtemp(join(work, "adb-"))
  await mkdir(join(dir, "bin"))
  await symlink(join(support, "fake-adb"), join(dir, "bin", "adb"))
  await chmod(join(support, "fake-adb"), 0o755)
  await mkdir(join(dir, "state"))
  const devicesFile = join(dir, "devices.tsv")
  await writeFile(devicesFile, devices.map((d) => [d.serial, d.state ?? "device", d.model, d.release, d.sdk, d.accounts, d.owner ?? "-"].join("\t")).join("\n") + "\n")
  return {
    dir,
    state: join(dir, "state"),
    env: {
      ...process.env,
      PATH: `${join(dir, "bin")}:${process.env["PATH"]}`,
      FAKE_ADB_DEVICES: devicesFile,
      FAKE_ADB_STATE: join(dir, "state"),
      FAKE_DEVICE_SHELL: join(support, "fake-device-shell.sh"),
      FAKE_AGENT: `${process.execPath} ${join(support, "fake-agent.mjs")}`,
      NEXMDM_POLL_INTERVAL_S: "0.3",
      NEXMDM_ENROLL_TIMEOUT_S: "20"
    },
    calls: async () => (await readFile(join(dir, "state", "calls.log"), "utf8")).trimEnd().split("\n").map((line) => line.split("\t")),
    deviceFile: (serial: string, name: string) => readFile(join(dir, "state", "devices", serial, name), "utf8")
  }
}

const run = (file: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile("bash", [file, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    })
  })

const downloadScript = async (tokenId: string, token: string, platform: string) => {
  const response = await client.post(`/api/v1/enrollment-tokens/${tokenId}/script?platform=${platform}`, { token })
  return response
}

describe("enrollment scripts from the admin API", () => {
  it("refuses to generate a script or QR code while no agent release exists (409 NO_AGENT_RELEASE)", async () => {
    const token = await createToken(1)
    const script = await downloadScript(token.id, token.token, "bash")
    expect(script.status).toBe(409)
    expect(script.body).toMatchObject({ _tag: "ProvisioningConflict", code: "NO_AGENT_RELEASE" })
    const qr = await client.post(`/api/v1/enrollment-tokens/${token.id}/qr?format=json`, { token: token.token })
    expect(qr.status).toBe(409)
    expect(qr.body.code).toBe("NO_AGENT_RELEASE")
  })

  it("enrols a batch of three fake devices, refusing the one with an account, and reports it", async () => {
    const release = await publishRelease()
    const token = await createToken(3)

    const wrong = await downloadScript(token.id, `${token.id}.${"A".repeat(43)}`, "bash")
    expect(wrong.status).toBe(409)
    expect(wrong.body.code).toBe("TOKEN_MISMATCH")

    const response = await downloadScript(token.id, token.token, "bash")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-disposition")).toBe(`attachment; filename="nexmdm-enroll-${token.id}.sh"`)
    expect(response.text).toContain(`readonly ENROLLMENT_TOKEN='${token.token}'`)
    expect(response.text).toContain(`readonly APK_SHA256='${release.sha256Hex}'`)
    const file = join(work, `nexmdm-enroll-${token.id}.sh`)
    await writeFile(file, response.text)
    // Who obtained a script for which token is audited (never the token itself).
    const audit = await client.get(`/api/v1/audit?action=enrollment_token.script&targetId=${token.id}`)
    expect(audit.body.items.map((item: any) => [item.outcome, item.detail.code ?? item.detail.platform])).toEqual([
      ["success", "bash"],
      ["failure", "TOKEN_MISMATCH"]
    ])
    expect(audit.text).not.toContain(token.token.split(".")[1])

    const adb = await fakeAdb(THREE_DEVICES)
    const result = await run(file, [], adb.env)
    if (process.env["NEXMDM_TEST_LOG_LEVEL"] === "debug") console.log(result.stdout + result.stderr)
    const summary = result.stdout.slice(result.stdout.indexOf("SERIAL"))
    expect(result.code, result.stdout + result.stderr).toBe(1)
    expect(summary).toMatch(/^emulator-5554\s+Pixel 7\s+14\s+ENROLLED\s+device dev_[a-z0-9]+$/m)
    expect(summary).toMatch(/^R58N12ABCDE\s+SM-T505\s+11\s+ENROLLED\s+device dev_[a-z0-9]+$/m)
    expect(summary).toMatch(/^ZY22ACCOUNT\s+moto g\s+12\s+FAILED\s+ACCOUNTS_PRESENT: 1 account\(s\) on the device/m)
    expect(summary).toContain("2 of 3 device(s) enrolled")

    // What adb was asked to do: nothing beyond the preflight on the device with an account.
    const calls = await adb.calls()
    const on = (serial: string) => calls.filter((call) => call[0] === "-s" && call[1] === serial).map((call) => call.slice(2))
    expect(on("ZY22ACCOUNT").map((call) => call.slice(0, 2).join(" "))).toEqual([
      "shell getprop",
      "shell getprop",
      "shell getprop",
      "shell dumpsys",
      "shell pm",
      "shell dumpsys"
    ])
    for (const serial of ["emulator-5554", "R58N12ABCDE"]) {
      const made = on(serial)
      expect(made).toContainEqual(["install", "-r", expect.stringMatching(/agent\.apk$/)])
      expect(made).toContainEqual(["shell", "dpm", "set-device-owner", "com.nexmdm.agent/.AdminReceiver"])
      expect(made).toContainEqual(["shell", "pm", "grant", "com.nexmdm.agent", "android.permission.READ_PHONE_STATE"])
      expect(made.some((call) => call.join(" ").includes("am broadcast --include-stopped-packages -a com.nexmdm.agent.ENROLL -n com.nexmdm.agent/.EnrollReceiver"))).toBe(true)
      expect(made).toContainEqual(["shell", "am", "start-foreground-service", "-n", "com.nexmdm.agent/.AgentService"])
      // The device received exactly the APK of the release and exactly the URL and token.
      expect((await adb.deviceFile(serial, "installed.sha256")).trim()).toBe(release.sha256Hex)
      expect(await adb.deviceFile(serial, "intent.server_url")).toBe(deviceUrl)
      expect(await adb.deviceFile(serial, "intent.enrollment_token")).toBe(token.token)
      expect(await adb.deviceFile(serial, "intent.device_serial")).toBe(serial)
    }
    // POST_NOTIFICATIONS exists from SDK 33 only.
    expect(await adb.deviceFile("emulator-5554", "granted")).toContain("android.permission.POST_NOTIFICATIONS")
    expect(await adb.deviceFile("R58N12ABCDE", "granted")).not.toContain("POST_NOTIFICATIONS")

    // The preflight reports reached the engine and the admin API lists them per token.
    const reports = await client.get(`/api/v1/enrollment-tokens/${token.id}/reports`)
    expect(reports.status).toBe(200)
    const failed = reports.body.filter((report: any) => !report.ok)
    expect(failed).toHaveLength(1)
    expect(failed[0]).toMatchObject({
      serial: "ZY22ACCOUNT",
      stage: "preflight",
      problems: [{ code: "ACCOUNTS_PRESENT" }],
      facts: { model: "moto g", androidRelease: "12", sdk: 31 }
    })
    expect(reports.body.filter((report: any) => report.ok).map((report: any) => report.serial).sort()).toEqual(["R58N12ABCDE", "emulator-5554"])

    const tokens = await client.get("/api/v1/enrollment-tokens")
    expect(tokens.body.find((t: any) => t.id === token.id).uses).toBe(2)

    // Run again (a technician re-plugs the box): enrolled phones are recognised and left alone.
    await writeFile(join(adb.state, "calls.log"), "")
    const again = await run(file, [], adb.env)
    expect(again.code).toBe(1)
    expect(again.stdout).toMatch(/^emulator-5554\s+.*ENROLLED\s+already enrolled: device dev_[a-z0-9]+$/m)
    expect(again.stdout).toMatch(/^R58N12ABCDE\s+.*ENROLLED\s+already enrolled: device dev_[a-z0-9]+$/m)
    expect(again.stdout).toContain("2 of 3 device(s) enrolled")
    expect((await adb.calls()).filter((call) => call[0] === "-s" && call[1] !== "ZY22ACCOUNT")).toEqual([])

    // The script's one download is recorded as such (adoption figures).
    const downloads = await admin.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ client_kind: string; completed: boolean }>`
        select client_kind, completed from release_downloads where release_id = ${release.id}`)
    )
    expect(downloads.map((row) => [row.client_kind, row.completed])).toEqual([["script", true]])
  })

  it("names each failure: unauthorised, another device owner, old Android, and an agent that never enrols", async () => {
    await publishRelease()
    const token = await createToken(10)
    const file = join(work, `failures-${token.id}.sh`)
    await writeFile(file, (await downloadScript(token.id, token.token, "bash")).text)
    const adb = await fakeAdb([
      { serial: "UNAUTH01", model: "", release: "", sdk: 0, accounts: 0, state: "unauthorized" },
      { serial: "KIOSKOWNED", model: "Kiosk", release: "13", sdk: 33, accounts: 0, owner: "com.other.mdm/.Admin" },
      { serial: "OLDPHONE", model: "Galaxy S5", release: "6.0.1", sdk: 23, accounts: 0 },
      { serial: "OURSALREADY", model: "Pixel 5", release: "13", sdk: 33, accounts: 0, owner: "com.nexmdm.agent/.AdminReceiver" }
    ])
    const result = await run(file, ["--timeout", "2"], { ...adb.env, FAKE_AGENT: "" })
    expect(result.code, result.stdout + result.stderr).toBe(1)
    const summary = result.stdout.slice(result.stdout.indexOf("SERIAL"))
    expect(summary).toMatch(/^UNAUTH01\s+-\s+-\s+FAILED\s+DEVICE_UNAUTHORIZED: USB debugging is not allowed/m)
    expect(summary).toMatch(/^KIOSKOWNED\s+.*FAILED\s+DEVICE_OWNER_EXISTS: the device is already managed by com.other.mdm\/.Admin/m)
    expect(summary).toMatch(/^OLDPHONE\s+.*FAILED\s+ANDROID_TOO_OLD: Android 6.0.1 \(SDK 23\)/m)
    expect(summary).toMatch(/^OURSALREADY\s+.*FAILED\s+ENROLL_TIMEOUT: the agent did not enrol within 2s/m)
    expect(summary).toContain("0 of 4 device(s) enrolled")
    // Re-running on a device our agent already owns skips set-device-owner and still hands over.
    const calls = (await adb.calls()).filter((call) => call[1] === "OURSALREADY").map((call) => call.slice(2, 4).join(" "))
    expect(calls).not.toContain("shell dpm")
    expect(calls).toContain("shell am")
    const reports = await client.get(`/api/v1/enrollment-tokens/${token.id}/reports`)
    expect(reports.body.filter((r: any) => !r.ok).map((r: any) => `${r.serial} ${r.stage} ${r.problems[0].code}`).sort()).toEqual([
      "KIOSKOWNED preflight DEVICE_OWNER_EXISTS",
      "OLDPHONE preflight ANDROID_TOO_OLD",
      "OURSALREADY enroll ENROLL_TIMEOUT",
      "UNAUTH01 preflight DEVICE_UNAUTHORIZED"
    ])
  })

  it("with --serial enrols only that device, and refuses a batch larger than the token's uses", async () => {
    await publishRelease()
    const token = await createToken(1)
    const file = join(work, `single-${token.id}.sh`)
    await writeFile(file, (await downloadScript(token.id, token.token, "bash")).text)
    const adb = await fakeAdb(THREE_DEVICES)

    const tooMany = await run(file, [], adb.env)
    expect(tooMany.code).toBe(2)
    expect(tooMany.stderr).toContain("2 devices passed the preflight but the token allows 1 more enrollments")

    await writeFile(join(adb.state, "calls.log"), "")
    const one = await run(file, ["--serial", "R58N12ABCDE"], adb.env)
    expect(one.code, one.stdout + one.stderr).toBe(0)
    expect(one.stdout).toContain("1 of 1 device(s) enrolled")
    const touched = new Set((await adb.calls()).filter((call) => call[0] === "-s").map((call) => call[1]))
    expect([...touched]).toEqual(["R58N12ABCDE"])

    // The token is used up now: the script stops before touching any device.
    const again = await run(file, ["--serial", "emulator-5554"], adb.env)
    expect(again.code).toBe(2)
    expect(again.stderr).toContain("the enrollment token is used_up")
  })

  it("stops before installing anything when the download does not match the pinned SHA-256", async () => {
    const release = await publishRelease()
    const token = await createToken(3)
    const file = join(work, `tampered-${token.id}.sh`)
    await writeFile(file, (await downloadScript(token.id, token.token, "bash")).text)
    // Same size, other bytes: what a tampered mirror or a corrupted disk would serve.
    await writeFile(join(work, "releases", `${release.id}.apk`), randomBytes(64 * 1024))
    const adb = await fakeAdb(THREE_DEVICES.slice(0, 1))
    const result = await run(file, [], adb.env)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("the downloaded agent is not the release this script was made for")
    expect((await adb.calls()).some((call) => call.includes("install"))).toBe(false)
  })

  it("serves the PowerShell script and its .cmd launcher with CRLF line ends", async () => {
    await publishRelease()
    const token = await createToken(5)
    const ps1 = await downloadScript(token.id, token.token, "powershell")
    expect(ps1.status).toBe(200)
    expect(ps1.headers.get("content-disposition")).toBe(`attachment; filename="nexmdm-enroll-${token.id}.ps1"`)
    expect(ps1.text).toContain(`$EnrollmentToken = '${token.token}'\r\n`)
    expect(ps1.text.replaceAll("\r\n", "")).not.toContain("\n")
    const cmd = await downloadScript(token.id, token.token, "cmd")
    expect(cmd.status).toBe(200)
    expect(cmd.headers.get("content-disposition")).toBe(`attachment; filename="nexmdm-enroll-${token.id}.cmd"`)
    // It runs the .ps1 of the same base name beside it, passing the arguments on.
    expect(cmd.text).toContain(`powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dpn0.ps1" %*\r\n`)
    // The launcher carries no secret.
    expect(cmd.text).not.toContain(token.token)
  })

  it("serves QR provisioning for the token as JSON, PNG (decoding to the same JSON) and SVG", async () => {
    const release = await publishRelease()
    const token = await createToken(10)
    const body = { token: token.token, wifi: { ssid: "Store 12", password: "secret pass" }, skipEncryption: true }
    const json = await client.post(`/api/v1/enrollment-tokens/${token.id}/qr?format=json`, body)
    expect(json.status).toBe(200)
    expect(json.body).toEqual({
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME": "com.nexmdm.agent/.AdminReceiver",
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION": `${deviceUrl}/v1/releases/${release.id}/agent.apk`,
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM": Buffer.from(SIGNER, "hex").toString("base64url"),
      "android.app.extra.PROVISIONING_SKIP_ENCRYPTION": true,
      "android.app.extra.PROVISIONING_WIFI_SSID": "Store 12",
      "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE": "WPA",
      "android.app.extra.PROVISIONING_WIFI_PASSWORD": "secret pass",
      "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE": { server_url: deviceUrl, enrollment_token: token.token }
    })
    const png = await fetch(`${admin.url}/api/v1/enrollment-tokens/${token.id}/qr?format=png`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${client.credentials.token}`, "x-forwarded-for": client.ip },
      body: JSON.stringify(body)
    })
    expect(png.status).toBe(200)
    expect(png.headers.get("content-type")).toBe("image/png")
    expect(decodePng(new Uint8Array(await png.arrayBuffer()))).toBe(json.text)
    const svg = await client.post(`/api/v1/enrollment-tokens/${token.id}/qr?format=svg`, body)
    expect(svg.headers.get("content-type")).toBe("image/svg+xml")
    expect(svg.text.startsWith("<svg")).toBe(true)

    const bad = await client.post(`/api/v1/enrollment-tokens/${token.id}/qr?format=json`, { ...body, wifi: { ssid: "a\nb" } })
    expect(bad.status).toBe(400)
  })

  it.skipIf(!serverDatabase)("`mdm tokens script` writes the same script from the database (token on stdin)", { timeout: 180_000 }, async () => {
    await publishRelease()
    const token = await createToken(2)
    const output = join(work, "cli-script.sh")
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ["--import", "tsx", "engine/src/cli.ts", "tokens", "script", token.id, "--token-stdin", "--server-url", deviceUrl, "--output", output],
        { cwd: root, env: { ...process.env, DATABASE_URL: database.url, NEXMDM_DATA_DIR: work }, timeout: 150_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
      )
      child.stdin?.end(`${token.token}\n`)
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(`wrote ${output}`)
    const script = await readFile(output, "utf8")
    expect(script).toContain(`readonly ENROLLMENT_TOKEN='${token.token}'`)
    expect(script).toContain(`readonly SERVER_URL='${deviceUrl}'`)
    expect((await stat(output)).mode & 0o777).toBe(0o700)
  })
})

// ---------------------------------------------------------------------------------------------
// Quoting

const HOSTILE_URL = "https://mdm.example.com/a'b$(touch${IFS}/tmp/pwned)`id`;x&y|z\"q"
const HOSTILE_TOKEN = "et_0123456789abcdef.x'$(id)`id`\"$HOME;rm -rf /;'\\''"

const input = (overrides: Partial<ScriptInput> = {}): ScriptInput => ({
  serverUrl: "https://mdm.example.com",
  token: "et_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  tokenId: "et_0123456789abcdef",
  tokenLabel: "store 12",
  agent: { packageName: "com.nexmdm.agent", versionName: "1.4.0", versionCode: 14, sha256Hex: "ab".repeat(32), apkUrl: "https://mdm.example.com/v1/releases/rel_1/agent.apk" },
  generatedAt: new Date("2026-01-01T00:00:00Z"),
  ...overrides
})

/** Runs the constant block of a generated Bash script and prints the named variables, NUL-separated. */
const bashValues = (script: string, names: ReadonlyArray<string>) => {
  const block = script.slice(script.indexOf("readonly SERVER_URL="), script.indexOf("\nADB="))
  const result = spawnSync("bash", ["-c", `${block}\nprintf '%s\\0' ${names.map((name) => `"$${name}"`).join(" ")}`], { encoding: "utf8" })
  expect(result.status, result.stderr).toBe(0)
  return result.stdout.split("\0").slice(0, names.length)
}

/**
 * A tokenizer for the PowerShell constructs the script uses, enough to check quoting without pwsh:
 * comments (# and <# #>), single-quoted verbatim strings ('' = '), double-quoted strings (with `
 * escapes). Returns the single-quoted literals assigned to `$Name = '...'`, and throws on an
 * unterminated string or comment.
 */
const powershellLiterals = (script: string): Map<string, string> => {
  const literals = new Map<string, string>()
  let i = 0
  let lastVariable: string | undefined
  const open: Array<string> = []
  const pairs: Record<string, string> = { "}": "{", ")": "(", "]": "[" }
  while (i < script.length) {
    const c = script[i]!
    if (c === "{" || c === "(" || c === "[") open.push(c)
    if (c in pairs && open.pop() !== pairs[c]) throw new Error(`unbalanced ${c} at ${i}`)
    if (script.startsWith("<#", i)) {
      const end = script.indexOf("#>", i + 2)
      if (end < 0) throw new Error("unterminated block comment")
      i = end + 2
    } else if (c === "#") {
      const end = script.indexOf("\n", i)
      i = end < 0 ? script.length : end
    } else if (c === "'") {
      let value = ""
      let j = i + 1
      for (;;) {
        if (j >= script.length) throw new Error(`unterminated single-quoted string at ${i}`)
        if (script[j] === "'") {
          if (script[j + 1] === "'") {
            value += "'"
            j += 2
            continue
          }
          break
        }
        value += script[j]
        j++
      }
      if (lastVariable !== undefined) literals.set(lastVariable, value)
      lastVariable = undefined
      i = j + 1
    } else if (c === '"') {
      let j = i + 1
      while (j < script.length && script[j] !== '"') j += script[j] === "`" ? 2 : 1
      if (j >= script.length) throw new Error(`unterminated double-quoted string at ${i}`)
      i = j + 1
    } else {
      const assignment = /^\$([A-Za-z]+) = /.exec(script.slice(i, i + 60))
      if (assignment !== null && (i === 0 || script[i - 1] === "\n")) {
        lastVariable = assignment[1]
        i += assignment[0].length
      } else {
        if (c === "\n") lastVariable = undefined
        i++
      }
    }
  }
  if (open.length > 0) throw new Error(`unclosed ${open.join("")}`)
  return literals
}

describe("quoting of embedded values", () => {
  it("Bash: a hostile token and URL come back byte for byte, in the script and in the device's shell", () => {
    const agent = { ...input().agent, apkUrl: `${HOSTILE_URL}/agent.apk` }
    const script = bashScript(input({ serverUrl: HOSTILE_URL, token: HOSTILE_TOKEN, agent }))
    // The quoted form, as a snapshot: single quotes, each ' written as '\''.
    expect(script).toContain(String.raw`readonly ENROLLMENT_TOKEN='et_0123456789abcdef.x'\''$(id)` + "`id`" + String.raw`"$HOME;rm -rf /;'\''\'\'''\'''` + "\n")
    const [url, token, apkUrl, remoteUrl, remoteToken] = bashValues(script, ["SERVER_URL", "ENROLLMENT_TOKEN", "APK_URL", "REMOTE_SERVER_URL", "REMOTE_ENROLLMENT_TOKEN"])
    expect(url).toBe(HOSTILE_URL)
    expect(token).toBe(HOSTILE_TOKEN)
    expect(apkUrl).toBe(`${HOSTILE_URL}/agent.apk`)
    // adb joins arguments into one command line for the device's sh: that shell must see the value.
    const device = spawnSync("sh", ["-c", `printf '%s\\0' ${remoteUrl} ${remoteToken}`], { encoding: "utf8" })
    expect(device.stdout.split("\0").slice(0, 2)).toEqual([HOSTILE_URL, HOSTILE_TOKEN])
  })

  it("PowerShell: single-quoted literals with '' give back the hostile values; the script tokenizes", () => {
    const agent = { ...input().agent, apkUrl: `${HOSTILE_URL}/agent.apk` }
    const script = powershellScript(input({ serverUrl: HOSTILE_URL, token: HOSTILE_TOKEN, agent }))
    expect(script).toContain(`$EnrollmentToken = 'et_0123456789abcdef.x''$(id)\`id\`"$HOME;rm -rf /;''\\'''''\r\n`)
    const literals = powershellLiterals(script)
    expect(literals.get("ServerUrl")).toBe(HOSTILE_URL)
    expect(literals.get("EnrollmentToken")).toBe(HOSTILE_TOKEN)
    expect(literals.get("ApkUrl")).toBe(`${HOSTILE_URL}/agent.apk`)
    expect(literals.get("RemoteServerUrl")).toBe(shQuote(HOSTILE_URL))
    expect(literals.get("RemoteEnrollmentToken")).toBe(shQuote(HOSTILE_TOKEN))
    // Nothing outside ASCII (Windows PowerShell 5.1 reads a BOM-less file as ANSI).
    expect(/^[\x09\x0a\x0d\x20-\x7e]*$/.test(script)).toBe(true)
  })

  it("refuses control characters and non-ASCII instead of embedding them", () => {
    for (const [field, overrides] of [
      ["token", { token: "et_0123456789abcdef.abc\nrm -rf /" }],
      ["serverUrl", { serverUrl: "https://mdm.example.com\r\nx" }],
      ["serverUrl", { serverUrl: "https://mdm.example.com/\u0000" }],
      ["tokenLabel", { tokenLabel: "caf\u00e9" }],
      ["serverUrl", { serverUrl: "https://mdm.example.com/a b" }]
    ] as const) {
      for (const platform of ["bash", "powershell", "cmd"] as const) {
        const result = generateScript(platform, input(overrides))
        expect(result).toBeInstanceOf(UnsafeScriptValue)
        expect((result as UnsafeScriptValue).field).toBe(field)
      }
    }
    expect(psQuote("it's")).toBe("'it''s'")
    expect(shQuote("it's")).toBe(`'it'\\''s'`)
  })

  it("writes component names in full for a package with a suffix (the classes keep their names)", () => {
    expect(agentComponents("com.nexmdm.agent")).toEqual({
      admin: "com.nexmdm.agent/.AdminReceiver",
      enrollReceiver: "com.nexmdm.agent/.EnrollReceiver",
      service: "com.nexmdm.agent/.AgentService"
    })
    expect(agentComponents("com.nexmdm.agent.debug").admin).toBe("com.nexmdm.agent.debug/com.nexmdm.agent.AdminReceiver")
    const script = bashScript(input({ agent: { ...input().agent, packageName: "com.nexmdm.agent.debug" } }))
    expect(script).toContain("readonly ADMIN_COMPONENT='com.nexmdm.agent.debug/com.nexmdm.agent.AdminReceiver'")
  })

  it("the generated Bash passes shellcheck", (context) => {
    if (!hasCommand("shellcheck")) {
      if (requireToolchains) throw new Error("NEXMDM_TEST_REQUIRE_TOOLCHAINS=1 but shellcheck is not installed")
      console.warn("shellcheck not installed: skipping (apt-get install shellcheck)")
      return context.skip()
    }
    // Every check for real values; with hostile ones shellcheck rightly notes (info) that $(...) in
    // single quotes does not expand, which is the point: nothing from warning up.
    for (const [variant, severity] of [[input(), "style"], [input({ serverUrl: HOSTILE_URL, token: HOSTILE_TOKEN }), "warning"]] as const) {
      const result = spawnSync("shellcheck", ["-s", "bash", "-S", severity, "-"], { input: bashScript(variant), encoding: "utf8" })
      expect(result.stdout + result.stderr).toBe("")
      expect(result.status).toBe(0)
    }
    const support = spawnSync("shellcheck", [join(fileURLToPath(new URL("./support/", import.meta.url)), "fake-adb")], { encoding: "utf8" })
    expect(support.stdout).toBe("")
  })

  it("the PowerShell script parses (pwsh when installed, else the tokenizer above)", (context) => {
    const script = powershellScript(input({ serverUrl: HOSTILE_URL, token: HOSTILE_TOKEN }))
    if (!hasCommand("pwsh")) {
      // Strings and comments terminate; braces, brackets and parentheses outside them balance.
      expect(() => powershellLiterals(script)).not.toThrow()
      expect(() => powershellLiterals(script.replace("$Serial -ne '')", "$Serial -ne ''"))).toThrow(/unclosed|unbalanced/)
      return
    }
    const check = spawnSync(
      "pwsh",
      ["-NoProfile", "-Command", "$e = $null; $t = $null; [void][System.Management.Automation.Language.Parser]::ParseInput([Console]::In.ReadToEnd(), [ref]$t, [ref]$e); if ($e.Count) { $e | ForEach-Object { $_.Message }; exit 1 }"],
      { input: script, encoding: "utf8" }
    )
    expect(check.stdout + check.stderr).toBe("")
    expect(check.status).toBe(0)
    void context
  })
})
