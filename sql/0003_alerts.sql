-- Alert rules, the alerts they raise, and the mail outbox. Must run on PostgreSQL 15+ and on PGlite.

-- What to watch for and whom to tell. `params` holds the kind's thresholds (validated by the engine's
-- Schema for that kind): device_offline {"minutes"}, battery_low {"belowPct"}, write_backlog {"rows"},
-- command_failed {"types"?}, token_used {}. Mails for a rule are collected for `digest_window_s`
-- seconds after the first notice and then sent as one digest (0 = at the next evaluation).
create table alert_rules (
  id               text primary key,
  name             text not null,
  kind             text not null check (kind in ('device_offline', 'battery_low', 'command_failed', 'token_used', 'write_backlog')),
  params           jsonb not null default '{}',
  enabled          boolean not null default true,
  recipients       text[] not null default '{}',
  digest_window_s  integer not null default 60 check (digest_window_s >= 0 and digest_window_s <= 86400),
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

-- One row per occurrence of a condition: opened when it starts, updated while it repeats (count,
-- last_seen_at), resolved when it clears (or by hand). `dedup_key` names what the alert is about
-- (a device id, "engine", or one enrolment event), so a rule has at most one open alert per key.
create table alerts (
  id             bigint generated always as identity primary key,
  -- Kept when the rule is deleted (its open alerts are resolved first).
  rule_id        text references alert_rules (id) on delete set null,
  kind           text not null,
  device_id      text references devices (id) on delete cascade,
  dedup_key      text not null,
  state          text not null default 'open' check (state in ('open', 'resolved')),
  opened_at      timestamptz not null,
  resolved_at    timestamptz,
  -- 'cleared' (the condition ended), 'manual', 'rule disabled', 'rule deleted', 'informational'.
  resolution     text,
  last_seen_at   timestamptz not null,
  count          integer not null default 1 check (count >= 1),
  summary        text not null,
  detail         jsonb not null default '{}',
  check ((state = 'open') = (resolved_at is null))
);
create unique index alerts_open_key_idx on alerts (rule_id, dedup_key) where state = 'open';
create index alerts_rule_key_idx on alerts (rule_id, dedup_key);
create index alerts_device_idx on alerts (device_id, id desc);
create index alerts_state_idx on alerts (state, id desc);

-- Every mail the engine sends or would send: with SMTP configured, sent_at or error (after
-- `attempts` tries) says how it went; without SMTP the rows stay unsent and are the only copy.
create table mail_outbox (
  id             bigint generated always as identity primary key,
  to_addresses   text[] not null,
  subject        text not null,
  text_body      text not null,
  html_body      text,
  created_at     timestamptz not null default now(),
  sent_at        timestamptz,
  error          text,
  attempts       integer not null default 0 check (attempts >= 0)
);
create index mail_outbox_created_idx on mail_outbox (created_at);
