import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"

// Each CLI run starts node and compiles TypeScript through tsx: seconds each on a busy 2-core machine.
vi.setConfig({ testTimeout: 180_000 })
import { hasServer, type TestDatabase } from "./support/TestDatabase.js"
import { enrol, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

const root = fileURLToPath(new URL("../../", import.meta.url))

// The CLI opens DATABASE_URL itself; an embedded test database lives in this process and has no
// URL another process could use for long, so the file runs only against a PostgreSQL server
// (the test database is of kind "server" exactly when hasServer() holds).
const server = await hasServer()
if (!server) console.warn("Cli.test.ts skipped: no PostgreSQL server for the CLI child process (embedded test database)")

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let engine: TestEngine | undefined

beforeAll(async () => {
  if (!server) return
  ;({ database, release: releaseDatabase } = await openDatabase())
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
})

const mdm = (...args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "engine/src/cli.ts", ...args],
      { cwd: root, env: { ...process.env, DATABASE_URL: database.url }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
  })

// Concurrent: each run of the CLI spends seconds loading modules, most of it waiting on one core.
describe.skipIf(!server).concurrent("mdm cli", () => {
  it("creates a token that enrols a device, lists it with its uses, and revokes it", async () => {
    const created = await mdm("tokens", "create", "--max-uses", "5", "--expires", "2h", "--label", "line 3", "--json")
    expect(created.code).toBe(0)
    const lines = created.stdout.trim().split("\n")
    expect(lines).toHaveLength(1)
    const token = JSON.parse(lines[0]!) as { id: string; token: string; expiresAt: string; maxUses: number }
    expect(token.maxUses).toBe(5)
    expect(Date.parse(token.expiresAt) - Date.now()).toBeGreaterThan(119 * 60_000)

    // The first run migrated the database: an engine on it accepts the token.
    engine = await startEngine(database)
    const device = await enrol(engine, token.token, "hw-cli")
    expect(device.deviceId).toMatch(/^dev_/)

    const revoked = await mdm("tokens", "revoke", token.id)
    expect([revoked.code, revoked.stdout.trim()]).toEqual([0, `revoked ${token.id}`])

    const listed = await mdm("tokens", "list", "--json")
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ id: token.id, label: "line 3", uses: 1, maxUses: 5, revokedAt: expect.any(String) })
    ])
    expect(listed.stdout).not.toContain(token.token.split(".")[1])
  })

  it("exits 2 with a message naming --expires when the duration is not one", async () => {
    const result = await mdm("tokens", "create", "--expires", "3x")
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--expires")
    expect(result.stdout).toBe("")
  })

  it("prints usage for --help", async () => {
    const result = await mdm("--help")
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^usage: npm run mdm/)
    expect(result.stdout).toContain("tokens create")
  })
})
