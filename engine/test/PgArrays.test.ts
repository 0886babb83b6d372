/** Binary array parameters round-trip through a real PostgreSQL (or PGlite) exactly, including hostile strings. */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NumericType, numberArray, textArray } from "../src/internal/PgArrays.js"
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

const roundTrip = <A>(parameter: Buffer, cast: string) =>
  engine.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ v: A }>(`select unnest($1::${cast}) as v`, [parameter as never]))
  ).then((rows) => rows.map((row) => row.v))

/** A column as HeartbeatBatch keeps it: inside a larger Float64Array, null as NaN. */
const column = (type: NumericType, values: ReadonlyArray<number | null>) => {
  const numbers = new Float64Array(values.length + 3).fill(7)
  values.forEach((value, i) => (numbers[2 + i] = value === null ? NaN : value))
  return numberArray(type, numbers, 2, values.length)
}

describe("PostgreSQL binary array parameters", () => {
  it("carry text exactly: quotes, backslashes, braces, commas, spaces, NULL-looking, empty and non-ASCII strings", async () => {
    const values = ['say "hi"', "back\\slash", "{braces}", "a,b", " padded ", "NULL", "", "com.example.kiosk", "1.4.0", "\\\"", "Zürich ☃", null]
    expect(await roundTrip<string | null>(textArray(values), "text[]")).toEqual(values)
  })

  it("carry only the first `length` strings of a reused array", async () => {
    expect(await roundTrip<string>(textArray(["a", "b", "stale"], 2), "text[]")).toEqual(["a", "b"])
  })

  it("carry int8 across the 32-bit boundary, big epoch milliseconds, negative numbers and nulls", async () => {
    const values = [1, 0, -120, -4_294_967_297, 4_294_967_296, 1_764_000_000_123, 9_007_199_254_740_991, -9_007_199_254_740_991, null]
    const back = await roundTrip<string | number | null>(column("int8", values), "int8[]")
    expect(back.map((v) => (v === null ? null : Number(v)))).toEqual(values)
  })

  it("carry int2, int4, float8 and bool columns with nulls", async () => {
    expect(await roundTrip<number | null>(column("int2", [-200, 0, 100, 32767, null]), "int2[]")).toEqual([-200, 0, 100, 32767, null])
    expect(await roundTrip<number | null>(column("int4", [2_147_483_647, -1, 0, null]), "int4[]")).toEqual([2_147_483_647, -1, 0, null])
    const floats = await roundTrip<number | null>(column("float8", [1_764_000_000_123.5, 0.25, null]), "float8[]")
    expect(floats.map((v) => (v === null ? null : Number(v)))).toEqual([1_764_000_000_123.5, 0.25, null])
    expect(await roundTrip<boolean | null>(column("bool", [1, 0, null]), "bool[]")).toEqual([true, false, null])
  })

  it("carry an empty column", async () => {
    expect(await roundTrip<string>(textArray([]), "text[]")).toEqual([])
    expect(await roundTrip<number>(column("int4", []), "int4[]")).toEqual([])
  })
})
