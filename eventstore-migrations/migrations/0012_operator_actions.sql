-- The operator audit (issue 32, `GET /v1/audit`) lists what operators did across wallets,
-- newest first: adjustments, locks and unlocks, bonus grants and forfeits, free-rounds
-- grants, each naming its acting client (`by`). A partial index over those rows alone, in
-- log position order, so a page reads only operator actions however long the log is, and
-- costs nothing on the hot path (bets, wins and deposits are not in it). Written on a
-- large log, create it beforehand without holding writes (CREATE INDEX CONCURRENTLY with
-- the same definition, outside a transaction); this migration then finds it there.
CREATE INDEX IF NOT EXISTS events_operator_actions
    ON events (global_position)
    WHERE event_type IN ('FundsAdjusted', 'AccountLocked', 'AccountUnlocked',
                         'BonusGranted', 'BonusForfeited', 'FreeRoundsGranted')
      AND (payload -> event_type) ? 'by';
