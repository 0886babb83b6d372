-- NexMDM initial schema. Must run on PostgreSQL 15+ and on PGlite (the embedded default).

-- Engine-wide secrets that must survive restarts (the session-ticket key).
create table engine_keys (
  name        text primary key,
  secret      bytea not null,
  created_at  timestamptz not null default now()
);

-- Single-use (or N-use) enrollment tokens. The token a technician holds is "<id>.<secret>";
-- only an argon2id hash of the secret is stored.
create table enrollment_tokens (
  id           text primary key,
  secret_hash  text not null,
  label        text,
  max_uses     integer not null check (max_uses > 0),
  uses         integer not null default 0 check (uses >= 0),
  expires_at   timestamptz not null,
  revoked_at   timestamptz,
  created_at   timestamptz not null default now(),
  created_by   text,
  check (uses <= max_uses)
);

create table devices (
  id                     text primary key,
  hardware_id            text not null unique,
  name                   text,
  model                  text,
  manufacturer           text,
  os_version             text,
  agent_version          text,
  enrolled_at            timestamptz not null default now(),
  enrollment_token_id    text references enrollment_tokens (id),
  -- Bumped on re-enrolment and retirement: tickets carry it, so old tickets stop working.
  credential_generation  integer not null default 1,
  secret_hash            text not null,
  -- Per-device HMAC-SHA256 key for signing commands (needed in clear to sign).
  hmac_key               bytea not null,
  retired_at             timestamptz,
  presence               text not null default 'offline',
  presence_reason        text,
  presence_since         timestamptz,
  last_seen_at           timestamptz
);
create index devices_presence_idx on devices (presence);
create index devices_last_seen_idx on devices (last_seen_at);

-- Heartbeats: typed columns (no jsonb copy: ~100 B a row instead of ~460 B), one partition a day
-- on recorded_at (the engine's clock), so retention drops whole partitions.
-- Each device's recorded_at strictly increases with seq (the engine enforces it), so the newest row
-- of a device holds its highest persisted seq: one index serves "latest state of every device",
-- "one device over time" and the durable watermark.
create table heartbeats (
  device_id        text not null,
  seq              bigint not null,
  recorded_at      timestamptz not null,
  device_ts        timestamptz not null,
  battery_pct      smallint not null,
  charging         boolean not null,
  mem_free_mb      integer not null,
  mem_total_mb     integer not null,
  storage_free_mb  integer not null,
  network          smallint not null,
  signal_dbm       smallint,
  foreground_app   text,
  agent_version    text not null,
  uptime_s         integer not null
) partition by range (recorded_at);
create index heartbeats_device_time_idx on heartbeats (device_id, recorded_at desc);
-- Catches rows outside every day partition (e.g. a clock far off) instead of failing a whole batch.
create table heartbeats_default partition of heartbeats default;

-- Presence transitions and lifecycle events, with the reason, for the device timeline.
create table device_events (
  id         bigint generated always as identity primary key,
  device_id  text not null references devices (id) on delete cascade,
  at         timestamptz not null,
  kind       text not null,
  presence   text,
  reason     text,
  detail     jsonb
);
create index device_events_device_time_idx on device_events (device_id, at desc);
create index device_events_time_idx on device_events (at);
