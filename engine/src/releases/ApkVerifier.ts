/**
 * Verifies an APK the way Android does before installing it, in TypeScript with node:crypto only:
 * the APK Signature Scheme v2 / v3 block (signature over the signed data with the signer's key, and
 * the chunked content digest recomputed over the whole file), then reads package name and version
 * from the binary AndroidManifest.xml. Pure: bytes in, a result or a tagged error with a stable code.
 *
 * Layout (https://source.android.com/docs/security/features/apksigning/v2):
 *   [zip entries][APK Signing Block][central directory][end of central directory]
 * The content digest covers sections 1, 3 and 4, with the EOCD's central-directory offset rewritten
 * to the start of the signing block (the block itself cannot sign itself).
 */
import { createHash, createPublicKey, type KeyObject, verify as verifySignature, X509Certificate, constants as cryptoConstants } from "node:crypto"
import { inflateRawSync } from "node:zlib"
import { Data, Either } from "effect"
import { parseManifest } from "./internal/BinaryXml.js"

// --- errors -----------------------------------------------------------------------------------------

/** Shorter than a zip can be, or a structure points past the end. */
export class ApkTruncated extends Data.TaggedError("ApkTruncated")<{ readonly message: string }> {
  readonly code = "APK_TRUNCATED"
}
/** Not a zip: no end-of-central-directory record, or an inconsistent one. */
export class ApkNotZip extends Data.TaggedError("ApkNotZip")<{ readonly message: string }> {
  readonly code = "APK_NOT_ZIP"
}
/** No APK Signing Block, or one without a v2 / v3 signature (an unsigned or v1-only APK). */
export class ApkSignatureMissing extends Data.TaggedError("ApkSignatureMissing")<{ readonly message: string }> {
  readonly code = "APK_SIGNATURE_MISSING"
}
/** The signing block or a signer in it does not parse. */
export class ApkSignatureMalformed extends Data.TaggedError("ApkSignatureMalformed")<{ readonly message: string }> {
  readonly code = "APK_SIGNATURE_MALFORMED"
}
/** A signature over the signed data does not verify with the signer's key (tampered signed data or signature). */
export class ApkSignatureInvalid extends Data.TaggedError("ApkSignatureInvalid")<{ readonly message: string; readonly scheme: 2 | 3 }> {
  readonly code = "APK_SIGNATURE_INVALID"
}
/** The file's content does not match the signed digest (tampered entries, central directory or EOCD). */
export class ApkDigestMismatch extends Data.TaggedError("ApkDigestMismatch")<{ readonly message: string; readonly scheme: 2 | 3 }> {
  readonly code = "APK_DIGEST_MISMATCH"
}
/** Only signature algorithms this verifier does not implement (e.g. verity-only). */
export class ApkUnsupportedAlgorithm extends Data.TaggedError("ApkUnsupportedAlgorithm")<{ readonly message: string }> {
  readonly code = "APK_UNSUPPORTED_ALGORITHM"
}
/** The v2 and v3 blocks were made by different signers, or a v3 signer's key is not its certificate's. */
export class ApkSignerMismatch extends Data.TaggedError("ApkSignerMismatch")<{ readonly message: string }> {
  readonly code = "APK_SIGNER_MISMATCH"
}
/** Signed correctly, but not by a certificate the caller trusts. */
export class ApkSignerNotTrusted extends Data.TaggedError("ApkSignerNotTrusted")<{ readonly message: string; readonly signerCertSha256Hex: string }> {
  readonly code = "APK_SIGNER_NOT_TRUSTED"
}
/** AndroidManifest.xml missing or not readable binary XML, or without package / versionCode. */
export class ApkManifestInvalid extends Data.TaggedError("ApkManifestInvalid")<{ readonly message: string }> {
  readonly code = "APK_MANIFEST_INVALID"
}

export type ApkVerificationError =
  | ApkTruncated
  | ApkNotZip
  | ApkSignatureMissing
  | ApkSignatureMalformed
  | ApkSignatureInvalid
  | ApkDigestMismatch
  | ApkUnsupportedAlgorithm
  | ApkSignerMismatch
  | ApkSignerNotTrusted
  | ApkManifestInvalid

