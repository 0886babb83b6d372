-- Zero-touch provisioning: what enrollment scripts report about each device before they touch it
-- (accounts present, an existing device owner, Android too old, ...), so the console can show why a
-- device of a batch did not enrol. Keyed by the token the script carries; the device has no row yet.
create table provisioning_reports (
  id           bigint generated always as identity primary key,
  token_id     text not null references enrollment_tokens (id) on delete cascade,
  serial       text not null,
  at           timestamptz not null default now(),
  -- preflight, install, device_owner, permissions, handoff, enroll
  stage        text not null,
  ok           boolean not null,
  -- [{code, message}], empty when ok
  problems     jsonb not null,
  -- what the script read from the device: model, Android release, SDK level, accounts, owner
  facts        jsonb not null,
  source_ip    text
);
create index provisioning_reports_token_time_idx on provisioning_reports (token_id, at desc);
