-- The round view (GET /v1/wallets/{id}/rounds/{round_id}) reads the events of one round:
-- those that name it, and the settles, refunds and expiries of its bets, which name only
-- the bet. Without an index on either, each read walked the wallet's whole history
-- (128 ms for an old round of a long wallet against 2.4 ms on a new one, issue 28).
--
-- Every event that names a round but did not open it, by the round's id. The event that
-- opened it is found by events_round_opened (migration 0005) already; so a round of one
-- event (a bet-win that opens and closes it, as many aggregators send) costs no entry here.
CREATE INDEX IF NOT EXISTS events_round
    ON events (aggregate_type, aggregate_id, (payload -> event_type ->> 'round_id'))
    WHERE (payload -> event_type ->> 'round_id') IS NOT NULL
      AND NOT (metadata ? 'round_opened');

-- Every event that closes a reservation by its id alone, by that id. It takes over from
-- events_reservation_returned (migration 0006: refunds and expiries only), which the
-- write path's lookups of closed reservations now read through this one.
CREATE INDEX IF NOT EXISTS events_reservation_closed
    ON events (aggregate_type, aggregate_id, (payload -> event_type ->> 'reservation_id'))
    WHERE event_type IN ('ReservationSettled', 'ReservationRefunded', 'ReservationExpired');
DROP INDEX IF EXISTS events_reservation_returned;

-- Building them reads the whole log once and holds writes to `events` meanwhile. On a large
-- log, create them beforehand without holding writes (CREATE INDEX CONCURRENTLY with the
-- same definitions, outside a transaction); this migration then finds them there.