export interface VerifiedApk {
  readonly packageName: string
  readonly versionCode: number
  readonly versionName: string
  /** SHA-256 of the first signer's DER certificate, lower-case hex (what `apksigner verify --print-certs` shows). */
  readonly signerCertSha256Hex: string
  /** The schemes whose blocks were present and verified. */
  readonly schemes: ReadonlyArray<2 | 3>
  /** The signature algorithm verified for each scheme's signer, e.g. "v3: ECDSA with SHA2-256". */
  readonly algorithms: ReadonlyArray<string>
  readonly sha256Hex: string
  readonly sizeBytes: number
}

// --- byte reading -------------------------------------------------------------------------------------

/** Thrown inside the parser only; turned into a tagged error at the boundary of `verifyApk`. */
class Failure {
  constructor(readonly error: ApkVerificationError) {}
}
const fail = (error: ApkVerificationError): never => {
  throw new Failure(error)
}
const malformed = (message: string) => fail(new ApkSignatureMalformed({ message }))

/** A cursor over a slice; every read is bounds-checked and a short read is "malformed". */
class Reader {
  private position = 0
  constructor(private readonly bytes: Buffer, private readonly what: string) {}
  get remaining() {
    return this.bytes.length - this.position
  }
  private need(n: number) {
    if (n < 0 || this.position + n > this.bytes.length) malformed(`${this.what}: needs ${n} bytes at ${this.position}, has ${this.remaining}`)
  }
  u32() {
    this.need(4)
    const value = this.bytes.readUInt32LE(this.position)
    this.position += 4
    return value
  }
  u64() {
    this.need(8)
    const value = this.bytes.readBigUInt64LE(this.position)
    this.position += 8
    return value
  }
  take(n: number) {
    this.need(n)
    const slice = this.bytes.subarray(this.position, this.position + n)
    this.position += n
    return slice
  }
  /** uint32 length, then that many bytes. */
  prefixed(what: string) {
    return new Reader(this.take(this.u32()), what)
  }
  prefixedBytes() {
    return this.take(this.u32())
  }
  rest() {
    return this.take(this.remaining)
  }
  /** A sequence of length-prefixed items until the end. */
  items(what: string) {
    const out: Array<Reader> = []
    while (this.remaining > 0) out.push(this.prefixed(what))
    return out
  }
}

// --- zip structure ---------------------------------------------------------------------------------

const EOCD_SIGNATURE = 0x06054b50
const EOCD_MIN = 22
const CENTRAL_SIGNATURE = 0x02014b50
const LOCAL_SIGNATURE = 0x04034b50

interface ZipLayout {
  readonly eocdOffset: number
  readonly centralDirectoryOffset: number
  readonly centralDirectorySize: number
  readonly entryCount: number
}

const findEocd = (apk: Buffer): ZipLayout => {
  if (apk.length < EOCD_MIN) fail(new ApkTruncated({ message: `${apk.length} bytes is shorter than an empty zip` }))
  // The EOCD ends with a comment of up to 65535 bytes; look for the record whose comment reaches the end exactly.
  const lowest = Math.max(0, apk.length - EOCD_MIN - 0xffff)
  for (let offset = apk.length - EOCD_MIN; offset >= lowest; offset--) {
    if (apk.readUInt32LE(offset) !== EOCD_SIGNATURE) continue
    const commentLength = apk.readUInt16LE(offset + 20)
    if (offset + EOCD_MIN + commentLength !== apk.length) continue
    const centralDirectorySize = apk.readUInt32LE(offset + 12)
    const centralDirectoryOffset = apk.readUInt32LE(offset + 16)
    const entryCount = apk.readUInt16LE(offset + 10)
    if (centralDirectoryOffset + centralDirectorySize !== offset) {
      if (centralDirectoryOffset + centralDirectorySize > offset) {
        fail(new ApkTruncated({ message: "the central directory reaches past the end-of-central-directory record" }))
      }
      fail(new ApkNotZip({ message: "bytes between the central directory and the end-of-central-directory record" }))
    }
    return { eocdOffset: offset, centralDirectoryOffset, centralDirectorySize, entryCount }
  }
  return fail(
    apk.readUInt32LE(0) === LOCAL_SIGNATURE
      ? new ApkTruncated({ message: "a zip without its end-of-central-directory record (cut short?)" })
      : new ApkNotZip({ message: "no end-of-central-directory record" })
  )
}

