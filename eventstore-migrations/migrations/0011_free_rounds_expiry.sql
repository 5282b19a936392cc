-- The free-rounds expiry sweep (issue 31) finds grants whose expires_at has passed, as
-- the award sweep does (0010).
CREATE INDEX events_free_rounds_expiry
    ON events ((payload -> 'FreeRoundsGranted' ->> 'expires_at'))
    WHERE event_type = 'FreeRoundsGranted';
