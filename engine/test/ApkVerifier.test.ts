/**
 * The TypeScript APK v2/v3 verifier against APKs signed by Debian's apksigner at test time, and
 * against `apksigner verify` on the same files: valid (RSA and EC, v2, v3, v2+v3, several digest
 * chunks), tampered content, tampered signature, wrong signer, unsigned, truncated, not a zip.
 */
import { Either } from "effect"
import { readFile, writeFile } from "node:fs/promises"
import { beforeAll, describe, expect, it } from "vitest"
import { type ApkVerificationError, contentDigest, verifyApk, type VerifiedApk } from "../src/releases/ApkVerifier.js"
import { parseManifest } from "../src/releases/internal/BinaryXml.js"
import { apksignerVerify, apkToolsAvailable, binaryManifest, fixtureApk, signingKey, signV2Here, tamperedCopy, writeZip } from "./support/ApkFixtures.js"

const toolsRequired = process.env["NEXMDM_TEST_REQUIRE_TOOLCHAINS"] === "1"
const tools = await apkToolsAvailable()
if (!tools && toolsRequired) throw new Error("apksigner/keytool missing but NEXMDM_TEST_REQUIRE_TOOLCHAINS=1")
if (!tools) console.warn("ApkVerifier tests skipped: apksigner and keytool (JDK) are not on PATH")

const verified = async (path: string, trusted?: ReadonlyArray<string>): Promise<VerifiedApk> => {
  const result = verifyApk(await readFile(path), trusted === undefined ? {} : { trustedSignerSha256: trusted })
  if (Either.isLeft(result)) throw new Error(`expected a valid APK, got ${result.left.code}: ${result.left.message}`)
  return result.right
}

const rejected = async (path: string, trusted?: ReadonlyArray<string>): Promise<ApkVerificationError> => {
  const result = verifyApk(await readFile(path), trusted === undefined ? {} : { trustedSignerSha256: trusted })
  if (Either.isRight(result)) throw new Error("expected the APK to be rejected")
  return result.left
}

describe("binary manifest", () => {
  it("reads package, versionCode and versionName back from generated AXML", () => {
    expect(parseManifest(binaryManifest({ packageName: "com.example.a", versionCode: 4711, versionName: "4.7.11-β" }))).toEqual({
      packageName: "com.example.a",
      versionCode: 4711,
      versionName: "4.7.11-β"
    })
  })

  it("answers with a message for bytes that are not binary XML", () => {
    expect(parseManifest(Buffer.from("<manifest package='x'/>"))).toMatch(/not binary XML/)
    expect(parseManifest(binaryManifest({ packageName: "com.example.a", versionCode: 1, versionName: "1" }).subarray(0, 60))).toEqual(
      expect.any(String)
    )
  })
})