const SIGNING_BLOCK_MAGIC = Buffer.from("APK Sig Block 42", "latin1")
const V2_BLOCK_ID = 0x7109871a
const V3_BLOCK_ID = 0xf05368c0

interface SigningBlock {
  readonly offset: number
  /** id -> value */
  readonly pairs: ReadonlyMap<number, Buffer>
}

const findSigningBlock = (apk: Buffer, zip: ZipLayout): SigningBlock => {
  const cd = zip.centralDirectoryOffset
  const missing = () => fail(new ApkSignatureMissing({ message: "no APK Signing Block before the central directory (unsigned, or v1 only)" }))
  if (cd < 32) return missing()
  if (!apk.subarray(cd - 16, cd).equals(SIGNING_BLOCK_MAGIC)) return missing()
  const sizeInFooter = apk.readBigUInt64LE(cd - 24)
  if (sizeInFooter < 24n || sizeInFooter > BigInt(cd - 8)) return malformed(`APK Signing Block size ${sizeInFooter} out of range`)
  const offset = cd - Number(sizeInFooter) - 8
  if (apk.readBigUInt64LE(offset) !== sizeInFooter) return malformed("APK Signing Block sizes in header and footer differ")
  const pairsReader = new Reader(apk.subarray(offset + 8, cd - 24), "signing block pairs")
  const pairs = new Map<number, Buffer>()
  while (pairsReader.remaining > 0) {
    const length = pairsReader.u64()
    if (length < 4n || length > BigInt(pairsReader.remaining)) malformed(`signing block pair length ${length} out of range`)
    const pair = new Reader(pairsReader.take(Number(length)), "signing block pair")
    const id = pair.u32()
    if (!pairs.has(id)) pairs.set(id, pair.rest())
  }
  return { offset, pairs }
}

// --- signature algorithms ----------------------------------------------------------------------------

interface Algorithm {
  readonly id: number
  readonly name: string
  readonly digest: "sha256" | "sha512"
  /** How strong it is among the supported ones (Android picks the strongest it supports). */
  readonly rank: number
  readonly verify: (key: KeyObject, data: Buffer, signature: Buffer) => boolean
}

const pss = (digest: "sha256" | "sha512", saltLength: number) => (key: KeyObject, data: Buffer, signature: Buffer) =>
  verifySignature(digest, data, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength }, signature)
const plain = (digest: "sha256" | "sha512") => (key: KeyObject, data: Buffer, signature: Buffer) =>
  // PKCS#1 v1.5 for RSA keys; DER-encoded (r, s) for ECDSA and DSA, which is what APK signatures carry.
  verifySignature(digest, data, key, signature)

const algorithms: ReadonlyMap<number, Algorithm> = new Map(
  [
    { id: 0x0101, name: "RSASSA-PSS with SHA2-256", digest: "sha256", rank: 3, verify: pss("sha256", 32) },
    { id: 0x0102, name: "RSASSA-PSS with SHA2-512", digest: "sha512", rank: 6, verify: pss("sha512", 64) },
    { id: 0x0103, name: "RSASSA-PKCS1-v1_5 with SHA2-256", digest: "sha256", rank: 2, verify: plain("sha256") },
    { id: 0x0104, name: "RSASSA-PKCS1-v1_5 with SHA2-512", digest: "sha512", rank: 5, verify: plain("sha512") },
    { id: 0x0201, name: "ECDSA with SHA2-256", digest: "sha256", rank: 4, verify: plain("sha256") },
    { id: 0x0202, name: "ECDSA with SHA2-512", digest: "sha512", rank: 7, verify: plain("sha512") },
    { id: 0x0301, name: "DSA with SHA2-256", digest: "sha256", rank: 1, verify: plain("sha256") }
  ].map((algorithm) => [algorithm.id, algorithm as Algorithm])
)

