-- The broker sync's last look at each funded account: operational state, not
-- a fact of the ledger (the facts, divergences and guard decisions, are
-- events of the account's guard). Overwritten by every sync; a failed sync
-- keeps the last good figures and counts its failures and when to retry.
-- depends: 0008.email-outbox

CREATE TABLE broker_sync_status (
    funded_account_id uuid PRIMARY KEY,
    -- The last sync that answered, and what the broker said then.
    synced_at timestamptz,
    equity_minor bigint,
    cash_minor bigint,
    unrealized_pnl_minor bigint,
    -- [{position_id, symbol, side, quantity, entry_price_minor,
    --   current_price_minor, market_value_minor, unrealized_pnl_minor}]
    positions jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The last attempt, and its error while failing.
    attempted_at timestamptz NOT NULL,
    last_error text,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    next_attempt_at timestamptz
);
