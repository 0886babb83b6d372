/**
 * Signed APK fixtures built at test time: a zip written here (binary AndroidManifest.xml, a fake
 * classes.dex, optionally a large asset so the content digest spans several 1 MiB chunks), keys made
 * with the JDK's keytool and signatures by Debian's apksigner. Everything lives in one temporary folder
 * per test process, and each distinct fixture is built once.
 */
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { readFile, writeFile, access } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { crc32, deflateRawSync } from "node:zlib"

const run = promisify(execFile)

/** Whether keytool and apksigner are on PATH (CI requires them; a bare machine skips). */
export const apkToolsAvailable = async () => {
  try {
    await run("apksigner", ["--version"])
    await run("keytool", ["-help"])
    return true
  } catch {
    return false
  }
}

// --- Android binary XML (enough for a manifest) --------------------------------------------------------

const ANDROID_NS = "http://schemas.android.com/apk/res/android"

interface Attribute {
  readonly name: string
  /** Framework attribute id (android:...), or undefined for a plain attribute like `package`. */
  readonly resourceId?: number
  readonly value: string | number
}

/** AXML for `<manifest package versionCode versionName><uses-sdk minSdkVersion/></manifest>`, UTF-16 strings. */
export const binaryManifest = (options: { readonly packageName: string; readonly versionCode: number; readonly versionName: string; readonly minSdk?: number }) => {
  // Attribute names with resource ids come first: the resource map is indexed like the string pool.
  const resourceNames: Array<[string, number]> = [
    ["versionCode", 0x0101021b],
    ["versionName", 0x0101021c],
    ["minSdkVersion", 0x0101020c]
  ]
  const strings: Array<string> = resourceNames.map(([name]) => name)
  const index = (text: string) => {
    let at = strings.indexOf(text)
    if (at < 0) at = strings.push(text) - 1
    return at
  }
  index("android")
  index(ANDROID_NS)

  const u16 = (n: number) => {
    const b = Buffer.alloc(2)
    b.writeUInt16LE(n)
    return b
  }
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n >>> 0)
    return b
  }
  const chunk = (type: number, headerSize: number, body: Buffer) =>
    Buffer.concat([u16(type), u16(headerSize), u32(8 + body.length), body])
  const NONE = 0xffffffff

  const attribute = (attr: Attribute) => {
    const ns = attr.resourceId === undefined ? NONE : index(ANDROID_NS)
    const name = index(attr.name)
    if (typeof attr.value === "string") {
      const value = index(attr.value)
      return Buffer.concat([u32(ns), u32(name), u32(value), u16(8), Buffer.from([0, 0x03]), u32(value)])
    }
    return Buffer.concat([u32(ns), u32(name), u32(NONE), u16(8), Buffer.from([0, 0x10]), u32(attr.value)])
  }
  const startElement = (name: string, attributes: ReadonlyArray<Attribute>) => {
    const body = Buffer.concat([
      u32(1), // line
      u32(NONE), // comment
      u32(NONE), // namespace
      u32(index(name)),
      u16(20), // attributeStart
      u16(20), // attributeSize
      u16(attributes.length),
      u16(0),
      u16(0),
      u16(0),
      ...attributes.map(attribute)
    ])
    return chunk(0x0102, 16, body)
  }
  const endElement = (name: string) => chunk(0x0103, 16, Buffer.concat([u32(1), u32(NONE), u32(NONE), u32(index(name))]))
  const namespace = (type: number) => chunk(type, 16, Buffer.concat([u32(1), u32(NONE), u32(index("android")), u32(index(ANDROID_NS))]))

  const tree = Buffer.concat([
    namespace(0x0100),
    startElement("manifest", [
      { name: "versionCode", resourceId: 0x0101021b, value: options.versionCode },
      { name: "versionName", resourceId: 0x0101021c, value: options.versionName },
      { name: "package", value: options.packageName }
    ]),
    startElement("uses-sdk", [{ name: "minSdkVersion", resourceId: 0x0101020c, value: options.minSdk ?? 24 }]),
    endElement("uses-sdk"),
    endElement("manifest"),
    namespace(0x0101)
  ])

  const encoded = strings.map((text) => Buffer.concat([u16(text.length), Buffer.from(text, "utf16le"), u16(0)]))
  const offsets: Array<number> = []
  let position = 0
  for (const entry of encoded) {
    offsets.push(position)
    position += entry.length
  }
  let data = Buffer.concat(encoded)
  if (data.length % 4 !== 0) data = Buffer.concat([data, Buffer.alloc(4 - (data.length % 4))])
  const poolHeaderSize = 28
  const pool = chunk(
    0x0001,
    poolHeaderSize,
    Buffer.concat([u32(strings.length), u32(0), u32(0), u32(poolHeaderSize + strings.length * 4), u32(0), ...offsets.map(u32), data])
  )
  const resourceMap = chunk(0x0180, 8, Buffer.concat(resourceNames.map(([, id]) => u32(id))))
  return chunk(0x0003, 8, Buffer.concat([pool, resourceMap, tree]))
}

