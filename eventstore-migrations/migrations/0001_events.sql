-- The event log: the postgres-es `events` shape (postgres-es names only its seven columns,
-- so it can load and append any aggregate), plus what the log needs beyond it:
--   global_position  an identity, unique across all aggregates; values are taken at insert
--                    time, so they commit out of order;
--   tx_id            the appending transaction's id. A reader that takes only rows with
--                    tx_id below pg_snapshot_xmin(pg_current_snapshot()) sees only finished
--                    transactions, so no row can later appear behind its cursor. The log's
--                    order is (tx_id, global_position): see docs/0002-log-order.md;
--   recorded_at      when the row was written (audit "as of").
CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);

-- The tailing read: rows of finished transactions in log order.
CREATE INDEX events_log_order ON events (tx_id, global_position);

-- Idempotency lives in the log: every money-moving event's metadata names the caller's
-- transaction id, unique per wallet. A repeat is answered from the event; two racing
-- appends of one id cannot both commit (the loser sees a conflict and re-reads).
CREATE UNIQUE INDEX events_transaction_id
    ON events (aggregate_type, aggregate_id, (metadata ->> 'transaction_id'))
    WHERE metadata ? 'transaction_id';

-- The postgres-es snapshot shape; unused while we run cqrs-es in event-store mode only
-- (its snapshot modes apply events twice: see docs/0001-cqrs-es-event-store-mode.md).
CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
