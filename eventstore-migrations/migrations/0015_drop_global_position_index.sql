-- The unique index on global_position alone served no reader: the log is read in
-- (tx_id, global_position) order (events_log_order), the operator actions by their own
-- partial index (0012), and the position is an identity GENERATED ALWAYS, so no insert
-- can give a taken one. Kept up to date on every insert it cost about 1 µs of the 14.8 µs
-- each event row costs PostgreSQL to insert with its indexes (issue 34: 300,000 of the
-- engine's events inserted into a copy of the schema, 4.44 s with it, 4.14-4.24 s
-- without).
--
-- DROP INDEX needs the table's exclusive lock, and waits for every transaction reading
-- it (a replay's scan may run for minutes) while every write queues behind it. So it
-- waits 2 s at most: if a reader holds the table, this migration fails, the binary
-- says so and exits, and writes go on. On a large, busy log, drop it beforehand without
-- blocking anyone:
--   DROP INDEX CONCURRENTLY IF EXISTS events_global_position;
-- and this migration then finds nothing to do.
SET LOCAL lock_timeout = '2s';
DROP INDEX IF EXISTS events_global_position;
