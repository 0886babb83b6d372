-- Tags an enrollment token applies to every device that enrols with it (e.g. "warehouse-3",
-- "channel:beta"): a batch of devices arrives already grouped for bulk commands and rollouts.
alter table enrollment_tokens add column tags text[] not null default '{}';