// --- zip -------------------------------------------------------------------------------------------------

export interface ZipEntry {
  readonly name: string
  readonly data: Buffer
  readonly deflate?: boolean
}

/** A plain zip (no data descriptors, DOS date 1980-01-01), entries stored or deflated. */
export const writeZip = (entries: ReadonlyArray<ZipEntry>) => {
  const locals: Array<Buffer> = []
  const centrals: Array<Buffer> = []
  let offset = 0
  for (const entry of entries) {
    const name = Buffer.from(entry.name, "utf8")
    const stored = entry.deflate === true ? deflateRawSync(entry.data) : entry.data
    const method = entry.deflate === true ? 8 : 0
    const crc = crc32(entry.data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(method, 8)
    local.writeUInt16LE(0x21, 12) // date: 1980-01-01
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(stored.length, 18)
    local.writeUInt32LE(entry.data.length, 22)
    local.writeUInt16LE(name.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(20, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(method, 10)
    central.writeUInt16LE(0x21, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(stored.length, 20)
    central.writeUInt32LE(entry.data.length, 24)
    central.writeUInt16LE(name.length, 28)
    central.writeUInt32LE(offset, 42)
    locals.push(local, name, stored)
    centrals.push(central, name)
    offset += local.length + name.length + stored.length
  }
  const centralDirectory = Buffer.concat(centrals)
  const eocd = Buffer.alloc(22)
  eocd.writeUInt32LE(0x06054b50, 0)
  eocd.writeUInt16LE(entries.length, 8)
  eocd.writeUInt16LE(entries.length, 10)
  eocd.writeUInt32LE(centralDirectory.length, 12)
  eocd.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, centralDirectory, eocd])
}

// --- keys and signing ------------------------------------------------------------------------------------

let folder: string | undefined
const workDir = () => (folder ??= mkdtempSync(join(tmpdir(), "nexmdm-apk-")))

/** apksigner picks SHA-512 digests for RSA keys over 3072 bits and EC keys over 256 bits. */
export type KeyName = "rsa" | "ec" | "dsa" | "other-rsa" | "rsa4096" | "ec384"
const keyAlgorithms: Record<KeyName, ReadonlyArray<string>> = {
  rsa: ["-keyalg", "RSA", "-keysize", "2048"],
  "other-rsa": ["-keyalg", "RSA", "-keysize", "2048"],
  ec: ["-keyalg", "EC", "-groupname", "secp256r1"],
  dsa: ["-keyalg", "DSA", "-keysize", "2048"],
  rsa4096: ["-keyalg", "RSA", "-keysize", "4096"],
  ec384: ["-keyalg", "EC", "-groupname", "secp384r1"]
}
const STORE_PASS = "fixture-pass"

export interface SigningKey {
  readonly keystore: string
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly certSha256Hex: string
}

const keys = new Map<KeyName, Promise<SigningKey>>()

/** A PKCS#12 keystore with one key pair and self-signed certificate (made once per process). */
export const signingKey = (name: KeyName): Promise<SigningKey> => {
  let key = keys.get(name)
  if (key === undefined) {
    key = (async () => {
      const keystore = join(workDir(), `${name}.p12`)
      await run("keytool", [
        "-genkeypair", "-keystore", keystore, "-storetype", "PKCS12", "-storepass", STORE_PASS, "-keypass", STORE_PASS,
        "-alias", "agent", ...keyAlgorithms[name], "-validity", "3650", "-dname", `CN=NexMDM fixture ${name}`
      ])
      const der = join(workDir(), `${name}.der`)
      await run("keytool", ["-exportcert", "-keystore", keystore, "-storepass", STORE_PASS, "-alias", "agent", "-file", der])
      return { keystore, certSha256Hex: createHash("sha256").update(await readFile(der)).digest("hex") }
    })()
    keys.set(name, key)
  }
  return key
}

export interface FixtureSpec {
  readonly key?: KeyName
  readonly v2?: boolean
  readonly v3?: boolean
  readonly packageName?: string
  readonly versionCode?: number
  readonly versionName?: string
  /** Bytes of an extra stored asset, to make the APK span several digest chunks. */
  readonly assetBytes?: number
  /** Leave it unsigned (a plain zip). */
  readonly unsigned?: boolean
}

const built = new Map<string, Promise<string>>()

/** The path of an APK built (and signed) to `spec`; the same spec returns the same file. */
export const fixtureApk = (spec: FixtureSpec = {}): Promise<string> => {
  const full = {
    key: spec.key ?? "rsa",
    v2: spec.v2 ?? true,
    v3: spec.v3 ?? true,
    packageName: spec.packageName ?? "com.nexmdm.agent",
    versionCode: spec.versionCode ?? 1,
    versionName: spec.versionName ?? `1.0.${spec.versionCode ?? 1}`,
    assetBytes: spec.assetBytes ?? 0,
    unsigned: spec.unsigned ?? false
  }
  const id = createHash("sha256").update(JSON.stringify(full)).digest("hex").slice(0, 16)
  let apk = built.get(id)
  if (apk === undefined) {
    apk = (async () => {
      const entries: Array<ZipEntry> = [
        { name: "AndroidManifest.xml", data: binaryManifest({ ...full, minSdk: full.v2 ? 24 : 28 }), deflate: true },
        { name: "classes.dex", data: Buffer.concat([Buffer.from("dex\n035\0"), randomBytes(4096)]), deflate: true },
        { name: "res/raw/version.txt", data: Buffer.from(`${full.versionName}\n`) }
      ]
      if (full.assetBytes > 0) entries.push({ name: "assets/payload.bin", data: randomBytes(full.assetBytes) })
      const unsignedPath = join(workDir(), `${id}-unsigned.zip`)
      await writeFile(unsignedPath, writeZip(entries))
      if (full.unsigned) return unsignedPath
      const out = join(workDir(), `${id}.apk`)
      const key = await signingKey(full.key)
      await run("apksigner", [
        "sign", "--ks", key.keystore, "--ks-pass", `pass:${STORE_PASS}`, "--ks-key-alias", "agent",
        // v3 alone needs API 28: older platforms would find no signature they understand.
        "--min-sdk-version", full.v2 ? "24" : "28",
        "--v1-signing-enabled", "false",
        "--v2-signing-enabled", String(full.v2),
        "--v3-signing-enabled", String(full.v3),
        "--v4-signing-enabled", "false",
        "--out", out, unsignedPath
      ])
      await access(out)
      return out
    })()
    built.set(id, apk)
  }
  return apk
}

/** What `apksigner verify` says: whether it verifies, and the signer's certificate SHA-256. */
export const apksignerVerify = async (apk: string, minSdk = 24) => {
  try {
    const { stdout } = await run("apksigner", ["verify", "--min-sdk-version", String(minSdk), "--print-certs", "--verbose", apk])
    const sha = /Signer #1 certificate SHA-256 digest: ([0-9a-f]{64})/.exec(stdout)?.[1]
    return { ok: true as const, certSha256Hex: sha, output: stdout }
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string }
    return { ok: false as const, certSha256Hex: undefined, output: `${failure.stdout ?? ""}${failure.stderr ?? ""}` }
  }
}

/** A copy of `apk` with one byte flipped at `offset` (negative = from the end), written next to it. */
export const tamperedCopy = async (apk: string, offset: number, label: string) => {
  const bytes = Buffer.from(await readFile(apk))
  const at = offset < 0 ? bytes.length + offset : offset
  bytes[at] = bytes[at]! ^ 0xff
  const out = `${apk}.${label}.apk`
  await writeFile(out, bytes)
  return out
}

// --- a v2 signature made here (for algorithms apksigner never picks, e.g. RSASSA-PSS) ------------------

/**
 * Signs `zip` with an APK Signature Scheme v2 block built here with node:crypto (certificate and key
 * from openssl): `algorithm` is the signature algorithm id (0x0101 = RSASSA-PSS with SHA2-256), the
 * content digest is computed by `digest` over the three sections.
 */
export const signV2Here = async (
  zip: Buffer,
  algorithm: { readonly id: number; readonly hash: "sha256" | "sha512"; readonly pssSalt: number },
  digest: (sections: ReadonlyArray<Buffer>) => Buffer
) => {
  const { createPrivateKey, sign, constants, X509Certificate } = await import("node:crypto")
  const dir = workDir()
  const keyPath = join(dir, "pss-key.pem")
  const certPath = join(dir, "pss-cert.pem")
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-subj", "/CN=NexMDM PSS fixture", "-days", "30"])
  const certificate = new X509Certificate(await readFile(certPath))
  const certDer = certificate.raw
  const key = createPrivateKey(await readFile(keyPath))

  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  const u64 = (n: number) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(BigInt(n))
    return b
  }
  const prefixed = (...parts: ReadonlyArray<Buffer>) => {
    const body = Buffer.concat(parts)
    return Buffer.concat([u32(body.length), body])
  }

  const eocdOffset = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]))
  const cdOffset = zip.readUInt32LE(eocdOffset + 16)
  const entries = zip.subarray(0, cdOffset)
  const centralDirectory = zip.subarray(cdOffset, eocdOffset)
  const eocd = Buffer.from(zip.subarray(eocdOffset))
  const contentDigest = digest([entries, centralDirectory, eocd])

  const signedData = Buffer.concat([
    prefixed(prefixed(u32(algorithm.id), prefixed(contentDigest))),
    prefixed(prefixed(certDer)),
    prefixed()
  ])
  const signature = sign(algorithm.hash, signedData, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.pssSalt })
  const publicKey = certificate.publicKey.export({ format: "der", type: "spki" })
  const signer = Buffer.concat([prefixed(signedData), prefixed(prefixed(u32(algorithm.id), prefixed(signature))), prefixed(publicKey)])
  const value = prefixed(prefixed(signer))
  const pair = Buffer.concat([u64(4 + value.length), u32(0x7109871a), value])
  const size = pair.length + 8 + 16
  const block = Buffer.concat([u64(size), pair, u64(size), Buffer.from("APK Sig Block 42", "latin1")])
  eocd.writeUInt32LE(cdOffset + block.length, 16)
  const out = join(dir, `pss-${algorithm.id.toString(16)}.apk`)
  await writeFile(out, Buffer.concat([entries, block, centralDirectory, eocd]))
  return { path: out, certSha256Hex: createHash("sha256").update(certDer).digest("hex") }
}
