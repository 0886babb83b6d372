/**
 * PostgreSQL arrays in the binary wire format (array_send/array_recv), for the heartbeat batch
 * insert: node-postgres sends a Buffer parameter as binary, and the statement's casts
 * (`$2::int8[]`) give PostgreSQL the type to read it as.
 *
 * Why binary: the text literals ('{1,2,NULL}') this replaced cost ~700 bytes of short-lived heap
 * per heartbeat (a string per number, the parts, the joined column) at 10,000 heartbeats/s, and
 * the columns lived until the insert completed, long enough to be promoted. A binary column is one
 * Buffer whose bytes live outside the JS heap, written with a DataView: no per-element garbage, and
 * less parsing for PostgreSQL too.
 *
 * Layout: int32 ndim (1), int32 has-nulls flag, int32 element type OID, int32 length, int32 lower
 * bound (1); then per element an int32 byte length (-1 for NULL) and the element's bytes, all
 * big-endian. The columns come from TelemetryWriter's HeartbeatBatch: numbers in a Float64Array
 * (NaN = NULL), strings in plain arrays (undefined = NULL).
 */

export type NumericType = "bool" | "int2" | "int4" | "int8" | "float8"

const elementOid: Record<NumericType | "text", number> = { bool: 16, int2: 21, int4: 23, int8: 20, float8: 701, text: 25 }
const elementBytes: Record<NumericType, number> = { bool: 1, int2: 2, int4: 4, int8: 8, float8: 8 }

const HEADER_BYTES = 20
const TWO_TO_32 = 4_294_967_296

const start = (bytes: number, type: NumericType | "text", length: number, hasNull: boolean) => {
  const buffer = Buffer.allocUnsafe(bytes)
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  view.setInt32(0, 1)
  view.setInt32(4, hasNull ? 1 : 0)
  view.setInt32(8, elementOid[type])
  view.setInt32(12, length)
  view.setInt32(16, 1)
  return { buffer, view }
}

/**
 * `length` numbers of `values` from `offset` as a `type[]` (NaN = NULL). Integers must fit the type
 * and be safe integers (the heartbeat schema guarantees both); bool stores 0 as false.
 */
export const numberArray = (type: NumericType, values: Float64Array, offset: number, length: number): Buffer => {
  let nulls = 0
  for (let i = 0; i < length; i++) if (Number.isNaN(values[offset + i]!)) nulls++
  const size = elementBytes[type]
  const { buffer, view } = start(HEADER_BYTES + length * 4 + (length - nulls) * size, type, length, nulls > 0)
  let at = HEADER_BYTES
  for (let i = 0; i < length; i++) {
    const value = values[offset + i]!
    if (Number.isNaN(value)) {
      view.setInt32(at, -1)
      at += 4
      continue
    }
    view.setInt32(at, size)
    at += 4
    switch (type) {
      case "bool":
        view.setUint8(at, value !== 0 ? 1 : 0)
        break
      case "int2":
        view.setInt16(at, value)
        break
      case "int4":
        view.setInt32(at, value)
        break
      case "int8": {
        const high = Math.floor(value / TWO_TO_32)
        view.setInt32(at, high)
        view.setUint32(at + 4, value - high * TWO_TO_32)
        break
      }
      case "float8":
        view.setFloat64(at, value)
        break
    }
    at += size
  }
  return buffer
}

/** The first `length` strings (undefined or null = NULL) as a `text[]`, UTF-8. */
export const textArray = (values: ReadonlyArray<string | null | undefined>, length = values.length): Buffer => {
  let bytes = HEADER_BYTES
  let hasNull = false
  for (let i = 0; i < length; i++) {
    const value = values[i]
    bytes += 4
    if (value === null || value === undefined) hasNull = true
    else bytes += Buffer.byteLength(value, "utf8")
  }
  const { buffer, view } = start(bytes, "text", length, hasNull)
  let at = HEADER_BYTES
  for (let i = 0; i < length; i++) {
    const value = values[i]
    if (value === null || value === undefined) {
      view.setInt32(at, -1)
      at += 4
      continue
    }
    const written = buffer.write(value, at + 4, "utf8")
    view.setInt32(at, written)
    at += 4 + written
  }
  return buffer
}
