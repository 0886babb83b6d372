import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { canonicalJson, commandSigningString, resultSigningString, sign, verifySignature } from "../src/Signing.js"

const vectors = JSON.parse(readFileSync(new URL("../vectors/signing.json", import.meta.url), "utf8"))
const key = Buffer.from(vectors.key, "base64")

describe("signing vectors", () => {
  for (const vector of vectors.commands) {
    it(`command: ${vector.name}`, () => {
      expect(commandSigningString(vector.command)).toBe(vector.signingString)
      expect(sign(key, vector.signingString)).toBe(vector.sig)
      expect(verifySignature(key, vector.signingString, vector.sig)).toBe(true)
    })
  }
  for (const vector of vectors.results) {
    it(`result: ${vector.name}`, () => {
      expect(resultSigningString(vector.result)).toBe(vector.signingString)
      expect(sign(key, vector.signingString)).toBe(vector.sig)
    })
  }
  for (const vector of vectors.canonicalJson) {
    it(`canonical JSON of ${vector.canonical}`, () => expect(canonicalJson(vector.value)).toBe(vector.canonical))
  }

  it("a tampered parameter, another device id or another key fails verification", () => {
    const [first] = vectors.commands.filter((v: any) => v.command.commandType === "lock")
    const tampered = commandSigningString({ ...first.command, params: { message: "Return to \"desk 5\"" } })
    expect(verifySignature(key, tampered, first.sig)).toBe(false)
    const otherDevice = commandSigningString({ ...first.command, deviceId: "dev_zzzzzzzzzzzzzzzzzzzzzzzz" })
    expect(verifySignature(key, otherDevice, first.sig)).toBe(false)
    expect(verifySignature(Buffer.alloc(32, 7), first.signingString, first.sig)).toBe(false)
    expect(verifySignature(key, first.signingString, "not-a-signature")).toBe(false)
  })
})
