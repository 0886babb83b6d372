/**
 * Every tunable of the engine, declared once with its environment variable, default and meaning.
 * A bad value fails start-up with a ConfigError that names the variable.
 */
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"

// Validate before the default: after withDefault a failed validation loses the variable's name.
const int = (name: string, fallback: number, min: number, max: number, description: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer between ${min} and ${max}`, validation: (n) => n >= min && n <= max }),
    Config.withDefault(fallback),
    Config.withDescription(description)
  )

const seconds = (name: string, fallback: number, min: number, max: number, description: string) =>
  int(name, fallback, min, max, `${description} (seconds)`).pipe(Config.map(Duration.seconds))

const logLevels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/** No default: absent means "derive from other settings". */
const optionalSeconds = (name: string, min: number, max: number, description: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer between ${min} and ${max}`, validation: (n) => n >= min && n <= max }),
    Config.withDescription(`${description} (seconds)`),
    Config.map(Duration.seconds)
  )

const millis = (name: string, fallback: number, min: number, max: number, description: string) =>
  int(name, fallback, min, max, `${description} (milliseconds)`).pipe(Config.map(Duration.millis))

const factor = (name: string, fallback: number, description: string) =>
  Config.number(name).pipe(
    Config.validate({ message: "must be a number between 1 and 1000", validation: (n) => n >= 1 && n <= 1000 }),
    Config.withDefault(fallback),
    Config.withDescription(`${description} (times the device's heartbeat interval)`)
  )

const port = (name: string, fallback: number, description: string) => int(name, fallback, 0, 65535, description)

