import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"

// Each CLI run starts node and compiles TypeScript through tsx: seconds each on a busy 2-core machine.
vi.setConfig({ testTimeout: 180_000 })
import { ApiClient, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { hasServer, type TestDatabase } from "./support/TestDatabase.js"
import { openDatabase } from "./support/TestEngine.js"

const root = fileURLToPath(new URL("../../", import.meta.url))

// Like Cli.test.ts: the CLI child process needs a database URL of its own (a server database).
const server = await hasServer()
if (!server) console.warn("AdminCli.test.ts skipped: no PostgreSQL server for the CLI child process (embedded test database)")

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin | undefined

beforeAll(async () => {
  if (!server) return
  ;({ database, release: releaseDatabase } = await openDatabase())
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

/** Runs the CLI with `stdin` piped in. */
const mdm = (stdin: string, ...args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "engine/src/cli.ts", ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: database.url, NEXMDM_ARGON2_PASSWORD_MEMORY_KIB: "1024", NEXMDM_ARGON2_PASSWORD_TIME_COST: "1" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(stdin)
  })

describe.skipIf(!server).concurrent("mdm users create", () => {
  it("creates the first owner with the password from standard input; the owner can sign in", async () => {
    const created = await mdm("first owner password\n", "users", "create", "--owner", "--email", "Root@Example.com", "--password-stdin", "--json")
    expect(created.code).toBe(0)
    expect(JSON.parse(created.stdout)).toMatchObject({ email: "root@example.com", role: "owner", id: expect.stringMatching(/^usr_/) })
    expect(created.stdout + created.stderr).not.toContain("first owner password")
    admin = await startAdmin(database)
    const { session } = await ApiClient.fresh(admin).login("root@example.com", "first owner password")
    expect(session.user.role).toBe("owner")
    const audit = await ApiClient.fresh(admin).withToken(session.accessToken).get("/api/v1/audit?action=user.create")
    expect(audit.body.items[0]).toMatchObject({ actorKind: "system", actorLabel: "cli", outcome: "success" })
  })

  it("refuses a short password, a missing --password-stdin and a bad role with exit code 2", async () => {
    const [short, argv, role] = await Promise.all([
      mdm("short\n", "users", "create", "--email", "a@example.com", "--password-stdin"),
      mdm("", "users", "create", "--email", "a@example.com"),
      mdm("long enough password\n", "users", "create", "--email", "a@example.com", "--role", "emperor", "--password-stdin")
    ])
    expect([short.code, short.stderr.trim()]).toEqual([2, "users create: the password must have 12 to 256 characters"])
    expect(argv.code).toBe(2)
    expect(argv.stderr).toContain("--password-stdin")
    expect(role.code).toBe(2)
  })
})
