-- Admin plane: people, their sessions, API keys and the audit trail.
-- Must run on PostgreSQL 15+ and on PGlite (the embedded default).

-- People who use the console or the REST API. Emails are stored lower-cased (the API lower-cases
-- before every lookup), so the unique constraint is case-insensitive in effect.
create table admin_users (
  id                   text primary key,
  email                text not null unique check (email = lower(email)),
  display_name         text not null,
  role                 text not null check (role in ('owner', 'admin', 'viewer')),
  -- argon2id (PHC string, parameters included).
  password_hash        text not null,
  created_at           timestamptz not null default now(),
  disabled_at          timestamptz,
  password_changed_at  timestamptz not null default now(),
  -- Access tokens issued before this instant are refused (set on password change, role change,
  -- disable): a stateless 15-minute JWT would otherwise outlive the change.
  tokens_valid_after   timestamptz not null default now()
);

-- Refresh tokens: a 256-bit random value the client holds; only its SHA-256 is stored. A fast
-- hash is enough here (unlike passwords): with 256 bits of entropy nothing can be guessed, so a
-- slow hash would only cost CPU on every refresh. Each refresh revokes the token it used and
-- issues the next one of the same family; presenting a revoked token again revokes the family.
create table refresh_tokens (
  id            text primary key,
  user_id       text not null references admin_users (id) on delete cascade,
  family_id     text not null,
  token_hash    bytea not null unique,
  expires_at    timestamptz not null,
  revoked_at    timestamptz,
  replaced_by   text,
  created_at    timestamptz not null default now(),
  last_used_at  timestamptz,
  user_agent    text,
  ip            text
);
create index refresh_tokens_user_idx on refresh_tokens (user_id) where revoked_at is null;
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_expires_idx on refresh_tokens (expires_at);

-- Password reset tokens: single use, expiring, stored as SHA-256 of a 256-bit random value
-- (same reasoning as refresh tokens).
create table password_resets (
  id            text primary key,
  user_id       text not null references admin_users (id) on delete cascade,
  token_hash    bytea not null unique,
  expires_at    timestamptz not null,
  used_at       timestamptz,
  created_at    timestamptz not null default now(),
  requested_ip  text
);
create index password_resets_user_idx on password_resets (user_id) where used_at is null;

-- API keys for automation: "nxk_<prefix>_<secret>". The prefix finds the row; the secret (256
-- bits) is stored as SHA-256: argon2 would cost ~140 ms on every API request, and a slow hash
-- adds nothing when the secret cannot be guessed. Scopes are checked by the engine
-- (engine/src/admin/Principal.ts lists them).
create table api_keys (
  id            text primary key,
  name          text not null,
  prefix        text not null unique,
  key_hash      bytea not null,
  scopes        text[] not null,
  created_by    text references admin_users (id),
  created_at    timestamptz not null default now(),
  revoked_at    timestamptz,
  last_used_at  timestamptz,
  last_used_ip  text
);

-- Audit trail of every change made through the admin plane (and of failed attempts).
-- APPEND-ONLY: the engine only inserts and selects; no API route updates or deletes a row.
create table audit_log (
  id           bigint generated always as identity primary key,
  at           timestamptz not null default now(),
  actor_kind   text not null check (actor_kind in ('user', 'api_key', 'system')),
  actor_id     text,
  actor_label  text,
  action       text not null,
  target_kind  text,
  target_id    text,
  source_ip    text,
  outcome      text not null check (outcome in ('success', 'failure')),
  detail       jsonb
);
-- Listing is newest first by id (the cursor); each filter has an index ending in id.
create index audit_log_at_idx on audit_log (at desc);
create index audit_log_actor_idx on audit_log (actor_kind, actor_id, id desc);
create index audit_log_action_idx on audit_log (action, id desc);
create index audit_log_target_idx on audit_log (target_kind, target_id, id desc);