// --- content digest ---------------------------------------------------------------------------------

const CHUNK_SIZE = 1024 * 1024

/**
 * The v2/v3 content digest: each section cut into 1 MiB chunks, each chunk hashed as
 * H(0xa5 || u32le(length) || chunk), then H(0x5a || u32le(chunkCount) || chunk digests...).
 */
export const contentDigest = (digest: "sha256" | "sha512", sections: ReadonlyArray<Buffer>): Buffer => {
  const chunkDigests: Array<Buffer> = []
  const prefix = Buffer.alloc(5)
  prefix[0] = 0xa5
  for (const section of sections) {
    for (let start = 0; start < section.length; start += CHUNK_SIZE) {
      const chunk = section.subarray(start, Math.min(section.length, start + CHUNK_SIZE))
      prefix.writeUInt32LE(chunk.length, 1)
      chunkDigests.push(createHash(digest).update(prefix).update(chunk).digest())
    }
  }
  const top = Buffer.alloc(5)
  top[0] = 0x5a
  top.writeUInt32LE(chunkDigests.length, 1)
  const hash = createHash(digest).update(top)
  for (const chunkDigest of chunkDigests) hash.update(chunkDigest)
  return hash.digest()
}

// --- signers --------------------------------------------------------------------------------------

interface VerifiedSigner {
  readonly certificate: Buffer
  readonly algorithm: string
}

/**
 * Verifies one signer of a v2 or v3 block: picks the strongest supported signature, checks it over
 * the signed data with the signer's public key, checks that key is the first certificate's, and
 * compares the signed content digest for that algorithm with the recomputed one.
 */
const verifySigner = (
  scheme: 2 | 3,
  signer: Reader,
  digestOf: (digest: "sha256" | "sha512") => Buffer
): VerifiedSigner => {
  const signedDataBytes = signer.prefixedBytes()
  if (scheme === 3) {
    signer.u32() // minSdk
    signer.u32() // maxSdk
  }
  const signatures = signer.prefixed("signatures").items("signature").map((item) => {
    const id = item.u32()
    return { id, signature: item.prefixedBytes() }
  })
  const publicKeyBytes = signer.prefixedBytes()
  if (signatures.length === 0) malformed(`v${scheme} signer without signatures`)

  const supported = signatures
    .flatMap(({ id, signature }) => {
      const algorithm = algorithms.get(id)
      return algorithm === undefined ? [] : [{ algorithm, signature }]
    })
    .sort((a, b) => b.algorithm.rank - a.algorithm.rank)
  const best = supported[0]
  if (best === undefined) {
    return fail(
      new ApkUnsupportedAlgorithm({
        message: `v${scheme} signer uses only unsupported algorithms: ${signatures.map(({ id }) => `0x${id.toString(16)}`).join(", ")}`
      })
    )
  }

  let publicKey: KeyObject
  try {
    publicKey = createPublicKey({ key: publicKeyBytes, format: "der", type: "spki" })
  } catch {
    return malformed(`v${scheme} signer public key is not a SubjectPublicKeyInfo`)
  }
  let verified = false
  try {
    verified = best.algorithm.verify(publicKey, signedDataBytes, best.signature)
  } catch {
    verified = false
  }
  if (!verified) {
    fail(new ApkSignatureInvalid({ scheme, message: `v${scheme} signature (${best.algorithm.name}) does not verify over the signed data` }))
  }

  // Only now is the signed data trusted enough to parse for meaning.
  const signedData = new Reader(signedDataBytes, "signed data")
  const digests = signedData.prefixed("digests").items("digest").map((item) => {
    const id = item.u32()
    return { id, digest: item.prefixedBytes() }
  })
  const certificates = signedData.prefixed("certificates").items("certificate").map((item) => item.rest())
  if (scheme === 3) {
    signedData.u32()
    signedData.u32()
  }
  const signatureIds = signatures.map(({ id }) => id).sort()
  const digestIds = digests.map(({ id }) => id).sort()
  if (signatureIds.join() !== digestIds.join()) {
    fail(new ApkSignatureInvalid({ scheme, message: `v${scheme} signature algorithms and digest algorithms differ` }))
  }
  const certificate = certificates[0]
  if (certificate === undefined) return malformed(`v${scheme} signer without certificates`)
  let certificateKey: Buffer
  try {
    certificateKey = new X509Certificate(certificate).publicKey.export({ format: "der", type: "spki" })
  } catch {
    return malformed(`v${scheme} signer certificate does not parse`)
  }
  if (!certificateKey.equals(publicKey.export({ format: "der", type: "spki" }))) {
    fail(new ApkSignerMismatch({ message: `v${scheme} signer's public key is not its certificate's` }))
  }

  const signed = digests.find(({ id }) => id === best.algorithm.id)!
  const actual = digestOf(best.algorithm.digest)
  if (!actual.equals(signed.digest)) {
    fail(new ApkDigestMismatch({ scheme, message: `v${scheme} content digest (${best.algorithm.digest}) does not match the file` }))
  }
  return { certificate, algorithm: best.algorithm.name }
}

