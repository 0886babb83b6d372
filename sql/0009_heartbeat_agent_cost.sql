-- The agent's battery budget (PROTOCOL.md 9.6): the interval it was following when it took the
-- sample and its own cost since its previous sample. Null when an older agent did not send them.
-- Four int4 columns; nulls cost one bit each in the row's null bitmap.
alter table heartbeats
  add column interval_s integer,
  add column wakeups integer,
  add column tx_bytes integer,
  add column reconnects integer;
