-- The API instances on this database (command-api's cluster module): each renews its row
-- every second; the rows seen within a few seconds are the members among which each
-- wallet's owner is chosen. Ownership only makes the instances fast together; the log's
-- keys keep them correct without it.
CREATE TABLE api_instances (
    instance_id  uuid        PRIMARY KEY,
    address      text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL
);
