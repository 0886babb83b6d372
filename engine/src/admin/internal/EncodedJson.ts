/**
 * Values serialized to JSON once and sent to many rpc clients as they are.
 *
 * @effect/rpc encodes each stream chunk per client: the success schema's encode, then the JSON
 * serialization's `JSON.stringify` of the whole message. For a value that every subscriber receives
 * (a fleet batch) that is the same work M times. An `EncodedJson` carries the JSON text of a value
 * whose schema encoding is the identity (plain JSON data): its rpc schema (`schema`) passes it
 * through unchanged and `serialization` splices its text into the message verbatim. The wire is
 * exactly what `RpcSerialization.json` would have sent for the value itself, so clients decode it
 * with the protocol's own schema.
 */
import { RpcSerialization } from "@effect/rpc"
import { Layer, Schema } from "effect"

/** JSON text of a value, to be sent as that value. */
export class EncodedJson {
  constructor(readonly text: string) {}
}

/** `JSON.stringify(value)`, wrapped: only for values whose schema encoding is the identity. */
export const encode = (value: unknown): EncodedJson => new EncodedJson(JSON.stringify(value))

/** The rpc-side schema of an `EncodedJson` (its encoding is the identity: `serialization` writes it). */
export const schema: Schema.Schema<EncodedJson> = Schema.declare((u): u is EncodedJson => u instanceof EncodedJson, {
  identifier: "EncodedJson"
})

const hasEncoded = (message: unknown): message is { readonly values: ReadonlyArray<unknown> } => {
  if (typeof message !== "object" || message === null) return false
  const values = (message as { readonly values?: unknown }).values
  return Array.isArray(values) && values.length > 0 && values[0] instanceof EncodedJson
}

/** One rpc message as JSON text; a chunk's EncodedJson values are written as their text. */
const encodeMessage = (message: unknown): string => {
  if (!hasEncoded(message)) return JSON.stringify(message)
  const { values, ...rest } = message
  let text = ""
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    text += (i === 0 ? "" : ",") + (value instanceof EncodedJson ? value.text : JSON.stringify(value))
  }
  const head = JSON.stringify(rest)
  return `${head.slice(0, -1)}${head.length > 2 ? "," : ""}"values":[${text}]}`
}

/** `RpcSerialization.json`, except that EncodedJson chunk values are not serialized again. */
export const serialization = RpcSerialization.RpcSerialization.of({
  ...RpcSerialization.json,
  unsafeMake: () => {
    const json = RpcSerialization.json.unsafeMake()
    return {
      decode: json.decode,
      encode: (response) => (Array.isArray(response) ? `[${response.map(encodeMessage).join(",")}]` : encodeMessage(response))
    }
  }
})

export const layerSerialization = Layer.succeed(RpcSerialization.RpcSerialization, serialization)
