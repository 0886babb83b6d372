-- Agent APK registry and staged agent updates.
--
-- A release is one verified, signed agent APK on disk (storage_path, relative to the data dir). Channels
-- (stable, beta) point at releases through release_channel_events: the newest event of a channel is its
-- current release, so promote and rollback are appended rows and the history stays readable.

create table agent_releases (
  id                    text primary key,
  package_name          text not null,
  version_code          bigint not null check (version_code > 0),
  version_name          text not null,
  -- The channel the release was uploaded to (it may be promoted to another one later).
  channel               text not null check (channel in ('stable', 'beta')),
  sha256_hex            text not null check (sha256_hex ~ '^[0-9a-f]{64}$'),
  size_bytes            bigint not null check (size_bytes > 0),
  signer_cert_sha256    text not null check (signer_cert_sha256 ~ '^[0-9a-f]{64}$'),
  -- Which APK signature schemes verified ({2}, {3} or {2,3}).
  signature_schemes     smallint[] not null,
  storage_path          text not null,
  notes                 text,
  uploaded_by           text not null,
  created_at            timestamptz not null default now(),
  -- 'active', or 'rolled_back' once a rollback moved its channel away from it.
  status                text not null default 'active' check (status in ('active', 'rolled_back'))
);
create unique index agent_releases_sha_idx on agent_releases (sha256_hex);
create index agent_releases_package_version_idx on agent_releases (package_name, version_code desc);

-- Every change of what a channel serves: upload (publish), promote, rollback. The newest row wins.
create table release_channel_events (
  id           bigint generated always as identity primary key,
  channel      text not null check (channel in ('stable', 'beta')),
  release_id   text not null references agent_releases (id),
  action       text not null check (action in ('publish', 'promote', 'rollback')),
  -- The release the channel served before this event (null for a channel's first).
  previous_release_id text references agent_releases (id),
  actor        text not null,
  at           timestamptz not null default now()
);
create index release_channel_events_channel_idx on release_channel_events (channel, id desc);

-- Every APK download: by a device (device plane, with its credentials), a provisioning script or an admin.
create table release_downloads (
  id             bigint generated always as identity primary key,
  release_id     text not null references agent_releases (id) on delete cascade,
  -- 'device', 'script' or 'admin'
  client_kind    text not null,
  device_id      text,
  source_ip      text,
  range_start    bigint,
  bytes_sent     bigint not null default 0,
  completed      boolean not null default false,
  started_at     timestamptz not null default now(),
  finished_at    timestamptz
);
create index release_downloads_release_idx on release_downloads (release_id, started_at desc);

-- Staged rollout of a release to the devices of a channel (a device is on 'beta' when it carries the
-- tag 'channel:beta', otherwise on 'stable').
create table release_rollouts (
  id                   text primary key,
  release_id           text not null references agent_releases (id),
  channel              text not null check (channel in ('stable', 'beta')),
  -- Cumulative percentages of the channel's devices, strictly increasing, the last one 100.
  stages               integer[] not null,
  current_stage        integer not null default 0,
  state                text not null check (state in ('running', 'paused', 'halted', 'completed')),
  -- Halt when, among the devices a stage has updated, more than this fraction failed / went offline.
  max_failure_rate     double precision not null check (max_failure_rate >= 0 and max_failure_rate <= 1),
  max_offline_rate     double precision not null check (max_offline_rate >= 0 and max_offline_rate <= 1),
  -- A finished stage is watched this long (devices may crash or vanish after installing) before the next.
  soak_seconds         integer not null default 0 check (soak_seconds >= 0),
  -- Why it stopped by itself (or was paused), for the console.
  halt_reason          text,
  started_by           text not null,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now()
);
-- One rollout in progress per channel.
create unique index release_rollouts_active_idx on release_rollouts (channel) where state in ('running', 'paused');

create table release_rollout_devices (
  rollout_id   text not null references release_rollouts (id) on delete cascade,
  device_id    text not null references devices (id) on delete cascade,
  stage        integer not null,
  command_id   text references commands (id) on delete set null,
  -- 'pending' until the install command ends: 'succeeded', 'failed' (failed or expired)
  outcome      text not null default 'pending' check (outcome in ('pending', 'succeeded', 'failed')),
  added_at     timestamptz not null default now(),
  finished_at  timestamptz,
  primary key (rollout_id, device_id)
);
create index release_rollout_devices_command_idx on release_rollout_devices (command_id);
