-- Rounds (docs/0012-rounds.md): the event that opens a round on a wallet names it in its
-- metadata, once per wallet and round. A cached wallet forgets closed rounds; when it
-- would open one of them again, this index refuses the event and the command is decided
-- again on the wallet's full state, which knows the round is closed.
--
-- Rounds begun before this migration are keyed here, at their first bet, so a round that
-- was open at the upgrade and is closed later is protected the same way. (Only bets named
-- rounds before it; the metadata gains a key, nothing else of an event changes.)
UPDATE events e
   SET metadata = e.metadata || jsonb_build_object('round_opened', f.round_id)
  FROM (SELECT DISTINCT ON (aggregate_type, aggregate_id, payload -> 'FundsReserved' ->> 'round_id')
               aggregate_type, aggregate_id, sequence,
               payload -> 'FundsReserved' ->> 'round_id' AS round_id
          FROM events
         WHERE event_type = 'FundsReserved'
         ORDER BY aggregate_type, aggregate_id, payload -> 'FundsReserved' ->> 'round_id', sequence) f
 WHERE e.aggregate_type = f.aggregate_type
   AND e.aggregate_id = f.aggregate_id
   AND e.sequence = f.sequence
   AND NOT (e.metadata ? 'round_opened');

CREATE UNIQUE INDEX events_round_opened
    ON events (aggregate_type, aggregate_id, (metadata ->> 'round_opened'))
    WHERE metadata ? 'round_opened';

-- The event that closes a round names it too, so a cache that forgot a round puts it
-- back, open or closed, with one indexed lookup instead of folding the wallet's history.
CREATE INDEX events_round_closed
    ON events (aggregate_type, aggregate_id, (metadata ->> 'round_closed'))
    WHERE metadata ? 'round_closed';

-- Snapshots hold a wallet's state, which now has rounds: those written before this
-- migration have none, and a wallet is loaded from its log until a new one is written.
DELETE FROM snapshots;