const verifyBlock = (scheme: 2 | 3, block: Buffer, digestOf: (digest: "sha256" | "sha512") => Buffer) => {
  const signers = new Reader(block, `v${scheme} block`).prefixed("signers").items("signer")
  if (signers.length === 0) malformed(`v${scheme} block without signers`)
  // v2 allows several signers (all must verify); v3 has one per SDK range, all with the same lineage.
  return signers.map((signer) => verifySigner(scheme, signer, digestOf))
}

// --- manifest -----------------------------------------------------------------------------------

/** One entry's uncompressed bytes, found through the central directory. */
const readEntry = (apk: Buffer, zip: ZipLayout, wanted: string): Buffer | undefined => {
  let position = zip.centralDirectoryOffset
  for (let index = 0; index < zip.entryCount; index++) {
    if (position + 46 > zip.eocdOffset || apk.readUInt32LE(position) !== CENTRAL_SIGNATURE) {
      return fail(new ApkNotZip({ message: "central directory entry does not parse" }))
    }
    const method = apk.readUInt16LE(position + 10)
    const compressedSize = apk.readUInt32LE(position + 20)
    const uncompressedSize = apk.readUInt32LE(position + 24)
    const nameLength = apk.readUInt16LE(position + 28)
    const extraLength = apk.readUInt16LE(position + 30)
    const commentLength = apk.readUInt16LE(position + 32)
    const localOffset = apk.readUInt32LE(position + 42)
    const name = apk.toString("utf8", position + 46, position + 46 + nameLength)
    position += 46 + nameLength + extraLength + commentLength
    if (name !== wanted) continue
    if (localOffset + 30 > apk.length || apk.readUInt32LE(localOffset) !== LOCAL_SIGNATURE) {
      return fail(new ApkNotZip({ message: `local header of ${wanted} does not parse` }))
    }
    const dataStart = localOffset + 30 + apk.readUInt16LE(localOffset + 26) + apk.readUInt16LE(localOffset + 28)
    if (dataStart + compressedSize > apk.length) return fail(new ApkTruncated({ message: `${wanted} reaches past the end` }))
    const data = apk.subarray(dataStart, dataStart + compressedSize)
    if (method === 0) return data
    if (method === 8) {
      try {
        return inflateRawSync(data, { maxOutputLength: Math.max(uncompressedSize, 1) })
      } catch {
        return fail(new ApkManifestInvalid({ message: `${wanted} does not inflate` }))
      }
    }
    return fail(new ApkManifestInvalid({ message: `${wanted} uses unsupported compression method ${method}` }))
  }
  return undefined
}

