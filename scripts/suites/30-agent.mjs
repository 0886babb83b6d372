// The Kotlin agent core (android-agent/core): compile with kotlinc (cached by source hash), then run
// its JUnit tests, which include every vector of protocol/vectors. Without java/kotlinc/the Debian
// jars the suite is skipped with a message, unless NEXMDM_TEST_REQUIRE_TOOLCHAINS=1 (CI): then it fails.
import { spawnSync } from "node:child_process"
import { buildCore, repoRoot } from "../../android-agent/scripts/build-core.mjs"

export default async () => {
  console.log("== agent core (Kotlin, JUnit)")
  const name = "agent"
  let build
  try {
    build = buildCore({ tests: true })
  } catch (error) {
    console.error(String(error?.message ?? error))
    return { name, passed: 0, failed: 1, skipped: 0, note: "kotlinc failed" }
  }
  if (!build.ok) {
    const note = `toolchain missing: ${build.missing.join(", ")}`
    if (process.env.NEXMDM_TEST_REQUIRE_TOOLCHAINS === "1") return { name, passed: 0, failed: 1, skipped: 0, note }
    console.log(`skipped: ${note}`)
    return { name, passed: 0, failed: 0, skipped: 1, note }
  }
  const result = spawnSync("java", [`-Dnexmdm.repo=${repoRoot}`, "-cp", build.testClasspath.join(":"), "org.junit.runner.JUnitCore", ...build.testClasses], {
    encoding: "utf8",
    cwd: repoRoot
  })
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`
  process.stdout.write(output)
  const ok = /^OK \((\d+) tests?\)/m.exec(output)
  const failedRun = /^Tests run: (\d+),\s+Failures: (\d+)/m.exec(output)
  const vectors = [...output.matchAll(/^\.*vectors (\S+(?: \w+)?): (\d+\/\d+) passed/gm)].map((m) => `${m[1]} ${m[2]}`)
  const unchecked = [...output.matchAll(/^\.*vectors (\S+): not checked by the agent/gm)].map((m) => m[1])
  const note =
    vectors.length > 0 ? `vectors: ${vectors.join(", ")}${unchecked.length > 0 ? `; NOT checked: ${unchecked.join(", ")}` : ""}` : undefined
  if (ok) return { name, passed: Number(ok[1]), failed: result.status === 0 ? 0 : 1, skipped: 0, ...(note ? { note } : {}) }
  if (failedRun) {
    const failures = Number(failedRun[2])
    return { name, passed: Number(failedRun[1]) - failures, failed: Math.max(failures, 1), skipped: 0, ...(note ? { note } : {}) }
  }
  return { name, passed: 0, failed: 1, skipped: 0, note: `JUnit did not report (exit ${result.status})` }
}
