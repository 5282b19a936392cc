-- Each run of the replay tool's checks (issue 32): `reconcile` (read models and snapshots
-- against the log) and `verify` (the ledger's invariants), kept for the auditors and read
-- by the projections' watcher for the alerts (reconcile_last_*, verify_last_*). A row per
-- run; nothing on the hot path touches it.
CREATE TABLE IF NOT EXISTS replay_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command         text        NOT NULL CHECK (command IN ('reconcile', 'verify')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    ok              boolean     NOT NULL,
    events          bigint      NOT NULL,
    wallets_checked bigint      NOT NULL,
    -- UTC days whose totals were compared (reconcile); 0 for verify.
    days_checked    bigint      NOT NULL,
    -- Differences (reconcile) or violations (verify).
    differences     bigint      NOT NULL,
    -- Wallets and days rewritten from the log (reconcile --repair).
    repaired        bigint      NOT NULL,
    -- The run's whole summary, as the tool printed it.
    summary         jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_runs_latest ON replay_runs (command, id DESC);
