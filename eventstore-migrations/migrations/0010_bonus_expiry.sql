-- The bonus-expiry sweep (issue 31) finds awards whose expires_at has passed, as the
-- reservation sweep does (0003), without scanning the log: RFC 3339 text in UTC, so text
-- order is time order to the second.
CREATE INDEX events_bonus_expiry
    ON events ((payload -> 'BonusGranted' -> 'terms' ->> 'expires_at'))
    WHERE event_type = 'BonusGranted';
