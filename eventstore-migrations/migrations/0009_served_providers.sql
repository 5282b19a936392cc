-- A wallet's state now records the providers (and Hub88 operators) that have taken a
-- stake from it: only they may pay it a win without a bet or an adjustment (issue 28).
-- A snapshot written before has no such record and is not read by this build; the
-- wallets are folded from their logs once, until new snapshots are written.
DELETE FROM snapshots;
