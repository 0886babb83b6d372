/**
 * The agent APK registry: verified releases on disk, which one each channel (stable, beta) serves,
 * promote and rollback as appended channel events, download records and adoption.
 *
 * An upload is streamed to a temporary file (bounded), verified (ApkVerifier: v2/v3 signature and
 * content digest, pinned signer, manifest) and only then, in the caller's (audit) transaction,
 * recorded and moved into place. `current` and `open` are what QR provisioning, the enrollment
 * scripts and rollouts build on.
 */
import { SqlClient, type SqlError, type Statement } from "@effect/sql"
import { Context, Data, Effect, Either, Layer, Option, Stream } from "effect"
import { mkdir, open as openFile, readFile, rename, rm } from "node:fs/promises"
import { join, resolve } from "node:path"
import { EngineConfig } from "../EngineConfig.js"
import { randomId } from "../Secrets.js"
import { type ApkVerificationError, verifyApk, type VerifiedApk } from "./ApkVerifier.js"

export type ReleaseChannel = "stable" | "beta"
export const releaseChannels: ReadonlyArray<ReleaseChannel> = ["stable", "beta"]

export interface ReleaseInfo {
  readonly id: string
  readonly packageName: string
  readonly versionCode: number
  readonly versionName: string
  /** The channel it was uploaded to. */
  readonly channel: ReleaseChannel
  readonly sha256Hex: string
  readonly sizeBytes: number
  readonly signerCertSha256Hex: string
  /** Engine URL path (device plane) that serves the APK, e.g. `/v1/releases/rel_x/agent.apk`. */
  readonly downloadPath: string
}

/** A release's APK on disk, ready to stream. */
export interface ReleaseFile {
  readonly info: ReleaseInfo
  readonly filePath: string
}

export class ReleaseNotFound extends Data.TaggedError("ReleaseNotFound")<{ readonly releaseId: string }> {
  readonly code = "RELEASE_NOT_FOUND"
}

/** NEXMDM_APK_SIGNER_SHA256 is empty: no signer is trusted, so no upload can be accepted. */
export class UploadsNotConfigured extends Data.TaggedError("UploadsNotConfigured")<{ readonly message: string }> {
  readonly code = "APK_SIGNER_NOT_CONFIGURED"
}

/** The upload went over NEXMDM_APK_MAX_BYTES (nothing is kept). */
export class ApkTooLarge extends Data.TaggedError("ApkTooLarge")<{ readonly limit: number }> {
  readonly code = "APK_TOO_LARGE"
}

/** The APK did not verify, or cannot go to that channel. `code` is the verifier's or one of ours. */
export class ReleaseRejected extends Data.TaggedError("ReleaseRejected")<{
  readonly code: ApkVerificationError["code"] | "APK_VERSION_NOT_INCREASING" | "APK_PACKAGE_MISMATCH" | "APK_EMPTY"
  readonly message: string
}> {}

/** The change conflicts with the registry's state. */
export class ReleaseConflict extends Data.TaggedError("ReleaseConflict")<{
  readonly code: "RELEASE_EXISTS" | "NOTHING_TO_ROLL_BACK" | "RELEASE_ROLLED_BACK" | "ALREADY_ON_CHANNEL"
  readonly message: string
}> {}

/** An uploaded APK written to disk and verified, not yet a release (see `publish`). */
export interface StagedApk {
  readonly tempPath: string
  readonly apk: VerifiedApk
}

export interface ReleaseView extends ReleaseInfo {
  readonly status: "active" | "rolled_back"
  readonly notes: string | null
  readonly uploadedBy: string
  readonly createdAt: Date
  readonly schemes: ReadonlyArray<number>
  /** Channels whose current release this is. */
  readonly servedOn: ReadonlyArray<ReleaseChannel>
  readonly downloads: number
  readonly completedDownloads: number
}

export interface ChannelEvent {
  readonly id: string
  readonly channel: ReleaseChannel
  readonly releaseId: string
  readonly action: "publish" | "promote" | "rollback"
  readonly previousReleaseId: string | null
  readonly actor: string
  readonly at: Date
}

export interface Adoption {
  readonly channel: ReleaseChannel
  readonly agentVersion: string | null
  readonly devices: number
}

export type DownloadClient = "device" | "script" | "admin" | "anonymous"

export interface DownloadStart {
  readonly releaseId: string
  readonly clientKind: DownloadClient
  readonly deviceId: string | null
  readonly sourceIp: string | null
  readonly rangeStart: number | null
}

