-- The simulators' own state, kept so that they outlive a restart as the real
-- broker and the real payout processor do: the simulated broker's accounts,
-- positions, orders and prices, and the sandbox gateway's payouts. Not
-- ledger state: no event and no view reads these tables, and production
-- (a real broker, Stripe) leaves them empty.
-- depends: 0011.projection-failures

CREATE TABLE simulated_broker_accounts (
    account_id uuid PRIMARY KEY,
    -- cash = funded + realized P&L (the broker port's margin account).
    cash_minor bigint NOT NULL,
    realized_pnl_minor bigint NOT NULL
);

CREATE TABLE simulated_broker_positions (
    position_id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES simulated_broker_accounts (account_id),
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('long', 'short')),
    quantity bigint NOT NULL CHECK (quantity > 0),
    entry_price_minor bigint NOT NULL CHECK (entry_price_minor > 0),
    opened_at timestamptz NOT NULL,
    -- The client order id that closed it; NULL while open.
    closed_by text,
    -- Open positions are listed in the order they were opened.
    opened_order bigint GENERATED ALWAYS AS IDENTITY
);

-- Every order, kept for idempotency: the same client order id replays its fill.
CREATE TABLE simulated_broker_orders (
    account_id uuid NOT NULL REFERENCES simulated_broker_accounts (account_id),
    client_order_id text NOT NULL,
    -- ["open", symbol, side, quantity] or ["close", position_id]
    request jsonb NOT NULL,
    fill jsonb NOT NULL,
    PRIMARY KEY (account_id, client_order_id)
);

-- A symbol's fixed quote (one step, every price set) or scripted price path.
CREATE TABLE simulated_broker_markets (
    symbol text PRIMARY KEY,
    -- [{at, bid_minor, ask_minor, last_minor, open_minor, last_close_minor, volume}]
    steps jsonb NOT NULL,
    is_path boolean NOT NULL,
    -- Quoted as of each read (a market still quoting), or frozen at its time.
    live boolean NOT NULL
);

CREATE TABLE sandbox_payouts (
    payout_id text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    -- The first request under the key: {amount_minor, currency, metadata, description}.
    request jsonb NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    status text NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    failure_code text,
    failure_message text,
    -- Among payouts of the same moment, the later made is listed first.
    made_order bigint GENERATED ALWAYS AS IDENTITY
);