// --- entry point --------------------------------------------------------------------------------

export interface VerifyOptions {
  /** Accept only these signer certificate SHA-256s (hex, any case, colons allowed). Absent: any valid signer. */
  readonly trustedSignerSha256?: ReadonlyArray<string>
}

export const normalizeFingerprint = (text: string) => text.replace(/[:\s]/g, "").toLowerCase()

/** Verifies an APK held in memory. */
export const verifyApk = (apk: Buffer, options: VerifyOptions = {}): Either.Either<VerifiedApk, ApkVerificationError> => {
  try {
    const zip = findEocd(apk)
    const block = findSigningBlock(apk, zip)
    const v2 = block.pairs.get(V2_BLOCK_ID)
    const v3 = block.pairs.get(V3_BLOCK_ID)
    if (v2 === undefined && v3 === undefined) {
      fail(new ApkSignatureMissing({ message: "the APK Signing Block has neither a v2 nor a v3 signature" }))
    }

    // Section 4 with the central directory offset pointing at the signing block, as when it was signed.
    const eocd = Buffer.from(apk.subarray(zip.eocdOffset))
    eocd.writeUInt32LE(block.offset, 16)
    const sections = [apk.subarray(0, block.offset), apk.subarray(zip.centralDirectoryOffset, zip.eocdOffset), eocd]
    const computed = new Map<string, Buffer>()
    const digestOf = (digest: "sha256" | "sha512") => {
      let value = computed.get(digest)
      if (value === undefined) {
        value = contentDigest(digest, sections)
        computed.set(digest, value)
      }
      return value
    }

    const schemes: Array<2 | 3> = []
    const signerCertificates: Array<Buffer> = []
    const used: Array<string> = []
    // v3 first: a device that understands v3 ignores v2, so v3 decides who the signer is.
    if (v3 !== undefined) {
      const signers = verifyBlock(3, v3, digestOf)
      schemes.push(3)
      used.push(...signers.map(({ algorithm }) => `v3: ${algorithm}`))
      signerCertificates.push(...signers.map(({ certificate }) => certificate))
    }
    if (v2 !== undefined) {
      const signers = verifyBlock(2, v2, digestOf)
      schemes.unshift(2)
      used.unshift(...signers.map(({ algorithm }) => `v2: ${algorithm}`))
      if (v3 === undefined) signerCertificates.push(...signers.map(({ certificate }) => certificate))
      else if (!signers.some(({ certificate }) => certificate.equals(signerCertificates[0]!))) {
        // Key rotation (v3 lineage) would allow a different v2 signer; rotation is not supported here.
        fail(new ApkSignerMismatch({ message: "v2 and v3 blocks were signed by different certificates" }))
      }
    }
    const signerCertSha256Hex = createHash("sha256").update(signerCertificates[0]!).digest("hex")
    if (options.trustedSignerSha256 !== undefined) {
      const trusted = new Set(options.trustedSignerSha256.map(normalizeFingerprint))
      if (!trusted.has(signerCertSha256Hex)) {
        fail(new ApkSignerNotTrusted({ signerCertSha256Hex, message: `signer certificate ${signerCertSha256Hex} is not one of the pinned signers` }))
      }
    }

    const manifestBytes = readEntry(apk, zip, "AndroidManifest.xml")
    if (manifestBytes === undefined) fail(new ApkManifestInvalid({ message: "no AndroidManifest.xml" }))
    const manifest = parseManifest(manifestBytes!)
    if (typeof manifest === "string") return fail(new ApkManifestInvalid({ message: manifest }))

    return Either.right({
      packageName: manifest.packageName,
      versionCode: manifest.versionCode,
      versionName: manifest.versionName,
      signerCertSha256Hex,
      schemes,
      algorithms: used,
      sha256Hex: createHash("sha256").update(apk).digest("hex"),
      sizeBytes: apk.length
    })
  } catch (error) {
    if (error instanceof Failure) return Either.left(error.error)
    throw error
  }
}
