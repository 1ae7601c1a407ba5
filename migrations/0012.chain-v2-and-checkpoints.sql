-- Chain version 2 and signed checkpoints (docs/operations.md#audit).
-- Each new event's link covers every stored field, each length-prefixed
-- (4 bytes, big endian), after the previous link:
--   sha256(previous link || len || position (8 bytes) || len || originator id (16)
--          || len || version (8) || len || topic (UTF-8) || len || state
--          || len || recorded_at (8: binary timestamptz, microseconds since 2000))
-- (domain/event_chain.py `chained_link`). The position is given out here,
-- under the log's lock, so the link can cover it in the same statement.
-- Events already stored keep their version 1 hash: ledger_chain_schemes
-- records the first position of each version, and the first version 2 link
-- follows the last version 1 hash.
-- depends: 0011.projection-failures

LOCK TABLE ledger_events IN EXCLUSIVE MODE;

CREATE TABLE ledger_chain_schemes (
    version integer PRIMARY KEY,
    first_position bigint NOT NULL
);

INSERT INTO ledger_chain_schemes (version, first_position) VALUES
    (1, 1),
    (2, (SELECT coalesce(max(notification_id), 0) + 1 FROM ledger_events));

-- Signed checkpoints (domain/audit_checkpoint.py). A copy of each is also
-- written outside the database (LEDGER_AUDIT_CHECKPOINT_DIR): these rows are
-- for convenience, the copies are what a database superuser cannot change.
CREATE TABLE ledger_checkpoints (
    sequence bigint PRIMARY KEY,
    last_position bigint NOT NULL UNIQUE,
    statement bytea NOT NULL,
    signature bytea NOT NULL,
    entries bytea NOT NULL
);

CREATE TRIGGER ledger_checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change();

CREATE TRIGGER ledger_chain_schemes_refuse_update_delete
    BEFORE UPDATE OR DELETE ON ledger_chain_schemes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change();

CREATE OR REPLACE FUNCTION ledger_append_events(
    originator_ids uuid[],
    originator_versions bigint[],
    topics text[],
    states bytea[],
    deadline_transfer_ids uuid[],
    deadline_expires_at timestamptz[],
    removed_deadline_transfer_ids uuid[],
    channel text
) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    previous bytea;
    positions bigint[] := '{}';
    hashes bytea[] := '{}';
    recorded_times timestamptz[] := '{}';
    event_count integer := coalesce(cardinality(originator_ids), 0);
    recorded timestamptz;
    position bigint;
    topic bytea;
BEGIN
    -- Orders writers, so ids are given out in commit order and the chain is
    -- extended by one writer at a time (the same lock the library takes).
    LOCK TABLE ledger_events IN EXCLUSIVE MODE;
    SELECT event_hash INTO previous FROM ledger_events ORDER BY notification_id DESC LIMIT 1;
    IF previous IS NULL THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    FOR i IN 1 .. event_count LOOP
        -- Under the lock no other writer draws from the sequence: the batch's
        -- ids are a contiguous run.
        position := nextval('ledger_events_notification_id_seq');
        topic := convert_to(topics[i], 'UTF8');
        -- Per event, under the lock, as the column's default was (0005): the
        -- record time grows with the position.
        recorded := clock_timestamp();
        previous := sha256(
            previous
            || '\x00000008'::bytea || int8send(position)
            || '\x00000010'::bytea || uuid_send(originator_ids[i])
            || '\x00000008'::bytea || int8send(originator_versions[i])
            || int4send(octet_length(topic)) || topic
            || int4send(octet_length(states[i])) || states[i]
            || '\x00000008'::bytea || timestamptz_send(recorded)
        );
        positions[i] := position;
        hashes[i] := previous;
        recorded_times[i] := recorded;
    END LOOP;
    INSERT INTO ledger_events
        (notification_id, originator_id, originator_version, topic, state, event_hash, recorded_at)
    SELECT p, o, v, t, s, h, r
    FROM unnest(positions, originator_ids, originator_versions, topics, states, hashes,
        recorded_times) AS batch(p, o, v, t, s, h, r);
    IF cardinality(removed_deadline_transfer_ids) > 0 THEN
        DELETE FROM ledger_pending_deadlines
        WHERE transfer_id = ANY(removed_deadline_transfer_ids);
    END IF;
    IF cardinality(deadline_transfer_ids) > 0 THEN
        INSERT INTO ledger_pending_deadlines (transfer_id, expires_at)
        SELECT * FROM unnest(deadline_transfer_ids, deadline_expires_at)
        ON CONFLICT (transfer_id) DO UPDATE SET expires_at = EXCLUDED.expires_at;
    END IF;
    PERFORM pg_notify(channel, '');
    RETURN coalesce(positions[event_count], 0);
END;
$$;
