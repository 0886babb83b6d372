/**
 * PostgreSQL array literals ('{1,2,NULL}', '{"a","b\"c"}') built in one pass per column, for the
 * heartbeat batch insert. node-postgres serializes a JS array element by element through generic
 * value preparation and escaping: it was ~40 % of the engine's allocations at 2,000 heartbeats/s.
 * The literals are sent as text parameters and cast by the statement (`$1::int8[]`).
 * The columns come from TelemetryWriter's HeartbeatBatch: numbers in a Float64Array (NaN = NULL),
 * strings in plain arrays.
 *
 * Each literal is built as a flat string (Array.join). Concatenating with `+=` made a rope that
 * node-postgres then flattened into a second copy, and both lived until the insert completed.
 */

/** `{a,b,c}` as one flat string: braces joined onto the end elements, not concatenated onto the result (a rope again). */
const literal = (parts: Array<string>): string => {
  const last = parts.length - 1
  if (last < 0) return "{}"
  parts[0] = `{${parts[0]}`
  parts[last] = `${parts[last]}}`
  return parts.join(",")
}

/** `length` numbers of `values` from `offset`; NaN is NULL (infinities never get here: the schema refuses them). */
export const float64Array = (values: Float64Array, offset: number, length: number): string => {
  const parts = new Array<string>(length)
  for (let i = 0; i < length; i++) {
    const value = values[offset + i]!
    parts[i] = Number.isNaN(value) ? "NULL" : String(value)
  }
  return literal(parts)
}

/** `length` booleans stored as 1/0 (NaN = NULL) in `values` from `offset`. */
export const float64BooleanArray = (values: Float64Array, offset: number, length: number): string => {
  const parts = new Array<string>(length)
  for (let i = 0; i < length; i++) {
    const value = values[offset + i]!
    parts[i] = Number.isNaN(value) ? "NULL" : value !== 0 ? "t" : "f"
  }
  return literal(parts)
}

const needsEscape = /["\\]/

/** The first `length` strings (undefined or null = NULL): every element double-quoted, `"` and `\` escaped. */
export const textArray = (values: ReadonlyArray<string | null | undefined>, length = values.length): string => {
  const parts = new Array<string>(length)
  for (let i = 0; i < length; i++) {
    const value = values[i]
    if (value === null || value === undefined) parts[i] = "NULL"
    else parts[i] = needsEscape.test(value) ? `"${value.replace(/[\\"]/g, "\\$&")}"` : `"${value}"`
  }
  return literal(parts)
}
