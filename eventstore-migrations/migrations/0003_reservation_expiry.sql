-- The reservation-expiry sweep (issue 3) finds reservations whose timeout has passed by
-- their expires_at, without scanning the log. expires_at is stored as RFC 3339 text in
-- UTC ("2026-11-24T08:00:00.123456789Z"), so text order is time order to the second; the
-- sweep checks the exact instant itself.
CREATE INDEX events_reservation_expiry
    ON events ((payload -> 'FundsReserved' ->> 'expires_at'))
    WHERE event_type = 'FundsReserved';