describe.skipIf(!tools)("APK signature verification", () => {
  let rsa: { certSha256Hex: string }
  let ec: { certSha256Hex: string }
  beforeAll(async () => {
    ;[rsa, ec] = await Promise.all([signingKey("rsa"), signingKey("ec")])
  }, 60_000)

  it.each([
    { label: "RSA v2 only", spec: { key: "rsa", v2: true, v3: false }, schemes: [2], algorithm: "RSASSA-PKCS1-v1_5 with SHA2-256" },
    { label: "RSA v3 only", spec: { key: "rsa", v2: false, v3: true }, schemes: [3], algorithm: "RSASSA-PKCS1-v1_5 with SHA2-256" },
    { label: "RSA v2+v3", spec: { key: "rsa", v2: true, v3: true }, schemes: [2, 3], algorithm: "RSASSA-PKCS1-v1_5 with SHA2-256" },
    { label: "EC v2 only", spec: { key: "ec", v2: true, v3: false }, schemes: [2], algorithm: "ECDSA with SHA2-256" },
    { label: "EC v2+v3", spec: { key: "ec", v2: true, v3: true }, schemes: [2, 3], algorithm: "ECDSA with SHA2-256" },
    { label: "DSA v2 only", spec: { key: "dsa", v2: true, v3: false }, schemes: [2], algorithm: "DSA with SHA2-256" },
    { label: "RSA 4096 v2+v3", spec: { key: "rsa4096", v2: true, v3: true }, schemes: [2, 3], algorithm: "RSASSA-PKCS1-v1_5 with SHA2-512" },
    { label: "EC P-384 v2+v3", spec: { key: "ec384", v2: true, v3: true }, schemes: [2, 3], algorithm: "ECDSA with SHA2-512" },
    { label: "RSA v2+v3 over 3.5 MiB (4 digest chunks)", spec: { key: "rsa", assetBytes: 3.5 * 1024 * 1024 }, schemes: [2, 3], algorithm: "RSASSA-PKCS1-v1_5 with SHA2-256" }
  ] as const)("accepts a good APK ($label) and agrees with apksigner", async ({ spec, schemes, algorithm }) => {
    const path = await fixtureApk({ ...spec, versionCode: 42, versionName: "4.2" })
    const result = await verified(path)
    const reference = await apksignerVerify(path, spec.v2 === false ? 28 : 24)
    expect(reference.ok).toBe(true)
    expect(result.signerCertSha256Hex).toBe(reference.certSha256Hex)
    expect(result.signerCertSha256Hex).toBe((await signingKey(spec.key)).certSha256Hex)
    expect(result.schemes).toEqual(schemes)
    expect(result.algorithms).toEqual(schemes.map((scheme) => `v${scheme}: ${algorithm}`))
    expect(result).toMatchObject({ packageName: "com.nexmdm.agent", versionCode: 42, versionName: "4.2" })
    expect(result.sizeBytes).toBe((await readFile(path)).length)
  }, 60_000)

  it("verifies RSASSA-PSS signatures (which apksigner never makes), made here with node:crypto", async () => {
    const zip = writeZip([
      { name: "AndroidManifest.xml", data: binaryManifest({ packageName: "com.nexmdm.agent", versionCode: 77, versionName: "7.7" }), deflate: true },
      { name: "classes.dex", data: Buffer.alloc(5000, 1) }
    ])
    for (const algorithm of [
      { id: 0x0101, hash: "sha256", pssSalt: 32, name: "RSASSA-PSS with SHA2-256" },
      { id: 0x0102, hash: "sha512", pssSalt: 64, name: "RSASSA-PSS with SHA2-512" }
    ] as const) {
      const signed = await signV2Here(zip, algorithm, (sections) => contentDigest(algorithm.hash, sections))
      const result = await verified(signed.path)
      expect(result).toMatchObject({ versionCode: 77, schemes: [2], algorithms: [`v2: ${algorithm.name}`], signerCertSha256Hex: signed.certSha256Hex })
      // (No apksigner cross-check: Debian's build on JDK 17 lacks the "SHA256withRSA/PSS" provider.)
      const tampered = await tamperedCopy(signed.path, 100, `pss-${algorithm.id}`)
      expect((await rejected(tampered)).code).toBe("APK_DIGEST_MISMATCH")
      // A wrong salt length is a different signature scheme: refused.
      const wrongSalt = await signV2Here(zip, { ...algorithm, pssSalt: 20 }, (sections) => contentDigest(algorithm.hash, sections))
      expect((await rejected(wrongSalt.path)).code).toBe("APK_SIGNATURE_INVALID")
    }
  }, 60_000)

  it("accepts a pinned signer given with colons and upper case", async () => {
    const path = await fixtureApk({ versionCode: 42, versionName: "4.2" })
    const pin = rsa.certSha256Hex.toUpperCase().match(/../g)!.join(":")
    expect((await verified(path, [pin])).signerCertSha256Hex).toBe(rsa.certSha256Hex)
  }, 60_000)

  it("rejects a flipped byte in a zip entry as APK_DIGEST_MISMATCH, like apksigner", async () => {
    const path = await tamperedCopy(await fixtureApk({ versionCode: 42, versionName: "4.2" }), 200, "content")
    expect((await rejected(path)).code).toBe("APK_DIGEST_MISMATCH")
    expect((await apksignerVerify(path)).ok).toBe(false)
  }, 60_000)

  it("rejects a changed central directory as APK_DIGEST_MISMATCH", async () => {
    const original = await readFile(await fixtureApk({ key: "rsa", v2: true, v3: false, versionCode: 42, versionName: "4.2" }))
    const eocd = original.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]))
    const cd = original.readUInt32LE(eocd + 16)
    const bytes = Buffer.from(original)
    bytes[cd + 12] = bytes[cd + 12]! ^ 0x01 // modification time of the first entry
    const path = `${await fixtureApk({ key: "rsa", v2: true, v3: false, versionCode: 42, versionName: "4.2" })}.cd.apk`
    await writeFile(path, bytes)
    expect((await rejected(path)).code).toBe("APK_DIGEST_MISMATCH")
    expect((await apksignerVerify(path)).ok).toBe(false)
  }, 60_000)

  it("rejects a flipped byte in the signature as APK_SIGNATURE_INVALID, like apksigner", async () => {
    for (const spec of [{ v2: true, v3: false }, { v2: false, v3: true }] as const) {
      const good = await fixtureApk({ ...spec, versionCode: 42, versionName: "4.2" })
      const signatureLastByte = signatureOffset(await readFile(good), spec.v2 ? 0x7109871a : 0xf05368c0)
      const path = await tamperedCopy(good, signatureLastByte, `sig-v${spec.v2 ? 2 : 3}`)
      const error = await rejected(path)
      expect(error.code).toBe("APK_SIGNATURE_INVALID")
      expect((await apksignerVerify(path, spec.v2 ? 24 : 28)).ok).toBe(false)
    }
  }, 60_000)

  it("rejects a valid APK from another signer as APK_SIGNER_NOT_TRUSTED", async () => {
    const other = await fixtureApk({ key: "other-rsa", versionCode: 42, versionName: "4.2" })
    const error = await rejected(other, [rsa.certSha256Hex, ec.certSha256Hex])
    expect(error.code).toBe("APK_SIGNER_NOT_TRUSTED")
    // apksigner finds it validly signed: trust is our pin, not the signature.
    expect((await apksignerVerify(other)).ok).toBe(true)
  }, 60_000)

  it("rejects an unsigned zip as APK_SIGNATURE_MISSING, like apksigner", async () => {
    const path = await fixtureApk({ unsigned: true, versionCode: 42 })
    expect((await rejected(path)).code).toBe("APK_SIGNATURE_MISSING")
    expect((await apksignerVerify(path)).ok).toBe(false)
  }, 60_000)

  it("rejects a cut-short file as APK_TRUNCATED and random bytes as APK_NOT_ZIP", async () => {
    const bytes = await readFile(await fixtureApk({ versionCode: 42, versionName: "4.2" }))
    const truncated = `${await fixtureApk({ versionCode: 42, versionName: "4.2" })}.cut.apk`
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)))
    expect((await rejected(truncated)).code).toBe("APK_TRUNCATED")
    expect((await apksignerVerify(truncated)).ok).toBe(false)
    expect(Either.getLeft(verifyApk(Buffer.alloc(10))).pipe((e) => e._tag === "Some" && e.value.code)).toBe("APK_TRUNCATED")
    expect(Either.getLeft(verifyApk(Buffer.alloc(4096, 7))).pipe((e) => e._tag === "Some" && e.value.code)).toBe("APK_NOT_ZIP")
  }, 60_000)
})

/**
 * Offset of the last byte of the first signature of the first signer in the v2 or v3 block, found
 * by walking the APK Signing Block independently of the verifier.
 */
const signatureOffset = (bytes: Buffer, blockId: number) => {
  const eocd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]))
  const cd = bytes.readUInt32LE(eocd + 16)
  const blockSize = Number(bytes.readBigUInt64LE(cd - 24))
  let at = cd - blockSize - 8 + 8
  while (at < cd - 24) {
    const pairLength = Number(bytes.readBigUInt64LE(at))
    const id = bytes.readUInt32LE(at + 8)
    if (id === blockId) {
      let p = at + 12 + 4 + 4 // value: signers length, first signer length
      const signedDataLength = bytes.readUInt32LE(p)
      p += 4 + signedDataLength
      if (blockId === 0xf05368c0) p += 8 // min/max SDK
      p += 4 + 4 + 4 // signatures length, first signature length, algorithm id
      const signatureLength = bytes.readUInt32LE(p)
      return p + 4 + signatureLength - 1
    }
    at += 8 + pairLength
  }
  throw new Error(`block 0x${blockId.toString(16)} not found`)
}
