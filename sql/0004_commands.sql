-- Remote commands: one row per (command, device), its lifecycle timestamps, and every push sent for it.

alter table devices add column fcm_token text;
-- 'valid' until FCM says the token is unregistered/invalid; then it is never used again.
alter table devices add column fcm_token_status text not null default 'none';
alter table devices add column tags text[] not null default '{}';
create index devices_tags_idx on devices using gin (tags);

create table bulk_jobs (
  id               text primary key,
  command_type     text not null,
  params           jsonb not null,
  target           jsonb not null,
  total            integer not null,
  idempotency_key  text unique,
  created_by       text not null,
  created_at       timestamptz not null default now()
);

create table commands (
  id               text primary key,
  device_id        text not null references devices (id) on delete cascade,
  type             text not null,
  params           jsonb not null,
  status           text not null check (status in
                     ('queued', 'sent', 'delivered', 'acknowledged', 'succeeded', 'failed', 'expired', 'cancelled')),
  idempotency_key  text,
  bulk_job_id      text references bulk_jobs (id),
  created_by       text not null,
  created_at       timestamptz not null,
  expires_at       timestamptz not null,
  sent_at          timestamptz,
  -- How the command reached the device: 'socket', 'poll' (HTTP fallback) or after a 'push' wake-up.
  sent_via         text,
  delivered_at     timestamptz,
  acknowledged_at  timestamptz,
  completed_at     timestamptz,
  attempts         integer not null default 0,
  result           jsonb,
  error            text,
  -- Set when push wake-ups were exhausted without the device connecting.
  unreachable_at   timestamptz
);
create unique index commands_idempotency_idx on commands (device_id, idempotency_key) where idempotency_key is not null;
create index commands_device_time_idx on commands (device_id, created_at desc);
create index commands_open_idx on commands (device_id, created_at) where status in ('queued', 'sent', 'delivered', 'acknowledged');
create index commands_bulk_idx on commands (bulk_job_id) where bulk_job_id is not null;

create table push_sends (
  id           bigint generated always as identity primary key,
  command_id   text references commands (id) on delete cascade,
  device_id    text not null references devices (id) on delete cascade,
  at           timestamptz not null,
  outcome      text not null,
  message_id   text,
  error_code   text,
  latency_ms   integer
);
create index push_sends_command_idx on push_sends (command_id);