/** A device is on the beta channel when it carries this tag; every other device is on stable. */
export const BETA_TAG = "channel:beta"

export const downloadPathOf = (releaseId: string) => `/v1/releases/${releaseId}/agent.apk`

export class Releases extends Context.Tag("@nexmdm/engine/Releases")<
  Releases,
  {
    /** The release a channel serves now, if any. */
    readonly current: (channel: ReleaseChannel) => Effect.Effect<Option.Option<ReleaseInfo>>
    readonly get: (releaseId: string) => Effect.Effect<Option.Option<ReleaseInfo>>
    /** The APK file of a release (for download routes). */
    readonly open: (releaseId: string) => Effect.Effect<ReleaseFile, ReleaseNotFound>
    /**
     * Streams an upload to a temporary file (at most NEXMDM_APK_MAX_BYTES) and verifies it: v2/v3
     * signature, content digest, pinned signer, manifest. Nothing is recorded yet.
     */
    readonly stage: <E>(body: Stream.Stream<Uint8Array, E>) => Effect.Effect<StagedApk, E | UploadsNotConfigured | ApkTooLarge | ReleaseRejected>
    /**
     * Makes a staged APK a release and the current one of `channel` (its version code must exceed every
     * release that channel ever served). Meant to run in the audit transaction: the file is moved into
     * place before commit, so a committed row always has its file.
     */
    readonly publish: (
      staged: StagedApk,
      input: { readonly channel: ReleaseChannel; readonly uploadedBy: string; readonly notes: string | null }
    ) => Effect.Effect<ReleaseInfo, ReleaseRejected | ReleaseConflict | SqlError.SqlError>
    /** Deletes a staged file that will not be published. */
    readonly discard: (staged: StagedApk) => Effect.Effect<void>
    readonly list: (filter: { readonly channel?: ReleaseChannel | undefined; readonly limit: number }) => Effect.Effect<ReadonlyArray<ReleaseView>, SqlError.SqlError>
    readonly view: (releaseId: string) => Effect.Effect<ReleaseView, ReleaseNotFound | SqlError.SqlError>
    /** Makes a release the current one of another channel (beta -> stable). */
    readonly promote: (
      releaseId: string,
      to: ReleaseChannel,
      actor: string
    ) => Effect.Effect<ReleaseInfo, ReleaseNotFound | ReleaseConflict | ReleaseRejected | SqlError.SqlError>
    /** Points a channel back at its previous active release; the current one is marked rolled back. */
    readonly rollback: (
      channel: ReleaseChannel,
      actor: string
    ) => Effect.Effect<{ readonly from: ReleaseInfo; readonly to: ReleaseInfo }, ReleaseConflict | SqlError.SqlError>
    readonly history: (channel: ReleaseChannel, limit: number) => Effect.Effect<ReadonlyArray<ChannelEvent>, SqlError.SqlError>
    /** Devices (not retired) per channel and agent version, from their newest heartbeat or enrollment. */
    readonly adoption: Effect.Effect<ReadonlyArray<Adoption>, SqlError.SqlError>
    /** Download bookkeeping: never fails (a lost record is logged). Returns the record's id ("" if none). */
    readonly recordDownloadStart: (start: DownloadStart) => Effect.Effect<string>
    readonly recordDownloadEnd: (downloadId: string, bytesSent: number, completed: boolean) => Effect.Effect<void>
  }
>() {}

interface ReleaseRow {
  readonly id: string
  readonly package_name: string
  readonly version_code: string | number
  readonly version_name: string
  readonly channel: ReleaseChannel
  readonly sha256_hex: string
  readonly size_bytes: string | number
  readonly signer_cert_sha256: string
  readonly storage_path: string
}

export const infoOf = (row: ReleaseRow): ReleaseInfo => ({
  id: row.id,
  packageName: row.package_name,
  versionCode: Number(row.version_code),
  versionName: row.version_name,
  channel: row.channel,
  sha256Hex: row.sha256_hex,
  sizeBytes: Number(row.size_bytes),
  signerCertSha256Hex: row.signer_cert_sha256,
  downloadPath: downloadPathOf(row.id)
})

