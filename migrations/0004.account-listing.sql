-- Listing accounts reads their Opened events from the log, in log order.
-- The index holds only those events, so a page never scans transfers.
-- depends: 0001.event-store

CREATE INDEX ledger_events_account_opened_idx
    ON ledger_events (notification_id)
    WHERE topic = 'domain.account:Account.Opened';
