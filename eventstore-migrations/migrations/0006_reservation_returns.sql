-- A cached wallet forgets its closed reservations (Wallet::compact). A command that names
-- one (a late win, a rollback of a settled bet, a refund of one refunded or never made)
-- is decided on the reservation as the log knows it, put back by indexed lookups instead
-- of a fold of the wallet's history (issue 13): the bet that opened it, by its
-- transaction id (events_transaction_id), and the event that returned its stake, if one
-- did, by this index. A closed reservation whose stake no event returned was settled.
--
-- Building it reads the whole log once and holds writes to `events` meanwhile. On a large
-- log, create it beforehand without holding writes (CREATE INDEX CONCURRENTLY with the
-- same definition, outside a transaction); this migration then finds it there.
CREATE INDEX IF NOT EXISTS events_reservation_returned
    ON events (aggregate_type, aggregate_id, (payload -> event_type ->> 'reservation_id'))
    WHERE event_type IN ('ReservationRefunded', 'ReservationExpired');
