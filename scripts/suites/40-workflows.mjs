// The GitHub workflow files (.github/workflows/*.yml): actionlint when it is on PATH, and always a
// structural check of our own. Each file must parse as YAML and have `name`, `on`, `permissions` and
// `jobs`; each job `runs-on` and steps; each step exactly one of `uses` / `run`; every action pinned
// to a full commit SHA or an exact version (never a branch or a bare major tag); every `${{ }}`
// closed and naming a known context; every secret and variable it reads listed in the file's header
// comment (where whoever sets the repository up looks). The checker first proves on broken samples
// that it catches each of these.
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import YAML from "yaml"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const workflowsDir = join(root, ".github", "workflows")

const contexts = new Set(["github", "env", "secrets", "vars", "inputs", "matrix", "steps", "runner", "job", "jobs", "needs", "strategy"])
const builtinFunctions = new Set(["success", "failure", "always", "cancelled", "contains", "startsWith", "endsWith", "format", "join", "toJSON", "fromJSON", "hashFiles"])
const pinned = /^[\w.-]+\/[\w./-]+@([0-9a-f]{40}|v\d+\.\d+\.\d+)$/
const dockerOrLocal = /^(docker:\/\/|\.\/)/

/** Every string in a parsed YAML value, with a path for messages. */
const strings = (value, path, out = []) => {
  if (typeof value === "string") out.push([path, value])
  else if (Array.isArray(value)) value.forEach((item, index) => strings(item, `${path}[${index}]`, out))
  else if (value !== null && typeof value === "object") for (const [key, item] of Object.entries(value)) strings(item, `${path}.${key}`, out)
  return out
}

/** Problems with one workflow file's text (empty when it is fine). */
export const checkWorkflow = (text) => {
  const problems = []
  let doc
  try {
    doc = YAML.parse(text, { strict: true, uniqueKeys: true })
  } catch (error) {
    return [`YAML: ${String(error?.message ?? error).split("\n")[0]}`]
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return ["not a mapping"]
  for (const key of ["name", "on", "permissions", "jobs"]) if (!(key in doc)) problems.push(`missing top-level "${key}"`)
  const allowedTop = new Set(["name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"])
  for (const key of Object.keys(doc)) if (!allowedTop.has(key)) problems.push(`unknown top-level key "${key}"`)

  const jobs = doc.jobs
  if (jobs === null || typeof jobs !== "object" || Object.keys(jobs ?? {}).length === 0) problems.push("jobs: none")
  for (const [id, job] of Object.entries(jobs ?? {})) {
    if (job === null || typeof job !== "object") {
      problems.push(`jobs.${id}: not a mapping`)
      continue
    }
    if (typeof job.uses === "string") continue // a reusable workflow call
    if (typeof job["runs-on"] !== "string" && !Array.isArray(job["runs-on"])) problems.push(`jobs.${id}: missing runs-on`)
    if (!Array.isArray(job.steps) || job.steps.length === 0) {
      problems.push(`jobs.${id}: no steps`)
      continue
    }
    job.steps.forEach((step, index) => {
      const where = `jobs.${id}.steps[${index}]${step?.name ? ` (${step.name})` : ""}`
      if (step === null || typeof step !== "object") return problems.push(`${where}: not a mapping`)
      const hasUses = typeof step.uses === "string"
      const hasRun = typeof step.run === "string"
      if (hasUses === hasRun) problems.push(`${where}: needs exactly one of "uses" and "run"`)
      if (hasUses && !pinned.test(step.uses) && !dockerOrLocal.test(step.uses)) {
        problems.push(`${where}: action "${step.uses}" is not pinned to a commit SHA or an exact vX.Y.Z`)
      }
      if (hasRun && "with" in step) problems.push(`${where}: "with" only applies to "uses" steps`)
    })
  }

  // Expressions: closed, and naming only known contexts; secrets and variables listed in the header.
  const header = text.split("\n").filter((line) => line.startsWith("#")).join("\n")
  const referenced = new Set()
  for (const [path, value] of strings(doc, "")) {
    let at = 0
    for (;;) {
      const open = value.indexOf("${{", at)
      if (open < 0) break
      const close = value.indexOf("}}", open + 3)
      if (close < 0) {
        problems.push(`${path}: "\${{" without "}}"`)
        break
      }
      const expression = value.slice(open + 3, close)
      if (expression.includes("${{")) problems.push(`${path}: nested "\${{"`)
      const withoutStrings = expression.replace(/'[^']*'/g, "''")
      for (const match of withoutStrings.matchAll(/(?<![\w.-])([A-Za-z_][\w-]*)(?=\s*[.([])/g)) {
        const name = match[1]
        if (!contexts.has(name) && !builtinFunctions.has(name)) problems.push(`${path}: unknown context or function "${name}"`)
      }
      for (const match of withoutStrings.matchAll(/\b(secrets|vars)\.([A-Za-z_][\w]*)/g)) referenced.add(`${match[1]}.${match[2]}`)
      at = close + 2
    }
  }
  for (const reference of referenced) {
    const name = reference.split(".")[1]
    if (name === "GITHUB_TOKEN") continue
    if (!new RegExp(`\\b${name}\\b`).test(header)) problems.push(`${reference} is used but not listed in the header comment`)
  }
  return problems
}

/** Broken samples the checker must flag, each with the problem it must report. */
const samples = [
  ["YAML that does not parse", "name: x\non: [push\n", /YAML/],
  ["a step with both uses and run", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4.2.2\n        run: echo\n", /exactly one/],
  ["a floating action tag", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n", /not pinned/],
  ["an unclosed expression", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.sha\n", /without/],
  ["an unlisted secret", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ secrets.HIDDEN }}\n", /HIDDEN is used/],
  ["a job without runs-on", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    steps:\n      - run: echo\n", /runs-on/],
  ["no permissions", "name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo\n", /permissions/],
  ["an unknown context", "name: x\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ secret.X }}\n", /unknown context/]
]

export default async () => {
  console.log("== workflows (.github/workflows)")
  const name = "workflows"
  let passed = 0
  let failed = 0
  const notes = []

  for (const [label, text, expected] of samples) {
    const problems = checkWorkflow(text)
    if (problems.some((problem) => expected.test(problem))) passed++
    else {
      failed++
      console.log(`checker missed ${label}: ${JSON.stringify(problems)}`)
    }
  }

  let files = []
  try {
    files = readdirSync(workflowsDir).filter((file) => /\.ya?ml$/.test(file)).sort()
  } catch {
    files = []
  }
  if (files.length === 0) {
    failed++
    notes.push("no workflow files")
  }
  for (const file of files) {
    const problems = checkWorkflow(readFileSync(join(workflowsDir, file), "utf8"))
    if (problems.length === 0) {
      passed++
      console.log(`${file}: ok`)
    } else {
      failed++
      console.log(`${file}:\n  ${problems.join("\n  ")}`)
    }
  }

  const actionlint = spawnSync("actionlint", ["-no-color"], { cwd: root, encoding: "utf8" })
  if (actionlint.error === undefined) {
    process.stdout.write(`${actionlint.stdout}${actionlint.stderr}`)
    if (actionlint.status === 0) passed++
    else failed++
    notes.push("actionlint ran")
  } else notes.push("actionlint not on PATH: schema check only")

  return { name, passed, failed, skipped: 0, note: notes.join("; ") }
}