export const engineConfig = Config.all({
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")).pipe(
    Config.withDescription("PostgreSQL URL; when absent the engine runs an embedded PGlite in NEXMDM_DATA_DIR")
  ),
  dataDir: Config.string("NEXMDM_DATA_DIR").pipe(
    Config.withDefault(".data"),
    Config.withDescription("Folder for the embedded database and other local state")
  ),
  dbPoolSize: int("NEXMDM_DB_POOL_SIZE", 10, 2, 200, "PostgreSQL connection pool size"),
  host: Config.string("NEXMDM_HOST").pipe(Config.withDefault("0.0.0.0"), Config.withDescription("Address both planes bind to")),
  devicePort: port("NEXMDM_DEVICE_PORT", 8080, "Device plane port (WebSocket, HTTP fallback, enrollment)"),
  adminPort: port("NEXMDM_ADMIN_PORT", 8081, "Admin plane port (/metrics, /healthz, /readyz, API)"),
  tlsCertFile: Config.option(Config.string("NEXMDM_TLS_CERT_FILE")).pipe(
    Config.withDescription("PEM certificate: when set with NEXMDM_TLS_KEY_FILE the device plane terminates TLS itself")
  ),
  tlsKeyFile: Config.option(Config.string("NEXMDM_TLS_KEY_FILE")).pipe(Config.withDescription("PEM private key for TLS")),
  heartbeatInterval: seconds("NEXMDM_HEARTBEAT_INTERVAL_S", 30, 1, 3600, "Heartbeat interval devices are told to use"),
  overdueAfter: Config.option(
    optionalSeconds("NEXMDM_OVERDUE_AFTER_S", 1, 86400, "Connected device without a heartbeat for this long is 'overdue' (default 2.5 intervals)")
  ),
  offlineAfter: Config.option(
    optionalSeconds("NEXMDM_OFFLINE_AFTER_S", 1, 86400, "Device without a heartbeat for this long is 'offline' (default 5 intervals)")
  ),
  // The heartbeatPolicy announced to agents (PROTOCOL.md 9.6): factor 1 everywhere turns it off.
  batteryIntervalFactor: factor("NEXMDM_BATTERY_INTERVAL_FACTOR", 2, "Advised interval on battery"),
  meteredIntervalFactor: factor("NEXMDM_METERED_INTERVAL_FACTOR", 4, "Advised interval on battery over a metered (cellular) network"),
  lowBatteryIntervalFactor: factor("NEXMDM_LOW_BATTERY_INTERVAL_FACTOR", 10, "Advised interval at or below NEXMDM_LOW_BATTERY_PCT"),
  lowBatteryPct: int("NEXMDM_LOW_BATTERY_PCT", 15, 0, 100, "Battery level at or below which the low-battery interval applies (%)"),
  dozeIntervalFactor: factor("NEXMDM_DOZE_INTERVAL_FACTOR", 10, "Advised interval while the device is in Doze"),
  dozeMinInterval: seconds("NEXMDM_DOZE_MIN_INTERVAL_S", 900, 1, 86400, "Shortest advised interval in Doze"),
  grace: seconds("NEXMDM_GRACE_S", 45, 0, 3600, "Socket closed this long without reconnect before a device is 'offline'"),
  passivateAfter: seconds("NEXMDM_PASSIVATE_AFTER_S", 600, 1, 86400, "Offline actors are dropped from memory after"),
  sweepInterval: millis("NEXMDM_SWEEP_INTERVAL_MS", 1000, 10, 60000, "How often presence is re-evaluated"),
  retentionHours: int("NEXMDM_RETENTION_HOURS", 48, 1, 24 * 365, "Heartbeats older than this are dropped (by day partition)"),
  batchMaxRows: int("NEXMDM_BATCH_MAX_ROWS", 1000, 1, 50000, "Write-behind: rows per insert"),
  batchMaxDelay: millis("NEXMDM_BATCH_MAX_DELAY_MS", 50, 1, 60000, "Write-behind: longest wait before a partial batch is written"),
  writeShards: int("NEXMDM_WRITE_SHARDS", 2, 1, 16, "Write-behind: batches in flight at once (devices are sharded by id)"),
  bufferMaxRows: int("NEXMDM_BUFFER_MAX_ROWS", 500000, 100, 50_000_000, "Write-behind: rows held in memory before devices are told to back off"),
  mailboxSize: int("NEXMDM_MAILBOX_SIZE", 256, 4, 100000, "Messages queued per device actor before MailboxFull"),
  maxFrameBytes: int("NEXMDM_MAX_FRAME_BYTES", 16 * 1024, 512, 1024 * 1024, "Largest WebSocket frame accepted"),
  idleTimeout: seconds("NEXMDM_IDLE_TIMEOUT_S", 120, 8, 960, "Socket closed when nothing was received for"),
  authTimeout: seconds("NEXMDM_AUTH_TIMEOUT_S", 10, 1, 120, "Socket closed when no hello arrived within"),
  frameRatePerSecond: int("NEXMDM_FRAME_RATE_PER_S", 20, 1, 100000, "Frames per second one connection may send"),
  enrollRatePerMinute: int("NEXMDM_ENROLL_RATE_PER_MIN", 30, 1, 10_000_000, "Enrollment and ticket requests per minute per source IP"),
  trustedProxyHeader: Config.option(Config.string("NEXMDM_TRUSTED_PROXY_HEADER")).pipe(
    Config.withDescription("Header carrying the client IP when behind a proxy (e.g. x-forwarded-for); unset = socket address")
  ),
  ticketTtl: Config.integer("NEXMDM_TICKET_TTL_H").pipe(
    Config.validate({ message: "must be an integer between 1 and 720", validation: (n) => n >= 1 && n <= 720 }),
    Config.withDefault(24),
    Config.withDescription("Session ticket lifetime (hours)"),
    Config.map(Duration.hours)
  ),
  ticketKey: Config.option(Config.redacted("NEXMDM_TICKET_KEY")).pipe(
    Config.withDescription("Base64 key (32+ bytes) for session tickets; default: generated once and kept in the database")
  ),
  argon2Device: Config.all({
    memoryCost: int("NEXMDM_ARGON2_DEVICE_MEMORY_KIB", 19456, 1024, 4 * 1024 * 1024, "argon2id memory for device secrets and enrollment tokens (KiB)"),
    timeCost: int("NEXMDM_ARGON2_DEVICE_TIME_COST", 2, 1, 20, "argon2id passes for device secrets and enrollment tokens"),
    parallelism: int("NEXMDM_ARGON2_DEVICE_PARALLELISM", 1, 1, 16, "argon2id lanes for device secrets and enrollment tokens")
  }),
  // Admin plane (REST API for the console and automation)
  jwtKey: Config.option(Config.redacted("NEXMDM_JWT_KEY")).pipe(
    Config.withDescription("Base64 key (32+ bytes) signing admin access tokens (HS256); default: generated once and kept in the database")
  ),
  accessTokenTtl: seconds("NEXMDM_ACCESS_TOKEN_TTL_S", 900, 30, 86400, "Admin access token (JWT) lifetime"),
  refreshTokenTtl: Config.integer("NEXMDM_REFRESH_TOKEN_TTL_D").pipe(
    Config.validate({ message: "must be an integer between 1 and 365", validation: (n) => n >= 1 && n <= 365 }),
    Config.withDefault(30),
    Config.withDescription("Admin refresh token lifetime (days)"),
    Config.map(Duration.days)
  ),
  passwordResetTtl: seconds("NEXMDM_PASSWORD_RESET_TTL_S", 3600, 60, 7 * 86400, "Password reset link lifetime"),
  argon2Password: Config.all({
    memoryCost: int("NEXMDM_ARGON2_PASSWORD_MEMORY_KIB", 65536, 1024, 4 * 1024 * 1024, "argon2id memory for admin passwords (KiB)"),
    timeCost: int("NEXMDM_ARGON2_PASSWORD_TIME_COST", 3, 1, 20, "argon2id passes for admin passwords"),
    parallelism: int("NEXMDM_ARGON2_PASSWORD_PARALLELISM", 1, 1, 16, "argon2id lanes for admin passwords (1: a login never takes more than one core from the device plane)")
  }),
  // Admission control for argon2 (SlowHashBudget): what unauthenticated requests may make it cost
  slowHashAdminMsPerSecond: int("NEXMDM_SLOW_HASH_ADMIN_MS_PER_S", 150, 1, 1000, "argon2 time per second that failed admin-plane checks (logins, password changes) may use, in ms (1000 = a whole core; 150 ~ one failed login per second)"),
  slowHashDeviceMsPerSecond: int("NEXMDM_SLOW_HASH_DEVICE_MS_PER_S", 150, 1, 1000, "argon2 time per second that failed device-plane checks (enrollment tokens, device secrets) may use, in ms (150 ~ six per second at the default device cost)"),
  slowHashQueue: int("NEXMDM_SLOW_HASH_QUEUE", 32, 0, 10000, "Checks that may wait for their turn in each plane's argon2 lane before the next is refused with 429"),
  slowHashMaxWait: millis("NEXMDM_SLOW_HASH_MAX_WAIT_MS", 2000, 0, 60000, "Longest wait for a turn in an argon2 lane; a check that would wait longer is refused with 429 at once"),
  slowHashFailuresPerIpPerMinute: int("NEXMDM_SLOW_HASH_FAILURES_PER_IP_PER_MIN", 5, 1, 10_000_000, "Failed password or secret checks per minute per source IP and plane (also the burst) before 429"),
  slowHashFailuresPerTargetPerMinute: int("NEXMDM_SLOW_HASH_FAILURES_PER_TARGET_PER_MIN", 10, 1, 10_000_000, "Failed checks per minute (also the burst) per account, enrollment token or device before 429"),
  ownerEmail: Config.option(Config.string("NEXMDM_OWNER_EMAIL")).pipe(
    Config.withDescription("With NEXMDM_OWNER_PASSWORD: creates this owner at start-up when no admin user exists yet")
  ),
  ownerPassword: Config.option(Config.redacted("NEXMDM_OWNER_PASSWORD")).pipe(
    Config.withDescription("Password of the first owner (NEXMDM_OWNER_EMAIL); there is no default password")
  ),
  consoleOrigin: Config.option(Config.string("NEXMDM_CONSOLE_ORIGIN")).pipe(
    Config.withDescription(
      "Origin of the web console: the only origin CORS allows on the admin API, and the base of password reset links (default http://localhost:<NEXMDM_ADMIN_PORT>, where the admin plane serves the console)"
    )
  ),
  authRatePerMinute: int("NEXMDM_AUTH_RATE_PER_MIN", 10, 1, 10_000_000, "Login, refresh and password reset requests per minute per source IP"),
  apiRatePerMinute: int("NEXMDM_API_RATE_PER_MIN", 600, 1, 10_000_000, "Other admin API requests per minute per source IP"),
  adminMaxBodyBytes: int("NEXMDM_ADMIN_MAX_BODY_BYTES", 64 * 1024, 1024, 64 * 1024 * 1024, "Largest admin API request body (bytes)"),
  logLevel: Config.string("NEXMDM_LOG_LEVEL").pipe(
    Config.mapOrFail((text) => {
      const level = logLevels[text.toLowerCase()]
      return level === undefined
        ? Either.left(ConfigError.InvalidData([], `expected one of ${Object.keys(logLevels).join(", ")}, got "${text}"`))
        : Either.right(level)
    }),
    Config.withDefault(LogLevel.Info),
    Config.withDescription("Least severe log level written: trace, debug, info, warn, error, fatal, none (any case)")
  ),
  commandTtl: seconds("NEXMDM_COMMAND_TTL_S", 3600, 10, 30 * 86400, "Default command expiry"),
  wakeRetry: seconds("NEXMDM_WAKE_RETRY_S", 60, 1, 86400, "Wait before another FCM wake-up of an absent device"),
  maxWakeups: int("NEXMDM_MAX_WAKEUPS", 3, 0, 100, "FCM wake-ups per command before the device is shown unreachable"),
  publicDeviceUrl: Config.option(
    Config.string("NEXMDM_PUBLIC_DEVICE_URL").pipe(
      Config.validate({ message: "must be an http(s) URL without a trailing /", validation: (url) => /^https?:\/\/[^\s/]+(\/[^\s]*[^\s/])?$/.test(url) })
    )
  ).pipe(
    Config.withDescription("Device plane URL as phones and enrollment scripts reach it (QR codes, scripts), e.g. https://mdm.example.com; default: the address it listens on")
  ),
  // Agent releases (APK registry) and staged agent updates
  apkMaxBytes: int("NEXMDM_APK_MAX_BYTES", 200 * 1024 * 1024, 64 * 1024, 2 * 1024 * 1024 * 1024 - 1, "Largest agent APK accepted by POST /api/v1/releases (bytes)"),
  apkSignerSha256: Config.string("NEXMDM_APK_SIGNER_SHA256").pipe(
    Config.mapOrFail((text) => {
      const list = text.split(",").map((item) => item.replace(/[:\s]/g, "").toLowerCase()).filter((item) => item !== "")
      return list.every((item) => /^[0-9a-f]{64}$/.test(item))
        ? Either.right(list as ReadonlyArray<string>)
        : Either.left(
            ConfigError.InvalidData(["NEXMDM_APK_SIGNER_SHA256"], "must be a comma-separated list of SHA-256 fingerprints (64 hex digits, colons allowed)")
          )
    }),
    Config.withDefault([] as ReadonlyArray<string>),
    Config.withDescription("SHA-256 of the certificate(s) allowed to sign agent APKs (comma-separated, as apksigner --print-certs shows them); unset = uploads refused")
  ),
  rolloutCheckInterval: millis("NEXMDM_ROLLOUT_CHECK_INTERVAL_MS", 5000, 10, 600000, "How often running agent rollouts look at their devices' install results"),
  demoDevices: int("NEXMDM_DEMO_DEVICES", 5, 0, 10000, "Simulated devices started with the engine (0 = none)"),
  shutdownTimeout: seconds("NEXMDM_SHUTDOWN_TIMEOUT_S", 20, 1, 600, "Longest wait for the write-behind to flush at shutdown"),
  // Mail and alerts
  smtpUrl: Config.option(Config.redacted("NEXMDM_SMTP_URL")).pipe(
    Config.withDescription("SMTP server, e.g. smtp://user:pass@host:587 (smtps:// for implicit TLS); when absent mails are kept in the mail_outbox table")
  ),
  mailFrom: Config.string("NEXMDM_MAIL_FROM").pipe(
    Config.withDefault("NexMDM <nexmdm@localhost>"),
    Config.withDescription("Sender address of every mail")
  ),
  smtpTls: Config.literal("auto", "required", "none")("NEXMDM_SMTP_TLS").pipe(
    Config.withDefault("auto"),
    Config.withDescription("STARTTLS on smtp://: auto = when the server offers it, required = never send in clear, none = never (local relay)")
  ),
  smtpTlsVerify: Config.boolean("NEXMDM_SMTP_TLS_VERIFY").pipe(
    Config.withDefault(true),
    Config.withDescription("Verify the SMTP server's certificate (false only for a relay with a self-signed one)")
  ),
  mailRetries: int("NEXMDM_MAIL_RETRIES", 3, 0, 10, "Retries of a mail after a transient SMTP failure (connection, timeout, 4xx)"),
  mailRetryDelay: millis("NEXMDM_MAIL_RETRY_DELAY_MS", 2000, 1, 600000, "Wait before the first mail retry, doubled for each next one"),
  alertEvalInterval: millis("NEXMDM_ALERT_EVAL_INTERVAL_MS", 5000, 10, 3600000, "How often alert rules are evaluated and due digests mailed"),
  // Push (FCM wake-ups)
  fcmServiceAccountFile: Config.option(Config.string("NEXMDM_FCM_SERVICE_ACCOUNT_FILE")).pipe(
    Config.withDescription("Firebase service-account JSON file: enables FCM wake-ups of devices that are not connected; unset (and no NEXMDM_FCM_SERVICE_ACCOUNT_JSON) = push disabled")
  ),
  fcmServiceAccountJson: Config.option(Config.redacted("NEXMDM_FCM_SERVICE_ACCOUNT_JSON")).pipe(
    Config.withDescription("The service-account JSON itself, instead of NEXMDM_FCM_SERVICE_ACCOUNT_FILE (set one, not both)")
  )
})

