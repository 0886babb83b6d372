/** Array literals round-trip through a real PostgreSQL exactly, including hostile strings. */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { float64Array, float64BooleanArray, textArray } from "../src/internal/PgArrays.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  engine = await startEngine(database)
})

afterAll(async () => {
  await engine?.dispose()
  await release?.()
})

const roundTrip = <A>(literal: string, cast: string) =>
  engine.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ v: A }>(`select unnest($1::${cast}) as v`, [literal]))
  ).then((rows) => rows.map((row) => row.v))

/** A column as HeartbeatBatch keeps it: inside a larger Float64Array, null as NaN. */
const column = (values: ReadonlyArray<number | null>) => {
  const numbers = new Float64Array(values.length + 3).fill(7)
  values.forEach((value, i) => (numbers[2 + i] = value === null ? NaN : value))
  return [numbers, 2, values.length] as const
}

describe("PostgreSQL array literals", () => {
  it("carry text exactly: quotes, backslashes, braces, commas, spaces, NULL-looking and empty strings", async () => {
    const values = ['say "hi"', "back\\slash", "{braces}", "a,b", " padded ", "NULL", "", "com.example.kiosk", "1.4.0", "\\\"", null]
    expect(await roundTrip<string | null>(textArray(values), "text[]")).toEqual(values)
  })

  it("carry integers, big epoch milliseconds, negative numbers and nulls", async () => {
    const values = [1, 0, -120, 1_764_000_000_123, 9_007_199_254_740_991, null]
    const back = await roundTrip<string | number | null>(float64Array(...column(values)), "int8[]")
    expect(back.map((v) => (v === null ? null : Number(v)))).toEqual(values)
    const floats = await roundTrip<number>(float64Array(...column([1_764_000_000_123.5, 0.25])), "float8[]")
    expect(floats.map(Number)).toEqual([1_764_000_000_123.5, 0.25])
  })

  it("carry only the first `length` strings of a reused array", async () => {
    expect(await roundTrip<string>(textArray(["a", "b", "stale"], 2), "text[]")).toEqual(["a", "b"])
  })

  it("carry booleans and an empty batch", async () => {
    expect(await roundTrip<boolean | null>(float64BooleanArray(...column([1, 0, null])), "bool[]")).toEqual([true, false, null])
    expect(await roundTrip<string>(textArray([]), "text[]")).toEqual([])
  })
})
