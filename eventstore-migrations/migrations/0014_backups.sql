-- Each backup of the event store that scripts/backup.sh took (issue 33), recorded after
-- pgBackRest finished it: what the projections' watcher reads for the backup metrics and
-- alerts (backup_last_success_timestamp_seconds). The repository is the backups' truth
-- (`scripts/backup.sh info`); this is their trace where the alerts can see it. A restore
-- brings back the rows of the backups taken before its target.
CREATE TABLE IF NOT EXISTS backups (
    label            text        PRIMARY KEY,
    kind             text        NOT NULL CHECK (kind IN ('full', 'diff', 'incr')),
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    -- The database's size, and what this backup added to the repository (compressed).
    size_bytes       bigint      NOT NULL,
    repository_bytes bigint      NOT NULL,
    -- The WAL the backup needs to be consistent.
    wal_start        text        NOT NULL,
    wal_stop         text        NOT NULL
);
CREATE INDEX IF NOT EXISTS backups_latest ON backups (finished_at DESC);