interface ViewRow extends ReleaseRow {
  readonly status: "active" | "rolled_back"
  readonly notes: string | null
  readonly uploaded_by: string
  readonly created_at: Date
  readonly signature_schemes: ReadonlyArray<number>
  readonly served_on: ReadonlyArray<ReleaseChannel> | null
  readonly downloads: string | number
  readonly completed_downloads: string | number
}

const viewOf = (row: ViewRow): ReleaseView => ({
  ...infoOf(row),
  status: row.status,
  notes: row.notes,
  uploadedBy: row.uploaded_by,
  createdAt: row.created_at,
  schemes: row.signature_schemes.map(Number),
  servedOn: row.served_on ?? [],
  downloads: Number(row.downloads),
  completedDownloads: Number(row.completed_downloads)
})

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EngineConfig
  const releaseDir = resolve(config.dataDir, "releases")
  const incomingDir = join(releaseDir, "incoming")

  const current = (channel: ReleaseChannel) =>
    sql<ReleaseRow>`
      select r.* from release_channel_events e join agent_releases r on r.id = e.release_id
      where e.channel = ${channel} order by e.id desc limit 1`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), infoOf)),
      Effect.orDie,
      Effect.withSpan("Releases.current")
    )

  const getRow = (releaseId: string) =>
    sql<ReleaseRow & { readonly status: string }>`select * from agent_releases where id = ${releaseId}`.pipe(
      Effect.map((rows) => Option.fromNullable(rows[0])),
      Effect.orDie
    )

  const get = (releaseId: string) => Effect.map(getRow(releaseId), Option.map(infoOf))

  const open = (releaseId: string) =>
    getRow(releaseId).pipe(
      Effect.flatMap(
        Option.match({
          onNone: () => Effect.fail(new ReleaseNotFound({ releaseId })),
          onSome: (row) => Effect.succeed({ info: infoOf(row), filePath: join(releaseDir, row.storage_path) })
        })
      )
    )

  const stage = <E>(body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function* () {
      if (config.apkSignerSha256.length === 0) {
        return yield* new UploadsNotConfigured({
          message: "no signer is pinned: set NEXMDM_APK_SIGNER_SHA256 to the SHA-256 of the certificate that signs the agent"
        })
      }
      // Made on first use: an engine that never receives an upload leaves no folder behind.
      yield* Effect.promise(() => mkdir(incomingDir, { recursive: true }))
      const tempPath = join(incomingDir, `${randomId(20)}.part`)
      const remove = Effect.promise(() => rm(tempPath, { force: true }))
      const size = yield* Effect.acquireUseRelease(
        Effect.promise(() => openFile(tempPath, "wx")),
        (file) =>
          Stream.runFoldEffect(body, 0, (written, chunk) => {
            const total = written + chunk.byteLength
            if (total > config.apkMaxBytes) return Effect.fail(new ApkTooLarge({ limit: config.apkMaxBytes }))
            return Effect.as(Effect.promise(() => file.write(chunk)), total)
          }),
        (file) => Effect.promise(() => file.close())
      ).pipe(Effect.onError(() => remove))
      if (size === 0) {
        yield* remove
        return yield* new ReleaseRejected({ code: "APK_EMPTY", message: "the request body is empty: send the APK as the body" })
      }
      // The verifier needs the whole file (the digest covers all of it); bounded by apkMaxBytes.
      const bytes = yield* Effect.promise(() => readFile(tempPath))
      const verified = verifyApk(bytes, { trustedSignerSha256: config.apkSignerSha256 })
      if (Either.isLeft(verified)) {
        yield* remove
        return yield* new ReleaseRejected({ code: verified.left.code, message: verified.left.message })
      }
      return { tempPath, apk: verified.right }
    }).pipe(Effect.withSpan("Releases.stage"))

  const discard = (staged: StagedApk) => Effect.promise(() => rm(staged.tempPath, { force: true }))

  /** Serialises registry changes across engines (held until the surrounding transaction ends). */
  const lock = sql`select pg_advisory_xact_lock(7310455) as locked`

  /** The highest version code a channel ever served, and the package it serves now. */
  const channelFacts = (channel: ReleaseChannel) =>
    sql<{ max_code: string | number | null; package_name: string | null }>`
      select
        (select max(r.version_code) from release_channel_events e join agent_releases r on r.id = e.release_id where e.channel = ${channel}) as max_code,
        (select r.package_name from release_channel_events e join agent_releases r on r.id = e.release_id
          where e.channel = ${channel} order by e.id desc limit 1) as package_name`.pipe(
      Effect.map(([row]) => ({
        maxCode: row?.max_code === null || row?.max_code === undefined ? 0 : Number(row.max_code),
        packageName: row?.package_name ?? null
      }))
    )

  const checkFits = (channel: ReleaseChannel, packageName: string, versionCode: number) =>
    Effect.gen(function* () {
      const facts = yield* channelFacts(channel)
      if (facts.packageName !== null && facts.packageName !== packageName) {
        return yield* new ReleaseRejected({ code: "APK_PACKAGE_MISMATCH", message: `${channel} serves ${facts.packageName}, not ${packageName}` })
      }
      if (versionCode <= facts.maxCode) {
        return yield* new ReleaseRejected({
          code: "APK_VERSION_NOT_INCREASING",
          message: `versionCode ${versionCode} is not above ${facts.maxCode}, the highest ${channel} has served`
        })
      }
    })

  const currentId = (channel: ReleaseChannel) =>
    Effect.map(
      sql<{ release_id: string }>`select release_id from release_channel_events where channel = ${channel} order by id desc limit 1`,
      (rows) => rows[0]?.release_id ?? null
    )

  const publish = (staged: StagedApk, input: { readonly channel: ReleaseChannel; readonly uploadedBy: string; readonly notes: string | null }) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const apk = staged.apk
          yield* lock
          const [existing] = yield* sql<{ id: string }>`select id from agent_releases where sha256_hex = ${apk.sha256Hex}`
          if (existing !== undefined) return yield* new ReleaseConflict({ code: "RELEASE_EXISTS", message: `this APK is already release ${existing.id}` })
          yield* checkFits(input.channel, apk.packageName, apk.versionCode)
          const id = `rel_${randomId(20)}`
          const storagePath = `${id}.apk`
          const previous = yield* currentId(input.channel)
          const [row] = yield* sql<ReleaseRow>`
            insert into agent_releases (id, package_name, version_code, version_name, channel, sha256_hex, size_bytes,
              signer_cert_sha256, signature_schemes, storage_path, notes, uploaded_by)
            values (${id}, ${apk.packageName}, ${apk.versionCode}, ${apk.versionName}, ${input.channel}, ${apk.sha256Hex}, ${apk.sizeBytes},
              ${apk.signerCertSha256Hex}, ${`{${apk.schemes.join(",")}}`}::smallint[], ${storagePath}, ${input.notes}, ${input.uploadedBy})
            returning *`
          yield* sql`insert into release_channel_events (channel, release_id, action, previous_release_id, actor)
            values (${input.channel}, ${id}, 'publish', ${previous}, ${input.uploadedBy})`
          yield* Effect.promise(() => rename(staged.tempPath, join(releaseDir, storagePath)))
          return infoOf(row!)
        })
      )
      .pipe(Effect.withSpan("Releases.publish"))

  const viewQuery = (where: Statement.Fragment, limit: number) =>
    sql<ViewRow>`
      select r.*,
        (select array_agg(c.channel order by c.channel) from (
          select distinct on (channel) channel, release_id from release_channel_events order by channel, id desc
        ) c where c.release_id = r.id) as served_on,
        (select count(*) from release_downloads d where d.release_id = r.id) as downloads,
        (select count(*) from release_downloads d where d.release_id = r.id and d.completed) as completed_downloads
      from agent_releases r ${where}
      order by r.created_at desc, r.id desc limit ${limit}`.pipe(Effect.map((rows) => rows.map(viewOf)))

  const list = (filter: { readonly channel?: ReleaseChannel | undefined; readonly limit: number }) =>
    viewQuery(
      filter.channel === undefined ? sql`` : sql`where r.id in (select release_id from release_channel_events where channel = ${filter.channel})`,
      filter.limit
    ).pipe(Effect.withSpan("Releases.list"))

  const view = (releaseId: string) =>
    Effect.flatMap(viewQuery(sql`where r.id = ${releaseId}`, 1), (rows) =>
      rows[0] === undefined ? Effect.fail(new ReleaseNotFound({ releaseId })) : Effect.succeed(rows[0])
    )

  const promote = (releaseId: string, to: ReleaseChannel, actor: string) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          yield* lock
          const found = yield* getRow(releaseId)
          if (Option.isNone(found)) return yield* new ReleaseNotFound({ releaseId })
          const row = found.value
          if (row.status === "rolled_back") {
            return yield* new ReleaseConflict({ code: "RELEASE_ROLLED_BACK", message: `${releaseId} was rolled back and cannot be promoted` })
          }
          const previous = yield* currentId(to)
          if (previous === releaseId) return yield* new ReleaseConflict({ code: "ALREADY_ON_CHANNEL", message: `${releaseId} is already ${to}'s release` })
          yield* checkFits(to, row.package_name, Number(row.version_code))
          yield* sql`insert into release_channel_events (channel, release_id, action, previous_release_id, actor)
            values (${to}, ${releaseId}, 'promote', ${previous}, ${actor})`
          return infoOf(row)
        })
      )
      .pipe(Effect.withSpan("Releases.promote"))

  const rollback = (channel: ReleaseChannel, actor: string) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          yield* lock
          const fromId = yield* currentId(channel)
          // The newest release this channel served before, that is not itself rolled back.
          const [target] = yield* sql<ReleaseRow>`
            select r.* from release_channel_events e join agent_releases r on r.id = e.release_id
            where e.channel = ${channel} and r.status = 'active' and r.id <> ${fromId ?? ""}
            order by e.id desc limit 1`
          if (fromId === null || target === undefined) {
            return yield* new ReleaseConflict({ code: "NOTHING_TO_ROLL_BACK", message: `${channel} has no earlier release to go back to` })
          }
          const [from] = yield* sql<ReleaseRow>`update agent_releases set status = 'rolled_back' where id = ${fromId} returning *`
          yield* sql`insert into release_channel_events (channel, release_id, action, previous_release_id, actor)
            values (${channel}, ${target.id}, 'rollback', ${fromId}, ${actor})`
          return { from: infoOf(from!), to: infoOf(target) }
        })
      )
      .pipe(Effect.withSpan("Releases.rollback"))

  const history = (channel: ReleaseChannel, limit: number) =>
    sql<{
      id: string
      channel: ReleaseChannel
      release_id: string
      action: ChannelEvent["action"]
      previous_release_id: string | null
      actor: string
      at: Date
    }>`select * from release_channel_events where channel = ${channel} order by id desc limit ${limit}`.pipe(
      Effect.map((rows) =>
        rows.map((row) => ({
          id: String(row.id),
          channel: row.channel,
          releaseId: row.release_id,
          action: row.action,
          previousReleaseId: row.previous_release_id,
          actor: row.actor,
          at: row.at
        }))
      )
    )

  const adoption = sql<{ channel: ReleaseChannel; agent_version: string | null; devices: number }>`
    select case when ${BETA_TAG} = any(d.tags) then 'beta' else 'stable' end as channel,
      coalesce(hb.agent_version, d.agent_version) as agent_version, count(*)::int as devices
    from devices d
    left join lateral (
      select h.agent_version from heartbeats h where h.device_id = d.id order by h.recorded_at desc limit 1
    ) hb on true
    where d.retired_at is null
    group by 1, 2 order by 1, 3 desc`.pipe(
    Effect.map((rows) => rows.map((row) => ({ channel: row.channel, agentVersion: row.agent_version, devices: row.devices }))),
    Effect.withSpan("Releases.adoption")
  )

  const logLost = (error: unknown) => Effect.logWarning("could not record a download", error).pipe(Effect.annotateLogs({ module: "Releases" }))

  const recordDownloadStart = (start: DownloadStart) =>
    sql<{ id: string }>`insert into release_downloads (release_id, client_kind, device_id, source_ip, range_start)
      values (${start.releaseId}, ${start.clientKind}, ${start.deviceId}, ${start.sourceIp}, ${start.rangeStart}) returning id`.pipe(
      Effect.map(([row]) => String(row!.id)),
      Effect.catchAll((error) => Effect.as(logLost(error), ""))
    )

  const recordDownloadEnd = (downloadId: string, bytesSent: number, completed: boolean) =>
    downloadId === ""
      ? Effect.void
      : sql`update release_downloads set bytes_sent = ${bytesSent}, completed = ${completed}, finished_at = now() where id = ${downloadId}`.pipe(
          Effect.asVoid,
          Effect.catchAll(logLost)
        )

  return Releases.of({
    current,
    get,
    open,
    stage,
    publish,
    discard,
    list,
    view,
    promote,
    rollback,
    history,
    adoption,
    recordDownloadStart,
    recordDownloadEnd
  })
})

/** Needs SqlClient and EngineConfig. */
export const layer = Layer.effect(Releases, make)
