-- Records the newest backup of a pgBackRest repository in the table `backups` (migration
-- 0014), for the projections' metrics and the backup alerts, and prints it as one JSON
-- object. psql variables: `info`, the output of `pgbackrest info --output=json`; `record`,
-- 1 to insert (0 when the database has no `backups` table yet: print only). Used by
-- scripts/backup.sh and by the Patroni image's betledger-backup (docker/patroni).
CREATE TEMP TABLE newest AS
SELECT b->>'label' AS label, b->>'type' AS kind,
       to_timestamp((b->'timestamp'->>'start')::bigint) AS started_at,
       to_timestamp((b->'timestamp'->>'stop')::bigint) AS finished_at,
       (b->'info'->>'size')::bigint AS size_bytes,
       (b->'info'->'repository'->>'delta')::bigint AS repository_bytes,
       b->'archive'->>'start' AS wal_start, b->'archive'->>'stop' AS wal_stop
  FROM jsonb_array_elements((:'info')::jsonb -> 0 -> 'backup') AS b
 ORDER BY (b->'timestamp'->>'stop')::bigint DESC
 LIMIT 1;
\if :record
INSERT INTO backups (label, kind, started_at, finished_at, size_bytes, repository_bytes,
                     wal_start, wal_stop)
SELECT * FROM newest ON CONFLICT (label) DO NOTHING;
\endif
SELECT row_to_json(newest) FROM newest;
