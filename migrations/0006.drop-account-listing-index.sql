-- Accounts are listed from the accounts directory view now, not from the
-- log's Opened events: the partial index 0004 made for that is not read.
-- depends: 0005.projection-tracking

DROP INDEX IF EXISTS ledger_events_account_opened_idx;
