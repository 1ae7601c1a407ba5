-- The event store: one application log with one global order.
-- Made here rather than by the library (CREATE_TABLE is off) so that the
-- schema is versioned and the log can refuse to be rewritten.

CREATE TABLE ledger_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text NOT NULL,
    state bytea NOT NULL,
    notification_id bigserial NOT NULL,
    -- sha256(previous event's hash, this event): see domain/event_chain.py.
    event_hash bytea NOT NULL CHECK (octet_length(event_hash) = 32),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);

CREATE UNIQUE INDEX ledger_events_notification_id_idx ON ledger_events (notification_id);

-- The library registers this composite type for its own inserts (snapshots).
CREATE TYPE stored_event_uuid AS (
    originator_id uuid,
    originator_version bigint,
    topic text,
    state bytea
);

-- Snapshots are derived from events and may be deleted at any time.
CREATE TABLE ledger_snapshots (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    PRIMARY KEY (originator_id, originator_version)
);

-- Events are facts: once written, never changed and never removed.
CREATE FUNCTION ledger_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger events are immutable: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change();

CREATE TRIGGER ledger_events_refuse_truncate
    BEFORE TRUNCATE ON ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_event_change();

-- Deadlines of pending transfers, written in the same transaction as the
-- events that set and clear them, so the expiry sweep never scans history.
CREATE TABLE ledger_pending_deadlines (
    transfer_id uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX ledger_pending_deadlines_expires_at_idx ON ledger_pending_deadlines (expires_at);
