import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createFreshDatabase, DEFAULT_DATABASE_URL, type FreshDatabase } from "../src/EngineProcess.js"
import { checkZeroLoss, RowCounter, SeqSet } from "../src/ZeroLoss.js"

describe("SeqSet", () => {
  it("keeps in-order seqs as one range", () => {
    const set = new SeqSet()
    for (let seq = 1; seq <= 1000; seq++) set.add(seq)
    expect(set.toRanges()).toEqual([1, 1000])
    expect(set.size).toBe(1000)
    expect(set.max()).toBe(1000)
  })

  it("merges out-of-order inserts, ignores repeats, and closes gaps", () => {
    const set = new SeqSet()
    for (const seq of [1, 2, 5, 6, 10, 4, 4, 8, 3, 9, 7]) set.add(seq)
    expect(set.toRanges()).toEqual([1, 10])
    expect(set.size).toBe(10)
  })

  it("keeps gaps a BACKPRESSURE left", () => {
    const set = new SeqSet()
    for (const seq of [1, 2, 4, 5, 9, 7]) set.add(seq)
    expect(set.toRanges()).toEqual([1, 2, 4, 5, 7, 7, 9, 9])
    expect(set.has(3)).toBe(false)
    expect(set.has(7)).toBe(true)
    expect(set.has(8)).toBe(false)
    expect(set.has(10)).toBe(false)
    expect(set.has(0)).toBe(false)
    expect(set.add(5)).toBe(false)
    expect(set.size).toBe(6)
  })

  it("agrees with a plain Set on random inserts", () => {
    const set = new SeqSet()
    const reference = new Set<number>()
    let x = 12345
    for (let i = 0; i < 5000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648
      const seq = 1 + (x % 700)
      expect(set.add(seq)).toBe(!reference.has(seq))
      reference.add(seq)
    }
    expect(set.size).toBe(reference.size)
    for (let seq = 0; seq <= 701; seq++) expect(set.has(seq)).toBe(reference.has(seq))
    const ranges = set.toRanges()
    for (let i = 2; i < ranges.length; i += 2) expect(ranges[i]!).toBeGreaterThan(ranges[i - 1]! + 1)
  })
})

describe("checkZeroLoss against PostgreSQL", () => {
  let database: FreshDatabase
  beforeAll(async () => {
    database = await createFreshDatabase(process.env["DATABASE_URL"] ?? DEFAULT_DATABASE_URL)
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    // Only the columns the check reads; the engine's table has more.
    await client.query("create table heartbeats (device_id text not null, seq bigint not null)")
    const rows: Array<[string, number]> = []
    for (let seq = 1; seq <= 100; seq++) rows.push(["dev_a", seq]) // complete
    for (let seq = 1; seq <= 50; seq++) if (seq !== 17) rows.push(["dev_b", seq]) // 17 lost
    rows.push(["dev_b", 20]) // and 20 stored twice
    for (let seq = 40; seq <= 60; seq++) rows.push(["dev_c", seq]) // earlier run below 50
    for (let seq = 1; seq <= 30; seq++) rows.push(["dev_other", seq]) // not part of the run
    await client.query("insert into heartbeats select * from unnest($1::text[], $2::bigint[])", [rows.map((r) => r[0]), rows.map((r) => r[1])])
    await client.end()
  })
  afterAll(async () => {
    await database?.drop()
  })

  it("finds the one missing and the one duplicated heartbeat, counting only this run's rows", async () => {
    const result = await checkZeroLoss(database.url, [
      { deviceId: "dev_a", firstSeq: 1, acked: [1, 100] },
      // dev_b acked 1..50 except 30 (a BACKPRESSURE gap that was never resent), so 30 is not "missing".
      { deviceId: "dev_b", firstSeq: 1, acked: [1, 29, 31, 50] },
      // dev_c was re-enrolled: this run started at 50 and acked 50..60.
      { deviceId: "dev_c", firstSeq: 50, acked: [50, 60] }
    ])
    expect(result.acked).toBe(100 + 49 + 11)
    expect(result.missing).toBe(1)
    expect(result.missingSamples).toEqual([{ deviceId: "dev_b", lo: 1, hi: 29, present: 28 }])
    expect(result.duplicated).toBe(1)
    // dev_a 100 + dev_b 49 distinct (1..50 minus 17) + dev_c 11 (50..60)
    expect(result.persisted).toBe(100 + 49 + 11)
  })

  it("counts rows of the run's devices only", async () => {
    const counter = await RowCounter.open(database.url, [{ deviceId: "dev_a", firstSeq: 1 }, { deviceId: "dev_c", firstSeq: 50 }])
    expect(await counter.count()).toBe(111)
    await counter.close()
    const all = await RowCounter.open(database.url, "all")
    expect(await all.count()).toBe(100 + 50 + 21 + 30)
    await all.close()
  })
})
