import { Either } from "effect"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { decodeDeviceFrame, decodeEngineFrame, type FrameError } from "../src/index.js"

interface Vector {
  readonly name: string
  readonly frame: string
  readonly expect: { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly code: string }
}
const load = (file: string): ReadonlyArray<Vector> =>
  JSON.parse(readFileSync(new URL(`../vectors/${file}`, import.meta.url), "utf8")).vectors

const check = (decode: (text: string) => Either.Either<unknown, FrameError>, vector: Vector) => {
  const result = decode(vector.frame)
  if (vector.expect.ok) {
    expect(Either.isRight(result), JSON.stringify(Either.isLeft(result) ? result.left : null)).toBe(true)
    // Plain-object comparison: classes decode to instances, the vector holds the JSON shape.
    expect(JSON.parse(JSON.stringify(Either.getOrThrow(result)))).toEqual(vector.expect.value)
  } else {
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left.code).toBe(vector.expect.code)
      expect(result.left.message.length).toBeGreaterThan(0)
    }
  }
}

describe("device frame vectors", () => {
  for (const vector of load("device-frames.json")) it(vector.name, () => check(decodeDeviceFrame, vector))
})

describe("engine frame vectors", () => {
  for (const vector of load("engine-frames.json")) it(vector.name, () => check(decodeEngineFrame, vector))
})
