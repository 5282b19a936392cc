-- The relay's side of the log (issue 4).
--
-- relay_checkpoints: where each relay stands in the log's order (tx_id, global_position).
-- A relay advances it only after RabbitMQ confirmed every event up to that point, so a
-- crash re-publishes from here and never skips.
CREATE TABLE relay_checkpoints (
    relay            text        PRIMARY KEY,
    tx_id            bigint      NOT NULL,
    global_position  bigint      NOT NULL,
    events_relayed   bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Wake the relay at once: one notification per inserting statement, delivered at commit
-- (and coalesced within a transaction by PostgreSQL). The relay still reads only below
-- pg_snapshot_xmin, so a notification is a hint to look, never a position.
CREATE FUNCTION betledger_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('betledger_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_relay
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION betledger_notify_events();
