/**
 * Zero-touch enrollment scripts, generated per enrollment token: a Bash script (Linux, macOS) and a
 * PowerShell script with a .cmd launcher (Windows). Run on a technician's computer with phones on
 * USB, a script checks adb, lists the attached devices, runs a preflight per device (accounts,
 * an existing device owner, several users, Android version) and reports what it found to the
 * engine, downloads the agent APK pinned at generation time and checks its SHA-256, installs it,
 * makes it device owner, grants its runtime permissions, hands it the server URL and the token
 * (the intent of AGENT-CONTRACT.md), starts it, and polls the engine until each device enrolled.
 * It prints one summary line per device and exits 0 only when every device enrolled.
 *
 * Every value embedded in a script is printable ASCII (anything else is refused, so no newline or
 * control character can end a string early) and is written as a single-quoted literal: Bash
 * `'...'` with `'` as `'\''`, PowerShell `'...'` with `'` doubled. Values that reach the device's
 * shell through `adb shell` (which joins its arguments into one command line) are quoted a second
 * time for that shell.
 */
import { Data } from "effect"
import {
  ADMIN_RECEIVER_CLASS,
  AGENT_SERVICE_CLASS,
  ENROLL_ACTION,
  ENROLL_RECEIVER_CLASS,
  EXTRA_DEVICE_SERIAL,
  EXTRA_ENROLLMENT_TOKEN,
  EXTRA_SERVER_URL,
  MIN_SDK,
  NOTIFICATION_PERMISSION,
  REPORTS_PATH,
  RUNTIME_PERMISSIONS,
  STATUS_PATH
} from "./ProvisioningModel.js"

export type ScriptPlatform = "bash" | "powershell" | "cmd"
export const scriptPlatforms: ReadonlyArray<ScriptPlatform> = ["bash", "powershell", "cmd"]

/** What a script is generated from. */
export interface ScriptInput {
  /** Base URL of the device plane as devices and the technician's computer reach it (no trailing slash). */
  readonly serverUrl: string
  /** The whole enrollment token (`et_<id>.<secret>`). */
  readonly token: string
  readonly tokenId: string
  readonly tokenLabel: string | null
  readonly agent: {
    readonly packageName: string
    readonly versionName: string
    readonly versionCode: number
    readonly sha256Hex: string
    /** Absolute URL of the APK. */
    readonly apkUrl: string
  }
  readonly generatedAt: Date
}

export interface GeneratedFile {
  readonly filename: string
  readonly contentType: string
  readonly body: string
}

/** A value that cannot be embedded safely (control characters, non-ASCII, wrong shape). */
export class UnsafeScriptValue extends Data.TaggedError("UnsafeScriptValue")<{ readonly field: string; readonly message: string }> {}

const printable = /^[\x20-\x7E]*$/
const packageNamePattern = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/
/** Characters a URL may keep in a script: RFC 3986 without space, `"`, `\`, `<`, `>`, `^`, backtick, `{|}`. */
const urlPattern = /^https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/

/** Bash/POSIX sh single-quoted literal. */
export const shQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`
/** PowerShell single-quoted (verbatim) literal. */
export const psQuote = (value: string): string => `'${value.replaceAll("'", "''")}'`

/** Checks every embedded value; returns the first problem. */
export const checkScriptInput = (input: ScriptInput): UnsafeScriptValue | undefined => {
  const fields: Array<[string, string]> = [
    ["serverUrl", input.serverUrl],
    ["token", input.token],
    ["tokenId", input.tokenId],
    ["tokenLabel", input.tokenLabel ?? ""],
    ["agent.packageName", input.agent.packageName],
    ["agent.versionName", input.agent.versionName],
    ["agent.apkUrl", input.agent.apkUrl]
  ]
  for (const [field, value] of fields) {
    if (!printable.test(value)) {
      return new UnsafeScriptValue({ field, message: `${field} contains control or non-ASCII characters` })
    }
  }
  for (const [field, value] of [["serverUrl", input.serverUrl], ["agent.apkUrl", input.agent.apkUrl]] as const) {
    if (!urlPattern.test(value)) return new UnsafeScriptValue({ field, message: `${field} must be an http(s) URL without spaces, quotes or backslashes` })
  }
  if (input.serverUrl.endsWith("/")) return new UnsafeScriptValue({ field: "serverUrl", message: "serverUrl must not end with /" })
  if (!/^et_[0-9a-z]{16}$/.test(input.tokenId)) return new UnsafeScriptValue({ field: "tokenId", message: "not an enrollment token id" })
  if (input.token.length === 0 || input.token.length > 256) return new UnsafeScriptValue({ field: "token", message: "token length out of range" })
  if (!packageNamePattern.test(input.agent.packageName)) return new UnsafeScriptValue({ field: "agent.packageName", message: "not a package name" })
  if (!/^[0-9a-f]{64}$/.test(input.agent.sha256Hex)) return new UnsafeScriptValue({ field: "agent.sha256Hex", message: "not a SHA-256 in hex" })
  if (!Number.isSafeInteger(input.agent.versionCode) || input.agent.versionCode < 1) {
    return new UnsafeScriptValue({ field: "agent.versionCode", message: "not a positive integer" })
  }
  return undefined
}

/** `package/.Class` when the class is in the package, else `package/fully.qualified.Class`. */
const componentOf = (packageName: string, className: string) =>
  className.startsWith(`${packageName}.`) ? `${packageName}/${className.slice(packageName.length)}` : `${packageName}/${className}`

/**
 * The agent's components for a release: the classes are fixed (AGENT-CONTRACT.md), the package
 * may carry a suffix (e.g. a debug build), so the class names are written in full when it does.
 */
export const agentComponents = (packageName: string) => ({
  admin: componentOf(packageName, ADMIN_RECEIVER_CLASS),
  enrollReceiver: componentOf(packageName, ENROLL_RECEIVER_CLASS),
  service: componentOf(packageName, AGENT_SERVICE_CLASS)
})

export const scriptFilename = (tokenId: string, platform: ScriptPlatform) =>
  `nexmdm-enroll-${tokenId}.${platform === "bash" ? "sh" : platform === "powershell" ? "ps1" : "cmd"}`