type Resolved = Config.Config.Success<typeof engineConfig>

export interface EngineConfigShape extends Omit<Resolved, "overdueAfter" | "offlineAfter" | "consoleOrigin"> {
  /** Where people open the console (the admin plane serves it by default). */
  readonly consoleOrigin: string
  /** Connected but silent this long: 'overdue'. Default 2.5 heartbeat intervals. */
  readonly overdueAfter: Duration.Duration
  /** Silent this long: 'offline', whatever the socket says. Default 5 heartbeat intervals. */
  readonly offlineAfter: Duration.Duration
}

const resolveDerived = (config: Resolved): EngineConfigShape => {
  const intervalMs = Duration.toMillis(config.heartbeatInterval)
  return {
    ...config,
    overdueAfter: Option.getOrElse(config.overdueAfter, () => Duration.millis(intervalMs * 2.5)),
    offlineAfter: Option.getOrElse(config.offlineAfter, () => Duration.millis(intervalMs * 5)),
    consoleOrigin: Option.getOrElse(config.consoleOrigin, () => `http://localhost:${config.adminPort}`)
  }
}

export class EngineConfig extends Context.Tag("@nexmdm/engine/EngineConfig")<EngineConfig, EngineConfigShape>() {
  /** Reads the environment. */
  static readonly layer = Layer.effect(EngineConfig, Effect.map(engineConfig, resolveDerived))

  /** Defaults with overrides, for tests and the bench. */
  static readonly layerWith = (overrides: Partial<EngineConfigShape>) =>
    Layer.effect(
      EngineConfig,
      Effect.map(engineConfig, (config) => ({ ...resolveDerived(config), ...overrides }))
    )
}

export const redactedOption = (value: Option.Option<Redacted.Redacted>) => Option.map(value, Redacted.value)

/** The settings behind the heartbeatPolicy agents are told (PROTOCOL.md 9.6). */
export const batteryPolicyOf = (config: EngineConfigShape) => ({
  batteryFactor: config.batteryIntervalFactor,
  meteredFactor: config.meteredIntervalFactor,
  lowBatteryFactor: config.lowBatteryIntervalFactor,
  lowBatteryPct: config.lowBatteryPct,
  dozeFactor: config.dozeIntervalFactor,
  dozeMinS: Math.round(Duration.toSeconds(config.dozeMinInterval))
})
