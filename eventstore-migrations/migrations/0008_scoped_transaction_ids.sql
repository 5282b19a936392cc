-- Provider and Hub88 transaction ids across wallets (issue 28). The unique index of
-- migration 0001 finds an id within one wallet; these callers also need to know which
-- wallet holds one of theirs:
-- - a provider's exact repeat of a bet after its session ended names no wallet, only the
--   ended session's token: the log still holds the bet and answers it as the first time;
-- - a Hub88 operator's ids are one id, one wallet: the same transaction_uuid under
--   another user or currency is a duplicate, and a rollback that names no currency is
--   decided only where its ids are.
-- Scoped ids contain ':' (`{pid}:{id}`, `hub88.{operator}:{id}`); native ids never do and
-- are not indexed here.
--
-- Building it reads the whole log once and holds writes to `events` meanwhile. On a large
-- log, create it beforehand without holding writes (CREATE INDEX CONCURRENTLY with the
-- same definition, outside a transaction); this migration then finds it there.
CREATE INDEX IF NOT EXISTS events_scoped_transaction_id
    ON events ((metadata ->> 'transaction_id'))
    WHERE (metadata ->> 'transaction_id') LIKE '%:%';