const describeToken = (input: ScriptInput) => `${input.tokenId}${input.tokenLabel === null || input.tokenLabel === "" ? "" : ` (${input.tokenLabel})`}`

// ---------------------------------------------------------------------------------------------
// Bash

export const bashScript = (input: ScriptInput): string => {
  const components = agentComponents(input.agent.packageName)
  const agentVersion = `${input.agent.versionName} (${input.agent.versionCode})`
  return `#!/usr/bin/env bash
# NexMDM enrollment script for enrollment token ${describeToken(input).replaceAll("\n", " ")}
# Generated ${input.generatedAt.toISOString()} by the NexMDM engine at ${input.serverUrl}
# Agent ${agentVersion}, SHA-256 ${input.agent.sha256Hex}
#
# Usage: bash ${scriptFilename(input.tokenId, "bash")} [--serial SERIAL] [--timeout SECONDS]
#
# Enrols every attached, authorised Android device (or only SERIAL): preflight checks (reported to
# the engine), agent download and SHA-256 check, install, device owner, runtime permissions,
# hand-off of the server URL and enrollment token to the agent, then waits until the engine has
# seen each device enrol. Devices must be factory-reset, with no account added, and have USB
# debugging allowed for this computer.
#
# Exit status: 0 every device enrolled; 1 at least one device failed (see the summary);
# 2 nothing was attempted (adb or curl missing, no device, token not usable, download failed).
# Environment: ADB (path of adb), NEXMDM_ENROLL_TIMEOUT_S (default 300), NEXMDM_POLL_INTERVAL_S (3).
#
# This file contains an enrollment token: keep it like a password and delete it after the batch.

set -uo pipefail
umask 077

readonly SERVER_URL=${shQuote(input.serverUrl)}
readonly ENROLLMENT_TOKEN=${shQuote(input.token)}
readonly APK_URL=${shQuote(input.agent.apkUrl)}
readonly APK_SHA256=${shQuote(input.agent.sha256Hex)}
readonly AGENT_VERSION=${shQuote(agentVersion)}
readonly AGENT_PACKAGE=${shQuote(input.agent.packageName)}
readonly ADMIN_COMPONENT=${shQuote(components.admin)}
readonly ENROLL_ACTION=${shQuote(ENROLL_ACTION)}
readonly ENROLL_RECEIVER=${shQuote(components.enrollReceiver)}
readonly AGENT_SERVICE=${shQuote(components.service)}
# The same values as the device's shell must receive them: adb joins its arguments into one command line.
readonly REMOTE_SERVER_URL=${shQuote(shQuote(input.serverUrl))}
readonly REMOTE_ENROLLMENT_TOKEN=${shQuote(shQuote(input.token))}
readonly MIN_SDK=${MIN_SDK}
RUNTIME_PERMISSIONS=(${RUNTIME_PERMISSIONS.map(shQuote).join(" ")})
readonly NOTIFICATION_PERMISSION=${shQuote(NOTIFICATION_PERMISSION)}

ADB=\${ADB:-adb}
TIMEOUT_S=\${NEXMDM_ENROLL_TIMEOUT_S:-300}
POLL_S=\${NEXMDM_POLL_INTERVAL_S:-3}
ONLY_SERIAL=''

usage() {
  printf 'usage: %s [--serial SERIAL] [--timeout SECONDS]\\n' "$0"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --serial)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      ONLY_SERIAL=$2
      shift 2
      ;;
    --serial=*)
      ONLY_SERIAL=\${1#--serial=}
      shift
      ;;
    --timeout)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      TIMEOUT_S=$2
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'unknown option: %s\\n' "$1" >&2
      usage >&2
      exit 2
      ;;
  esac
done

warn() { printf 'nexmdm: %s\\n' "$*" >&2; }
give_up() {
  warn "$*"
  exit 2
}

[[ $TIMEOUT_S =~ ^[0-9]+$ ]] || give_up "--timeout: expected whole seconds, got '$TIMEOUT_S'"
[[ $POLL_S =~ ^[0-9]+([.][0-9]+)?$ ]] || give_up "NEXMDM_POLL_INTERVAL_S: expected seconds, got '$POLL_S'"

command -v "$ADB" >/dev/null 2>&1 || give_up "adb not found: install Android platform-tools and put adb on PATH (or set ADB=/path/to/adb)"
command -v curl >/dev/null 2>&1 || give_up "curl not found: install curl"
if command -v sha256sum >/dev/null 2>&1; then
  sha256_of() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256_of() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  give_up "neither sha256sum nor shasum found"
fi

WORK_DIR=$(mktemp -d "\${TMPDIR:-/tmp}/nexmdm-enroll.XXXXXX") || give_up "cannot create a temporary directory"
readonly WORK_DIR
trap 'rm -rf "$WORK_DIR"' EXIT

# A JSON string of printable ASCII (what the engine accepts), at most $2 characters.
json_str() {
  local s
  s=$(printf '%s' "$1" | LC_ALL=C tr -cd ' -~')
  s=\${s:0:\${2:-500}}
  s=\${s//\\\\/\\\\\\\\}
  s=\${s//\\"/\\\\\\"}
  printf '"%s"' "$s"
}

# POSTs the JSON body on stdin (so the token never shows in a process list); the response body is
# left in $WORK_DIR/response. Succeeds on a 2xx answer.
engine_post() {
  local status
  status=$(curl -sS --max-time 30 -o "$WORK_DIR/response" -w '%{http_code}' \\
    -H 'content-type: application/json' --data-binary @- "$SERVER_URL$1") || return 1
  case "$status" in
    2??) return 0 ;;
    *) return 1 ;;
  esac
}

status_request() { # serials as a JSON list body, e.g. "a","b"
  printf '{"token":%s,"serials":[%s]}' "$(json_str "$ENROLLMENT_TOKEN" 256)" "$1"
}

# ---- the token -------------------------------------------------------------------------------

printf 'NexMDM enrollment: engine %s, agent %s\\n' "$SERVER_URL" "$AGENT_VERSION"
if ! status_request '' | engine_post ${shQuote(STATUS_PATH)}; then
  give_up "the engine at $SERVER_URL did not accept the enrollment token: $(cat "$WORK_DIR/response" 2>/dev/null)"
fi
TOKEN_STATE=$(sed -n 's/.*"state":"\\([a-z_]*\\)".*/\\1/p' "$WORK_DIR/response")
USES_LEFT=$(sed -n 's/.*"usesLeft":\\([0-9]*\\).*/\\1/p' "$WORK_DIR/response")
[ "$TOKEN_STATE" = active ] || give_up "the enrollment token is $TOKEN_STATE: create a new one in the console"

# ---- devices ---------------------------------------------------------------------------------

SERIALS=()
STATES=()
MODELS=()
RELEASES=()
SDKS=()
RESULTS=()
DETAILS=()
SKIP_OWNER=()

if ! DEVICE_LIST=$("$ADB" devices 2>&1); then
  give_up "adb devices failed: $DEVICE_LIST"
fi
while IFS=$'\\t' read -r serial state _; do
  serial=\${serial%$'\\r'}
  state=\${state%$'\\r'}
  case "$serial" in '' | 'List of devices'* | '*'*) continue ;; esac
  [ -z "$state" ] && continue
  if [ -n "$ONLY_SERIAL" ] && [ "$serial" != "$ONLY_SERIAL" ]; then continue; fi
  SERIALS+=("$serial")
  STATES+=("$state")
  MODELS+=('')
  RELEASES+=('')
  SDKS+=('')
  RESULTS+=('PENDING')
  DETAILS+=('')
  SKIP_OWNER+=(0)
done <<<"$DEVICE_LIST"

if [ \${#SERIALS[@]} -eq 0 ]; then
  if [ -n "$ONLY_SERIAL" ]; then give_up "no device with serial $ONLY_SERIAL is attached (adb devices)"; fi
  give_up "no device attached: connect the phones by USB, allow USB debugging, and check 'adb devices'"
fi

printf '%d device(s) attached:\\n' "\${#SERIALS[@]}"
for ((i = 0; i < \${#SERIALS[@]}; i++)); do
  printf '  %s (%s)\\n' "\${SERIALS[$i]}" "\${STATES[$i]}"
done

dev_shell() { # serial command...
  local serial=$1
  shift
  "$ADB" -s "$serial" shell "$@" 2>&1 | tr -d '\\r'
}

problem_json() { # code message
  printf '{"code":"%s","message":%s}' "$1" "$(json_str "$2" 500)"
}

# Tells the engine what happened to device $1 at stage $2; $3 is a JSON list of problems (may be empty).
report() {
  local i=$1 stage=$2 problems=$3 ok=false facts
  [ -z "$problems" ] && ok=true
  facts=$(printf '{"model":%s,"androidRelease":%s' "$(json_str "\${MODELS[$i]}" 128)" "$(json_str "\${RELEASES[$i]}" 32)")
  if [[ \${SDKS[$i]} =~ ^[0-9]{1,3}$ ]]; then facts="$facts,\\"sdk\\":\${SDKS[$i]}"; fi
  facts="$facts}"
  if ! printf '{"token":%s,"serial":%s,"stage":"%s","ok":%s,"problems":[%s],"facts":%s}' \\
    "$(json_str "$ENROLLMENT_TOKEN" 256)" "$(json_str "\${SERIALS[$i]}" 128)" "$stage" "$ok" "$problems" "$facts" |
    engine_post ${shQuote(REPORTS_PATH)}; then
    warn "could not report \${SERIALS[$i]} ($stage) to the engine: $(cat "$WORK_DIR/response" 2>/dev/null)"
  fi
}

fail_device() { # index stage code message
  RESULTS[$1]=FAILED
  DETAILS[$1]="$3: $4"
  printf '  %s: FAILED %s: %s\\n' "\${SERIALS[$1]}" "$3" "$4"
  report "$1" "$2" "$(problem_json "$3" "$4")"
}

preflight() {
  local i=$1 serial=\${SERIALS[$1]} problems='' accounts users owner text
  case "\${STATES[$i]}" in
    device) ;;
    unauthorized)
      fail_device "$i" preflight DEVICE_UNAUTHORIZED "USB debugging is not allowed for this computer: accept the prompt on the device"
      return 1
      ;;
    *)
      fail_device "$i" preflight DEVICE_NOT_READY "adb reports the device as '\${STATES[$i]}': reconnect it"
      return 1
      ;;
  esac
  if ! [[ $serial =~ ^[A-Za-z0-9._:-]{1,128}$ ]]; then
    RESULTS[i]=FAILED
    DETAILS[i]="UNSUPPORTED_SERIAL: the serial has characters this script does not handle"
    return 1
  fi
  SDKS[i]=$(dev_shell "$serial" getprop ro.build.version.sdk)
  RELEASES[i]=$(dev_shell "$serial" getprop ro.build.version.release)
  MODELS[i]=$(dev_shell "$serial" getprop ro.product.model)
  accounts=$(dev_shell "$serial" dumpsys account | awk '/^[[:space:]]*Accounts:[[:space:]]*[0-9]+/ { n += $2 } END { print n + 0 }')
  users=$(dev_shell "$serial" pm list users | grep -c 'UserInfo{')
  owner=$(dev_shell "$serial" dumpsys device_policy |
    awk '/Device Owner/ { inside = 1 } inside && match($0, /admin=ComponentInfo[{][^}]*[}]/) { print substr($0, RSTART + 20, RLENGTH - 21); exit }')

  add_problem() {
    [ -n "$problems" ] && problems="$problems,"
    problems="$problems$(problem_json "$1" "$2")"
    DETAILS[i]="\${DETAILS[$i]:+\${DETAILS[$i]}; }$1: $2"
    printf '  %s: %s: %s\\n' "$serial" "$1" "$2"
  }
  if ! [[ \${SDKS[$i]} =~ ^[0-9]+$ ]]; then
    add_problem ANDROID_VERSION_UNKNOWN "cannot read the Android version (getprop ro.build.version.sdk)"
  elif [ "\${SDKS[$i]}" -lt "$MIN_SDK" ]; then
    add_problem ANDROID_TOO_OLD "Android \${RELEASES[$i]} (SDK \${SDKS[$i]}) is older than the agent supports (SDK $MIN_SDK, Android 8.0)"
  fi
  if [ -n "$owner" ]; then
    if [ "\${owner%%/*}" = "$AGENT_PACKAGE" ]; then
      SKIP_OWNER[i]=1
    else
      add_problem DEVICE_OWNER_EXISTS "the device is already managed by $owner: factory-reset it to enrol it with NexMDM"
    fi
  fi
  if [ "$accounts" -gt 0 ] 2>/dev/null; then
    text="$accounts account(s) on the device: Android refuses a device owner then. Factory-reset it and run this script before adding any account (skip sign-in in the setup wizard)"
    add_problem ACCOUNTS_PRESENT "$text"
  fi
  if [ "$users" -gt 1 ] 2>/dev/null; then
    add_problem MULTIPLE_USERS "$users users on the device: a device owner needs a freshly reset device with one user"
  fi
  report "$i" preflight "$problems"
  if [ -n "$problems" ]; then
    RESULTS[i]=FAILED
    return 1
  fi
  printf '  %s: preflight ok (%s, Android %s)\\n' "$serial" "\${MODELS[$i]}" "\${RELEASES[$i]}"
}

# The serials (JSON list) of the devices whose result is $1.
serials_in() {
  local i list=''
  for ((i = 0; i < \${#SERIALS[@]}; i++)); do
    if [ "\${RESULTS[$i]}" = "$1" ] && [[ \${SERIALS[$i]} =~ ^[A-Za-z0-9._:-]{1,128}$ ]]; then
      list="$list\${list:+,}$(json_str "\${SERIALS[$i]}" 128)"
    fi
  done
  printf '%s' "$list"
}

# The device id the last status answer gives device $1, if it enrolled.
enrolled_id() {
  local pattern=\${SERIALS[$1]//./\\\\.}
  sed -n "s/.*\\"serial\\":\\"$pattern\\",\\"deviceId\\":\\"\\([A-Za-z0-9_]*\\)\\".*/\\1/p" "$WORK_DIR/response"
}

# Devices this token enrolled already (the script is run again) are done: nothing to install.
KNOWN_LIST=$(serials_in PENDING)
if [ -n "$KNOWN_LIST" ] && status_request "$KNOWN_LIST" | engine_post ${shQuote(STATUS_PATH)}; then
  for ((i = 0; i < \${#SERIALS[@]}; i++)); do
    [ "\${RESULTS[$i]}" = PENDING ] || continue
    device_id=$(enrolled_id "$i")
    if [ -n "$device_id" ]; then
      RESULTS[i]=ENROLLED
      DETAILS[i]="already enrolled: device $device_id"
      printf '  %s: already enrolled with this token (device %s)\\n' "\${SERIALS[$i]}" "$device_id"
    fi
  done
fi

printf 'Preflight\\n'
PASSED=0
for ((i = 0; i < \${#SERIALS[@]}; i++)); do
  [ "\${RESULTS[$i]}" = PENDING ] || continue
  if preflight "$i"; then PASSED=$((PASSED + 1)); fi
done

if [ "$PASSED" -gt "\${USES_LEFT:-0}" ]; then
  give_up "$PASSED devices passed the preflight but the token allows \${USES_LEFT:-0} more enrollments: attach fewer devices, pick one with --serial, or use a token with more uses"
fi

# ---- the agent -------------------------------------------------------------------------------

APK="$WORK_DIR/agent.apk"
if [ "$PASSED" -gt 0 ]; then
  printf 'Downloading the agent %s\\n' "$AGENT_VERSION"
  if ! curl -fsSL --retry 3 --speed-limit 1024 --speed-time 60 -o "$APK" "$APK_URL"; then
    give_up "could not download the agent from $APK_URL"
  fi
  ACTUAL_SHA256=$(sha256_of "$APK")
  if [ "$ACTUAL_SHA256" != "$APK_SHA256" ]; then
    give_up "the downloaded agent is not the release this script was made for (SHA-256 $ACTUAL_SHA256, expected $APK_SHA256): nothing was installed"
  fi
  printf '  SHA-256 verified: %s\\n' "$APK_SHA256"
fi

provision() {
  local i=$1 serial=\${SERIALS[$1]} out perm
  printf '  %s: installing\\n' "$serial"
  out=$("$ADB" -s "$serial" install -r "$APK" 2>&1 | tr -d '\\r')
  if ! grep -q '^Success' <<<"$out"; then
    fail_device "$i" install INSTALL_FAILED "adb install: $(tail -n 1 <<<"$out")"
    return 1
  fi
  if [ "\${SKIP_OWNER[$i]}" = 1 ]; then
    printf '  %s: the agent is already device owner\\n' "$serial"
  else
    out=$(dev_shell "$serial" dpm set-device-owner "$ADMIN_COMPONENT")
    if ! grep -q '^Success' <<<"$out"; then
      case "$out" in
        *ccount*) fail_device "$i" device_owner SET_DEVICE_OWNER_FAILED "the device has accounts: factory-reset it and do not add an account before running this script ($(tail -n 1 <<<"$out"))" ;;
        *rovisioned* | *lready* | *users*) fail_device "$i" device_owner SET_DEVICE_OWNER_FAILED "the device is not freshly reset (already provisioned or has a device owner): factory-reset it ($(tail -n 1 <<<"$out"))" ;;
        *) fail_device "$i" device_owner SET_DEVICE_OWNER_FAILED "dpm set-device-owner: $(tail -n 1 <<<"$out")" ;;
      esac
      return 1
    fi
  fi
  local permissions=("\${RUNTIME_PERMISSIONS[@]}")
  if [ "\${SDKS[$i]}" -ge 33 ]; then permissions+=("$NOTIFICATION_PERMISSION"); fi
  for perm in "\${permissions[@]}"; do
    out=$(dev_shell "$serial" pm grant "$AGENT_PACKAGE" "$perm")
    if [ -n "$out" ]; then
      fail_device "$i" permissions GRANT_FAILED "pm grant $perm: $(tail -n 1 <<<"$out")"
      return 1
    fi
  done
  out=$(dev_shell "$serial" am broadcast --include-stopped-packages -a "$ENROLL_ACTION" -n "$ENROLL_RECEIVER" \\
    --es ${EXTRA_SERVER_URL} "$REMOTE_SERVER_URL" --es ${EXTRA_ENROLLMENT_TOKEN} "$REMOTE_ENROLLMENT_TOKEN" --es ${EXTRA_DEVICE_SERIAL} "$serial")
  if ! grep -q 'result=-1' <<<"$out"; then
    fail_device "$i" handoff HANDOFF_FAILED "the agent did not accept the enrollment intent: $(tail -n 1 <<<"$out")"
    return 1
  fi
  out=$(dev_shell "$serial" am start-foreground-service -n "$AGENT_SERVICE")
  case "$out" in
    *rror* | *xception*)
      fail_device "$i" handoff AGENT_START_FAILED "could not start the agent: $(tail -n 1 <<<"$out")"
      return 1
      ;;
  esac
  RESULTS[i]=WAITING
  printf '  %s: agent started, waiting for it to enrol\\n' "$serial"
}

if [ "$PASSED" -gt 0 ]; then
  printf 'Provisioning\\n'
  for ((i = 0; i < \${#SERIALS[@]}; i++)); do
    [ "\${RESULTS[$i]}" = PENDING ] && provision "$i"
  done
fi

# ---- waiting for the engine ------------------------------------------------------------------

DEADLINE=$(($(date +%s) + TIMEOUT_S))
PENDING_LIST=$(serials_in WAITING)
while [ -n "$PENDING_LIST" ]; do
  if status_request "$PENDING_LIST" | engine_post ${shQuote(STATUS_PATH)}; then
    for ((i = 0; i < \${#SERIALS[@]}; i++)); do
      [ "\${RESULTS[$i]}" = WAITING ] || continue
      device_id=$(enrolled_id "$i")
      if [ -n "$device_id" ]; then
        RESULTS[i]=ENROLLED
        DETAILS[i]="device $device_id"
        printf '  %s: enrolled as %s\\n' "\${SERIALS[$i]}" "$device_id"
      fi
    done
  else
    warn "status request failed (will retry): $(cat "$WORK_DIR/response" 2>/dev/null)"
  fi
  PENDING_LIST=$(serials_in WAITING)
  [ -z "$PENDING_LIST" ] && break
  if [ "$(date +%s)" -ge "$DEADLINE" ]; then
    for ((i = 0; i < \${#SERIALS[@]}; i++)); do
      if [ "\${RESULTS[$i]}" = WAITING ]; then
        fail_device "$i" enroll ENROLL_TIMEOUT "the agent did not enrol within \${TIMEOUT_S}s: check that the device reaches $SERVER_URL"
      fi
    done
    break
  fi
  sleep "$POLL_S"
done

# ---- summary ---------------------------------------------------------------------------------

FAILED=0
printf '\\n%-24s %-20s %-8s %-9s %s\\n' SERIAL MODEL ANDROID RESULT DETAIL
for ((i = 0; i < \${#SERIALS[@]}; i++)); do
  [ "\${RESULTS[$i]}" = ENROLLED ] || FAILED=$((FAILED + 1))
  printf '%-24s %-20s %-8s %-9s %s\\n' "\${SERIALS[$i]}" "\${MODELS[$i]:--}" "\${RELEASES[$i]:--}" "\${RESULTS[$i]}" "\${DETAILS[$i]}"
done
printf '\\n%d of %d device(s) enrolled\\n' "$((\${#SERIALS[@]} - FAILED))" "\${#SERIALS[@]}"
[ "$FAILED" -eq 0 ] || exit 1
exit 0
`
}

