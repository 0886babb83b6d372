-- A device's own heartbeat interval, set by a succeeded set_heartbeat_interval command (null: the
-- engine's NEXMDM_HEARTBEAT_INTERVAL_S). The engine scales its overdue/offline thresholds by it, so a
-- device told to heartbeat every 10 minutes is not shown overdue between heartbeats.
alter table devices add column heartbeat_interval_s integer
  check (heartbeat_interval_s is null or heartbeat_interval_s between 5 and 3600);
