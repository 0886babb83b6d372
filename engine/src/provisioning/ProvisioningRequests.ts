/**
 * What the admin API and the CLI share when asked for a script or a QR code: the whole token,
 * checked against its id and usable; the channel's current agent release; and the URL devices use.
 */
import { Effect, Option } from "effect"
import { EngineConfig } from "../EngineConfig.js"
import { type ReleaseChannel, type ReleaseInfo, Releases } from "../releases/Releases.js"
import type { ScriptInput } from "./EnrollmentScripts.js"
import { ProvisioningConflict } from "./ProvisioningGroup.js"
import type { TokenStatus } from "./ProvisioningModel.js"
import { ProvisioningStore } from "./ProvisioningStore.js"

export interface ProvisioningRequest {
  readonly token: string
  readonly serverUrl?: string | undefined
  readonly channel: ReleaseChannel
}

export interface Prepared {
  readonly status: TokenStatus
  readonly release: ReleaseInfo
  readonly serverUrl: string
  readonly apkUrl: string
}

/** `fallbackUrl`: the device plane's own address, when neither the request nor the config gives one. */
export const prepare = Effect.fn("Provisioning.prepare")(function* (tokenId: string, request: ProvisioningRequest, fallbackUrl: Option.Option<string>) {
  const store = yield* ProvisioningStore
  const releases = yield* Releases
  const config = yield* EngineConfig
  // Without a client address the check is never refused (an admin or the CLI asked).
  const status = yield* store.authenticate(request.token).pipe(
    Effect.catchTag("ProvisioningTokenRejected", () => Effect.succeed(undefined)),
    Effect.catchTag("SlowHashRefused", (refused) => Effect.die(refused))
  )
  if (status === undefined || status.id !== tokenId) {
    return yield* new ProvisioningConflict({ code: "TOKEN_MISMATCH", message: `this is not the token of ${tokenId} (give the whole token shown at creation)` })
  }
  if (status.state !== "active") {
    return yield* new ProvisioningConflict({ code: "TOKEN_NOT_ACTIVE", message: `enrollment token ${tokenId} is ${status.state.replace("_", " ")}: create a new one` })
  }
  const release = yield* releases.current(request.channel)
  if (Option.isNone(release)) {
    return yield* new ProvisioningConflict({
      code: "NO_AGENT_RELEASE",
      message: `no agent release on the ${request.channel} channel: upload a signed agent APK first (CI, API key with scope apk:upload)`
    })
  }
  const serverUrl = request.serverUrl ?? Option.getOrUndefined(Option.orElse(config.publicDeviceUrl, () => fallbackUrl))
  if (serverUrl === undefined) {
    return yield* new ProvisioningConflict({ code: "NO_SERVER_URL", message: "no device plane URL: set NEXMDM_PUBLIC_DEVICE_URL or give one" })
  }
  return { status, release: release.value, serverUrl, apkUrl: `${serverUrl}${release.value.downloadPath}` } satisfies Prepared
})

/** What a script is generated from, for a prepared request. */
export const scriptInputOf = (prepared: Prepared, token: string): ScriptInput => ({
  serverUrl: prepared.serverUrl,
  token,
  tokenId: prepared.status.id,
  tokenLabel: prepared.status.label,
  agent: {
    packageName: prepared.release.packageName,
    versionName: prepared.release.versionName,
    versionCode: prepared.release.versionCode,
    sha256Hex: prepared.release.sha256Hex,
    // The download route records who downloaded (adoption figures): scripts say so.
    apkUrl: `${prepared.apkUrl}?client=script`
  },
  generatedAt: new Date()
})