// ---------------------------------------------------------------------------------------------
// PowerShell (Windows PowerShell 5.1 and PowerShell 7), and its .cmd launcher

export const powershellScript = (input: ScriptInput): string => {
  const components = agentComponents(input.agent.packageName)
  const agentVersion = `${input.agent.versionName} (${input.agent.versionCode})`
  const script = `<#
.SYNOPSIS
  NexMDM enrollment script for enrollment token ${describeToken(input).replaceAll("#>", "# >")}

.DESCRIPTION
  Generated ${input.generatedAt.toISOString()} by the NexMDM engine. Agent ${agentVersion}.
  Enrols every attached, authorised Android device (or only -Serial): preflight checks (reported
  to the engine), agent download and SHA-256 check, install, device owner, runtime permissions,
  hand-off of the server URL and enrollment token to the agent, then waits until the engine has
  seen each device enrol. Devices must be factory-reset, with no account added, and have USB
  debugging allowed for this computer.

  Exit code: 0 every device enrolled; 1 at least one device failed (see the summary);
  2 nothing was attempted (adb missing, no device, token not usable, download failed).
  Environment: ADB (path of adb.exe), NEXMDM_ENROLL_TIMEOUT_S, NEXMDM_POLL_INTERVAL_S.

  This file contains an enrollment token: keep it like a password and delete it after the batch.
#>
[CmdletBinding()]
param(
  [string]$Serial = '',
  [int]$TimeoutSeconds = 0
)

Set-StrictMode -Version 2
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try { [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12 } catch { }

$ServerUrl = ${psQuote(input.serverUrl)}
$EnrollmentToken = ${psQuote(input.token)}
$ApkUrl = ${psQuote(input.agent.apkUrl)}
$ApkSha256 = ${psQuote(input.agent.sha256Hex)}
$AgentVersion = ${psQuote(agentVersion)}
$AgentPackage = ${psQuote(input.agent.packageName)}
$AdminComponent = ${psQuote(components.admin)}
$EnrollAction = ${psQuote(ENROLL_ACTION)}
$EnrollReceiver = ${psQuote(components.enrollReceiver)}
$AgentService = ${psQuote(components.service)}
# The same values as the device's shell must receive them: adb joins its arguments into one command line.
$RemoteServerUrl = ${psQuote(shQuote(input.serverUrl))}
$RemoteEnrollmentToken = ${psQuote(shQuote(input.token))}
$MinSdk = ${MIN_SDK}
$RuntimePermissions = @(${RUNTIME_PERMISSIONS.map(psQuote).join(", ")})
$NotificationPermission = ${psQuote(NOTIFICATION_PERMISSION)}
$ReportsPath = ${psQuote(REPORTS_PATH)}
$StatusPath = ${psQuote(STATUS_PATH)}

$Adb = if ($env:ADB) { $env:ADB } else { 'adb' }
if ($TimeoutSeconds -le 0) { $TimeoutSeconds = if ($env:NEXMDM_ENROLL_TIMEOUT_S) { [int]$env:NEXMDM_ENROLL_TIMEOUT_S } else { 300 } }
$PollSeconds = if ($env:NEXMDM_POLL_INTERVAL_S) { [double]$env:NEXMDM_POLL_INTERVAL_S } else { 3 }

function Stop-Enrollment([string]$Message) {
  [Console]::Error.WriteLine("nexmdm: $Message")
  exit 2
}

if (-not (Get-Command $Adb -ErrorAction SilentlyContinue)) {
  Stop-Enrollment 'adb not found: install Android platform-tools and put adb.exe on PATH (or set $env:ADB)'
}

# Runs adb; returns its output (stdout and stderr) as one string without carriage returns.
function Invoke-Adb([string[]]$Arguments) {
  $previous = $ErrorActionPreference
  $ErrorActionPreference = 'Continue'
  try {
    $output = & $Adb @Arguments 2>&1 | ForEach-Object { "$_" }
    return (($output -join [Environment]::NewLine) -replace [char]13, '')
  } finally {
    $ErrorActionPreference = $previous
  }
}

function Invoke-DeviceShell([string]$DeviceSerial, [string[]]$Command) {
  return Invoke-Adb (@('-s', $DeviceSerial, 'shell') + $Command)
}

# POSTs a body to the engine; returns the parsed answer, or $null (with a warning) when refused.
function Invoke-Engine([string]$Path, [hashtable]$Body) {
  $json = ConvertTo-Json -InputObject $Body -Depth 6 -Compress
  try {
    return Invoke-RestMethod -UseBasicParsing -Method Post -Uri ($ServerUrl + $Path) -ContentType 'application/json' -Body $json -TimeoutSec 30
  } catch {
    Write-Warning ("engine request {0} failed: {1}" -f $Path, $_.Exception.Message)
    return $null
  }
}

function Limit-Text([string]$Text, [int]$Max) {
  $clean = ($Text -replace '[^\\x20-\\x7E]', '')
  if ($clean.Length -gt $Max) { return $clean.Substring(0, $Max) }
  return $clean
}

Write-Host ("NexMDM enrollment: engine {0}, agent {1}" -f $ServerUrl, $AgentVersion)
$tokenStatus = Invoke-Engine $StatusPath @{ token = $EnrollmentToken; serials = @() }
if ($null -eq $tokenStatus) { Stop-Enrollment "the engine at $ServerUrl did not accept the enrollment token" }
if ($tokenStatus.token.state -ne 'active') { Stop-Enrollment ("the enrollment token is {0}: create a new one in the console" -f $tokenStatus.token.state) }
$usesLeft = [int]$tokenStatus.token.usesLeft

# ---- devices -----------------------------------------------------------------------------------

$devices = New-Object System.Collections.ArrayList
foreach ($line in ((Invoke-Adb @('devices')) -split "\`n")) {
  $parts = $line.Trim() -split "\`t"
  if ($parts.Count -lt 2 -or $parts[0] -like 'List of devices*' -or $parts[0].StartsWith('*')) { continue }
  if ($Serial -ne '' -and $parts[0] -ne $Serial) { continue }
  [void]$devices.Add([pscustomobject]@{
    Serial = $parts[0]; State = $parts[1]; Model = ''; Release = ''; Sdk = ''
    Result = 'PENDING'; Detail = ''; SkipOwner = $false
  })
}
if ($devices.Count -eq 0) {
  if ($Serial -ne '') { Stop-Enrollment "no device with serial $Serial is attached (adb devices)" }
  Stop-Enrollment "no device attached: connect the phones by USB, allow USB debugging, and check 'adb devices'"
}
Write-Host ("{0} device(s) attached:" -f $devices.Count)
foreach ($device in $devices) { Write-Host ("  {0} ({1})" -f $device.Serial, $device.State) }

function Send-Report($Device, [string]$Stage, [object[]]$Problems) {
  $facts = @{ model = (Limit-Text $Device.Model 128); androidRelease = (Limit-Text $Device.Release 32) }
  if ($Device.Sdk -match '^[0-9]{1,3}$') { $facts.sdk = [int]$Device.Sdk }
  $body = @{ token = $EnrollmentToken; serial = $Device.Serial; stage = $Stage; ok = ($Problems.Count -eq 0); problems = @($Problems); facts = $facts }
  [void](Invoke-Engine $ReportsPath $body)
}

function New-Problem([string]$Code, [string]$Message) {
  return @{ code = $Code; message = (Limit-Text $Message 500) }
}

function Set-Failed($Device, [string]$Stage, [string]$Code, [string]$Message) {
  $Device.Result = 'FAILED'
  $Device.Detail = "$($Code): $Message"
  Write-Host ("  {0}: FAILED {1}: {2}" -f $Device.Serial, $Code, $Message)
  Send-Report $Device $Stage @(New-Problem $Code $Message)
}

function Get-LastLine([string]$Text) {
  $lines = @($Text -split "\`n" | Where-Object { $_ -ne '' })
  if ($lines.Count -eq 0) { return '' }
  return $lines[$lines.Count - 1]
}

function Test-Preflight($Device) {
  switch ($Device.State) {
    'device' { }
    'unauthorized' { Set-Failed $Device 'preflight' 'DEVICE_UNAUTHORIZED' 'USB debugging is not allowed for this computer: accept the prompt on the device'; return $false }
    default { Set-Failed $Device 'preflight' 'DEVICE_NOT_READY' ("adb reports the device as '{0}': reconnect it" -f $Device.State); return $false }
  }
  if ($Device.Serial -notmatch '^[A-Za-z0-9._:-]{1,128}$') {
    $Device.Result = 'FAILED'; $Device.Detail = 'UNSUPPORTED_SERIAL: the serial has characters this script does not handle'
    return $false
  }
  $s = $Device.Serial
  $Device.Sdk = (Invoke-DeviceShell $s @('getprop', 'ro.build.version.sdk')).Trim()
  $Device.Release = (Invoke-DeviceShell $s @('getprop', 'ro.build.version.release')).Trim()
  $Device.Model = (Invoke-DeviceShell $s @('getprop', 'ro.product.model')).Trim()
  $accounts = 0
  foreach ($m in [regex]::Matches((Invoke-DeviceShell $s @('dumpsys', 'account')), '(?m)^\\s*Accounts:\\s*(\\d+)')) { $accounts += [int]$m.Groups[1].Value }
  $users = [regex]::Matches((Invoke-DeviceShell $s @('pm', 'list', 'users')), 'UserInfo\\{').Count
  $owner = ''
  $policy = Invoke-DeviceShell $s @('dumpsys', 'device_policy')
  $ownerMatch = [regex]::Match($policy, '(?s)Device Owner.*?admin=ComponentInfo\\{([^}]*)\\}')
  if ($ownerMatch.Success) { $owner = $ownerMatch.Groups[1].Value }

  $problems = @()
  if ($Device.Sdk -notmatch '^[0-9]+$') {
    $problems += New-Problem 'ANDROID_VERSION_UNKNOWN' 'cannot read the Android version (getprop ro.build.version.sdk)'
  } elseif ([int]$Device.Sdk -lt $MinSdk) {
    $problems += New-Problem 'ANDROID_TOO_OLD' ("Android {0} (SDK {1}) is older than the agent supports (SDK {2}, Android 8.0)" -f $Device.Release, $Device.Sdk, $MinSdk)
  }
  if ($owner -ne '') {
    if ($owner.Split('/')[0] -eq $AgentPackage) { $Device.SkipOwner = $true }
    else { $problems += New-Problem 'DEVICE_OWNER_EXISTS' "the device is already managed by $($owner): factory-reset it to enrol it with NexMDM" }
  }
  if ($accounts -gt 0) {
    $problems += New-Problem 'ACCOUNTS_PRESENT' "$accounts account(s) on the device: Android refuses a device owner then. Factory-reset it and run this script before adding any account (skip sign-in in the setup wizard)"
  }
  if ($users -gt 1) {
    $problems += New-Problem 'MULTIPLE_USERS' "$users users on the device: a device owner needs a freshly reset device with one user"
  }
  Send-Report $Device 'preflight' $problems
  if ($problems.Count -gt 0) {
    $Device.Result = 'FAILED'
    $Device.Detail = (($problems | ForEach-Object { "$($_.code): $($_.message)" }) -join '; ')
    foreach ($p in $problems) { Write-Host ("  {0}: {1}: {2}" -f $s, $p.code, $p.message) }
    return $false
  }
  Write-Host ("  {0}: preflight ok ({1}, Android {2})" -f $s, $Device.Model, $Device.Release)
  return $true
}

# Devices this token enrolled already (the script is run again) are done: nothing to install.
$known = @($devices | Where-Object { $_.Serial -match '^[A-Za-z0-9._:-]{1,128}$' } | ForEach-Object { $_.Serial })
if ($known.Count -gt 0) {
  $answer = Invoke-Engine $StatusPath @{ token = $EnrollmentToken; serials = $known }
  if ($null -ne $answer) {
    foreach ($enrolled in @($answer.enrolled)) {
      foreach ($device in $devices) {
        if ($device.Serial -eq $enrolled.serial) {
          $device.Result = 'ENROLLED'
          $device.Detail = "already enrolled: device $($enrolled.deviceId)"
          Write-Host ("  {0}: already enrolled with this token (device {1})" -f $device.Serial, $enrolled.deviceId)
        }
      }
    }
  }
}

Write-Host 'Preflight'
$passed = 0
foreach ($device in @($devices | Where-Object { $_.Result -eq 'PENDING' })) { if (Test-Preflight $device) { $passed++ } }
if ($passed -gt $usesLeft) {
  Stop-Enrollment "$passed devices passed the preflight but the token allows $usesLeft more enrollments: attach fewer devices, pick one with -Serial, or use a token with more uses"
}

# ---- the agent ---------------------------------------------------------------------------------

$workDir = Join-Path ([IO.Path]::GetTempPath()) ('nexmdm-enroll-' + [Guid]::NewGuid().ToString('N'))
[void](New-Item -ItemType Directory -Path $workDir)
$apk = Join-Path $workDir 'agent.apk'
try {
  if ($passed -gt 0) {
    Write-Host "Downloading the agent $AgentVersion"
    try {
      Invoke-WebRequest -UseBasicParsing -Uri $ApkUrl -OutFile $apk -TimeoutSec 900
    } catch {
      Stop-Enrollment ("could not download the agent from {0}: {1}" -f $ApkUrl, $_.Exception.Message)
    }
    $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $apk).Hash.ToLowerInvariant()
    if ($actual -ne $ApkSha256) {
      Stop-Enrollment "the downloaded agent is not the release this script was made for (SHA-256 $actual, expected $ApkSha256): nothing was installed"
    }
    Write-Host "  SHA-256 verified: $ApkSha256"
    Write-Host 'Provisioning'
  }

  foreach ($device in @($devices | Where-Object { $_.Result -eq 'PENDING' })) {
    $s = $device.Serial
    Write-Host "  $($s): installing"
    $out = Invoke-Adb @('-s', $s, 'install', '-r', $apk)
    if ($out -notmatch '(?m)^Success') { Set-Failed $device 'install' 'INSTALL_FAILED' ("adb install: " + (Get-LastLine $out)); continue }
    if ($device.SkipOwner) {
      Write-Host "  $($s): the agent is already device owner"
    } else {
      $out = Invoke-DeviceShell $s @('dpm', 'set-device-owner', $AdminComponent)
      if ($out -notmatch '(?m)^Success') {
        $last = Get-LastLine $out
        if ($out -match 'ccount') { $why = "the device has accounts: factory-reset it and do not add an account before running this script ($last)" }
        elseif ($out -match 'rovisioned|lready|users') { $why = "the device is not freshly reset (already provisioned or has a device owner): factory-reset it ($last)" }
        else { $why = "dpm set-device-owner: $last" }
        Set-Failed $device 'device_owner' 'SET_DEVICE_OWNER_FAILED' $why
        continue
      }
    }
    $permissions = @($RuntimePermissions)
    if ([int]$device.Sdk -ge 33) { $permissions += $NotificationPermission }
    $granted = $true
    foreach ($permission in $permissions) {
      $out = Invoke-DeviceShell $s @('pm', 'grant', $AgentPackage, $permission)
      if ($out.Trim() -ne '') { Set-Failed $device 'permissions' 'GRANT_FAILED' ("pm grant {0}: {1}" -f $permission, (Get-LastLine $out)); $granted = $false; break }
    }
    if (-not $granted) { continue }
    $out = Invoke-DeviceShell $s @('am', 'broadcast', '--include-stopped-packages', '-a', $EnrollAction, '-n', $EnrollReceiver,
      '--es', '${EXTRA_SERVER_URL}', $RemoteServerUrl, '--es', '${EXTRA_ENROLLMENT_TOKEN}', $RemoteEnrollmentToken, '--es', '${EXTRA_DEVICE_SERIAL}', $s)
    if ($out -notmatch 'result=-1') { Set-Failed $device 'handoff' 'HANDOFF_FAILED' ("the agent did not accept the enrollment intent: " + (Get-LastLine $out)); continue }
    $out = Invoke-DeviceShell $s @('am', 'start-foreground-service', '-n', $AgentService)
    if ($out -match 'rror|xception') { Set-Failed $device 'handoff' 'AGENT_START_FAILED' ("could not start the agent: " + (Get-LastLine $out)); continue }
    $device.Result = 'WAITING'
    Write-Host "  $($s): agent started, waiting for it to enrol"
  }

  # ---- waiting for the engine --------------------------------------------------------------------

  $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
  while ($true) {
    $waiting = @($devices | Where-Object { $_.Result -eq 'WAITING' })
    if ($waiting.Count -eq 0) { break }
    $answer = Invoke-Engine $StatusPath @{ token = $EnrollmentToken; serials = @($waiting | ForEach-Object { $_.Serial }) }
    if ($null -ne $answer) {
      foreach ($enrolled in @($answer.enrolled)) {
        foreach ($device in $waiting) {
          if ($device.Serial -eq $enrolled.serial) {
            $device.Result = 'ENROLLED'
            $device.Detail = "device $($enrolled.deviceId)"
            Write-Host ("  {0}: enrolled as {1}" -f $device.Serial, $enrolled.deviceId)
          }
        }
      }
    }
    if (@($devices | Where-Object { $_.Result -eq 'WAITING' }).Count -eq 0) { break }
    if ((Get-Date) -ge $deadline) {
      foreach ($device in @($devices | Where-Object { $_.Result -eq 'WAITING' })) {
        Set-Failed $device 'enroll' 'ENROLL_TIMEOUT' "the agent did not enrol within $($TimeoutSeconds)s: check that the device reaches $ServerUrl"
      }
      break
    }
    Start-Sleep -Milliseconds ([int]($PollSeconds * 1000))
  }
} finally {
  Remove-Item -Recurse -Force -LiteralPath $workDir -ErrorAction SilentlyContinue
}

# ---- summary -----------------------------------------------------------------------------------

Write-Host ''
Write-Host ('{0,-24} {1,-20} {2,-8} {3,-9} {4}' -f 'SERIAL', 'MODEL', 'ANDROID', 'RESULT', 'DETAIL')
$failed = 0
foreach ($device in $devices) {
  if ($device.Result -ne 'ENROLLED') { $failed++ }
  $model = if ($device.Model) { $device.Model } else { '-' }
  $release = if ($device.Release) { $device.Release } else { '-' }
  Write-Host ('{0,-24} {1,-20} {2,-8} {3,-9} {4}' -f $device.Serial, $model, $release, $device.Result, $device.Detail)
}
Write-Host ''
Write-Host ("{0} of {1} device(s) enrolled" -f ($devices.Count - $failed), $devices.Count)
if ($failed -gt 0) { exit 1 }
exit 0
`
  // Windows PowerShell 5.1 reads a file without BOM as the ANSI code page: the script is ASCII only.
  return script.replaceAll("\n", "\r\n")
}

