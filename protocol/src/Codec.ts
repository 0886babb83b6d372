/**
 * Decoding of raw frames into typed messages, with the error code the engine answers with.
 * Both the engine and the simulators use these functions, so their behaviour is pinned by
 * protocol/vectors.
 */
import { Either, ParseResult, Schema } from "effect"
import type { ErrorCode } from "./DeviceFrames.js"
import { compileObjectDecoder } from "./CompiledGuard.js"
import { DEVICE_FRAME_TYPES, DeviceFrame, EngineFrame } from "./Frames.js"

export interface FrameError {
  readonly code: ErrorCode
  readonly message: string
}

const decodeDevice = Schema.decodeUnknownEither(DeviceFrame, { errors: "first" })
const decodeEngine = Schema.decodeUnknownEither(EngineFrame, { errors: "first" })
const knownDeviceTypes: ReadonlySet<string> = new Set(DEVICE_FRAME_TYPES)

/**
 * Compiled decoders per device frame type (see CompiledGuard): a valid frame costs ~1 µs instead
 * of the interpreter's 15-40 µs. An invalid one still goes through the interpreter, for its message.
 */
const fastDeviceDecoders: ReadonlyMap<string, (input: unknown) => DeviceFrame | undefined> = new Map(
  DeviceFrame.members.flatMap((member) => {
    const type = member.fields.type.literals[0]
    const decoder = compileObjectDecoder<DeviceFrame>(member)
    return decoder === undefined ? [] : [[type, decoder] as const]
  })
)

const parseJsonObject = (text: string): Either.Either<Record<string, unknown>, FrameError> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return Either.left({ code: "BAD_FRAME", message: "frame is not valid JSON" })
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Either.left({ code: "BAD_FRAME", message: "frame must be a JSON object" })
  }
  return Either.right(value as Record<string, unknown>)
}

/**
 * The first problem of a decode failure as one line, "path.to.field: what is wrong", with the path
 * under `root` when given (e.g. "params"). Shared by every boundary that answers with a message.
 */
export const describeParseError = (error: ParseResult.ParseError, root?: string): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "does not match the schema"
  const path = root === undefined ? issue.path : [root, ...issue.path]
  return path.length === 0 ? issue.message : `${path.join(".")}: ${issue.message}`
}

const describe = (error: ParseResult.ParseError) => describeParseError(error)

/** Decodes a frame sent by a device. */
export const decodeDeviceFrame = (text: string): Either.Either<DeviceFrame, FrameError> =>
  Either.flatMap(parseJsonObject(text), (object) => {
    const type = object["type"]
    if (typeof type !== "string") {
      return Either.left<FrameError>({ code: "BAD_FRAME", message: "type: missing or not a string" })
    }
    if (!knownDeviceTypes.has(type)) {
      return Either.left<FrameError>({ code: "UNKNOWN_TYPE", message: `unknown frame type "${type.slice(0, 40)}"` })
    }
    const fast = fastDeviceDecoders.get(type)?.(object)
    if (fast !== undefined) return Either.right(fast)
    return Either.mapLeft(decodeDevice(object), (error): FrameError => ({ code: "BAD_FRAME", message: describe(error) }))
  })

/** Decodes a frame sent by the engine (used by simulators and conformance tests). */
export const decodeEngineFrame = (text: string): Either.Either<EngineFrame, FrameError> =>
  Either.flatMap(parseJsonObject(text), (object) =>
    Either.mapLeft(decodeEngine(object), (error): FrameError => ({ code: "BAD_FRAME", message: describe(error) }))
  )

/** Encodes an engine frame. Frames are plain data, so JSON.stringify is their canonical encoding. */
export const encodeFrame = (frame: object): string => JSON.stringify(frame)
