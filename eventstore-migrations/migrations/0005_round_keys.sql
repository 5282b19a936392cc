-- Rounds (docs/0012-rounds.md): the event that opens a round on a wallet names it in its
-- metadata, once per wallet and round. A cached wallet forgets closed rounds; when it
-- would open one of them again, this index refuses the event and the command is decided
-- again on the wallet's full state, which knows the round is closed.
CREATE UNIQUE INDEX events_round_opened
    ON events (aggregate_type, aggregate_id, (metadata ->> 'round_opened'))
    WHERE metadata ? 'round_opened';