/** Runs the PowerShell script with the same base name from the same folder (double-click friendly). */
export const cmdLauncher = (input: ScriptInput): string =>
  [
    "@echo off",
    `rem NexMDM enrollment launcher for enrollment token ${input.tokenId}: runs the PowerShell script with the`,
    `rem same name next to it (${scriptFilename(input.tokenId, "powershell")} beside ${scriptFilename(input.tokenId, "cmd")}).`,
    "rem Arguments are passed on, e.g. -Serial R58N12ABCDE.",
    "setlocal",
    `powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dpn0.ps1" %*`,
    "set NEXMDM_EXIT=%ERRORLEVEL%",
    "if not \"%NEXMDM_NO_PAUSE%\"==\"1\" pause",
    "exit /b %NEXMDM_EXIT%",
    ""
  ].join("\r\n")

/** The script of `platform` for `input`, or why a value cannot be embedded. */
export const generateScript = (platform: ScriptPlatform, input: ScriptInput): GeneratedFile | UnsafeScriptValue => {
  const problem = checkScriptInput(input)
  if (problem !== undefined) return problem
  const filename = scriptFilename(input.tokenId, platform)
  switch (platform) {
    case "bash":
      return { filename, contentType: "text/x-shellscript; charset=us-ascii", body: bashScript(input) }
    case "powershell":
      return { filename, contentType: "text/plain; charset=us-ascii", body: powershellScript(input) }
    case "cmd":
      return { filename, contentType: "text/plain; charset=us-ascii", body: cmdLauncher(input) }
  }
}
