-- Webhooks: the endpoints admins subscribe, the outbox of deliveries owed to
-- them, and the log of every attempt (docs/events.md).
--
-- The events themselves are a view (view_integration_events, made by its
-- projection). The webhook worker copies each event an endpoint subscribes
-- to into webhook_deliveries, in the same transaction that moves the
-- endpoint's cursor past it, so each event is owed to an endpoint once; it
-- then sends each owed delivery until the receiver answers 2xx or the retry
-- window closes. `secret` signs the bodies; it is shown once, at creation,
-- and never logged.
-- depends: 0009.broker-sync-status

CREATE TABLE webhook_endpoints (
    endpoint_id uuid PRIMARY KEY,
    url text NOT NULL,
    -- Empty: every type.
    event_types text[] NOT NULL,
    description text NOT NULL,
    secret text NOT NULL,
    enabled boolean NOT NULL,
    disabled_reason text,
    times_disabled integer NOT NULL DEFAULT 0 CHECK (times_disabled >= 0),
    -- The last event (position, ordinal) copied into the outbox for it.
    cursor_position bigint NOT NULL,
    cursor_ordinal integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    delivery_id uuid PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    event_id uuid NOT NULL,
    position bigint NOT NULL,
    ordinal integer NOT NULL,
    event_type text NOT NULL,
    account_ids uuid[] NOT NULL,
    -- The exact JSON sent (and signed), the same on every attempt.
    body text NOT NULL,
    -- pending: owed; delivered: a 2xx came back; failed: the window closed.
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at timestamptz NOT NULL,
    -- Retries go on for the retry window from here: the delivery's creation,
    -- or an admin's request to deliver it again.
    owed_since timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    delivered_at timestamptz,
    last_status_code integer,
    last_error text,
    UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_owed_idx ON webhook_deliveries (endpoint_id, position, ordinal)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE webhook_delivery_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    -- Null when no answer came (refused, timed out, address not allowed).
    status_code integer,
    error text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
