#!/usr/bin/env node
// Compiles the agent's `core` module (main and tests) with kotlinc from the npm package
// kotlin-compiler, without Gradle or an Android SDK, into android-agent/core/build/. kotlinc
// takes ~15 s per compile here, so each output is cached under a hash of its inputs (sources,
// compiler version, class path): a second run with nothing changed is instant.
//
//   node android-agent/scripts/build-core.mjs [--no-tests]   prints the runtime and test class paths
//
// Imported by scripts/suites/30-agent.mjs and engine/test/AgentCrossLanguage.test.ts.
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const agentDir = join(dirname(fileURLToPath(import.meta.url)), "..")
export const repoRoot = join(agentDir, "..")
const coreDir = join(agentDir, "core")
const buildDir = join(coreDir, "build")
const kotlinHome = process.env.NEXMDM_KOTLIN_HOME ?? join(repoRoot, "node_modules", "kotlin-compiler")
const javaLibs = "/usr/share/java"

/** Jars the core compiles against and runs with: Android's org.json API, OkHttp 3.13 + okio 1.16 (Debian). */
const mainLibs = ["json-android.jar", "okhttp.jar", "okio.jar"].map((jar) => join(javaLibs, jar))
const testLibs = ["junit4.jar", "hamcrest-core.jar"].map((jar) => join(javaLibs, jar))
const kotlinLib = (jar) => join(kotlinHome, "lib", jar)

const sourcesUnder = (dir) =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .map((name) => join(dir, String(name)))
        .filter((path) => path.endsWith(".kt") && statSync(path).isFile())
        .sort()
    : []

const hashOf = (parts, files) => {
  const hash = createHash("sha256")
  for (const part of parts) hash.update(`${part}\n`)
  for (const file of files) hash.update(`${relative(coreDir, file)}\n`).update(readFileSync(file))
  return hash.digest("hex")
}

/** Which toolchain pieces are missing (java, kotlinc, Debian jars); empty when everything is there. */
export const missingToolchain = () => {
  const missing = []
  if (spawnSync("java", ["-version"], { stdio: "ignore" }).status !== 0) missing.push("java (JDK 17)")
  if (!existsSync(join(kotlinHome, "bin", "kotlinc"))) missing.push(`kotlinc (npm package kotlin-compiler at ${kotlinHome})`)
  for (const jar of [...mainLibs, ...testLibs]) if (!existsSync(jar)) missing.push(`${jar} (Debian junit4, libandroid-json-org-java, libokhttp-java)`)
  return missing
}

const compile = (label, sources, classpath, output, hash) => {
  const stamp = `${output}.sha256`
  if (existsSync(output) && existsSync(stamp) && readFileSync(stamp, "utf8") === hash) return { cached: true }
  mkdirSync(buildDir, { recursive: true })
  rmSync(stamp, { force: true })
  const started = Date.now()
  const result = spawnSync(
    join(kotlinHome, "bin", "kotlinc"),
    [...sources, "-cp", classpath.join(":"), "-jvm-target", "17", "-nowarn", "-d", output],
    { encoding: "utf8", env: { ...process.env, JAVA_OPTS: process.env.JAVA_OPTS ?? "-Xmx1g" } }
  )
  if (result.status !== 0) {
    throw new Error(`kotlinc failed for ${label}:\n${result.stdout}\n${result.stderr}`)
  }
  writeFileSync(stamp, hash)
  return { cached: false, seconds: (Date.now() - started) / 1000 }
}

/** Test classes: every `*Test.kt` under src/test, named from its package and file name. */
const testClassesOf = (sources) =>
  sources
    .filter((file) => file.endsWith("Test.kt"))
    .map((file) => {
      const pkg = /^package\s+([\w.]+)/m.exec(readFileSync(file, "utf8"))?.[1]
      const name = file.split("/").pop().replace(/\.kt$/, "")
      return pkg ? `${pkg}.${name}` : name
    })

/**
 * Builds (or reuses) core/build/core.jar and core/build/core-tests.jar.
 * Returns the class paths to run the JVM runner and the JUnit tests.
 */
export const buildCore = ({ tests = true, log = console.log } = {}) => {
  const missing = missingToolchain()
  if (missing.length > 0) return { ok: false, missing }
  const kotlinVersion = readFileSync(join(kotlinHome, "package.json"), "utf8").match(/"version":\s*"([^"]+)"/)?.[1] ?? "?"
  const mainSources = sourcesUnder(join(coreDir, "src", "main", "kotlin"))
  const mainJar = join(buildDir, "core.jar")
  const mainHash = hashOf([kotlinVersion, ...mainLibs], mainSources)
  const main = compile("core (main)", mainSources, mainLibs, mainJar, mainHash)
  log(`agent core: main ${main.cached ? "cached" : `compiled in ${main.seconds.toFixed(1)} s`} (${mainSources.length} files)`)
  const runtimeClasspath = [mainJar, kotlinLib("kotlin-stdlib.jar"), ...mainLibs]
  if (!tests) return { ok: true, runtimeClasspath }

  const testSources = sourcesUnder(join(coreDir, "src", "test", "kotlin"))
  const testJar = join(buildDir, "core-tests.jar")
  const testCompileClasspath = [mainJar, kotlinLib("kotlin-test.jar"), kotlinLib("kotlin-test-junit.jar"), ...testLibs, ...mainLibs]
  const testHash = hashOf([kotlinVersion, mainHash, ...testCompileClasspath], testSources)
  const test = compile("core (tests)", testSources, testCompileClasspath, testJar, testHash)
  log(`agent core: tests ${test.cached ? "cached" : `compiled in ${test.seconds.toFixed(1)} s`} (${testSources.length} files)`)
  return {
    ok: true,
    runtimeClasspath,
    testClasspath: [testJar, ...testCompileClasspath, kotlinLib("kotlin-stdlib.jar")],
    testClasses: testClassesOf(testSources)
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = buildCore({ tests: !process.argv.includes("--no-tests") })
  if (!result.ok) {
    console.error(`agent core: toolchain missing: ${result.missing.join(", ")}`)
    process.exit(1)
  }
  console.log(`runtime class path: ${result.runtimeClasspath.join(":")}`)
  if (result.testClasspath) console.log(`test class path: ${result.testClasspath.join(":")}`)
}
