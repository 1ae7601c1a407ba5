-- Appending a batch of events in one round trip: lock, extend the hash chain,
-- insert, record pending deadlines and notify, all inside the database. The
-- writer used to make each of those a round trip of its own, and each round
-- trip cost it the interpreter lock, held by a busy event loop, to get back.
-- The hash is the one domain/event_chain.py defines:
--   sha256(previous hash || originator id (16 bytes) || version (8 bytes, big
--          endian) || topic (UTF-8) || 0x00 || state)
-- and the first event's previous hash is 32 zero bytes.
-- depends: 0006.drop-account-listing-index

CREATE FUNCTION ledger_append_events(
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
    hashes bytea[] := '{}';
    last_id bigint;
BEGIN
    -- Orders writers, so ids are given out in commit order and the chain is
    -- extended by one writer at a time (the same lock the library takes).
    LOCK TABLE ledger_events IN EXCLUSIVE MODE;
    SELECT event_hash INTO previous FROM ledger_events ORDER BY notification_id DESC LIMIT 1;
    IF previous IS NULL THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(originator_ids), 0) LOOP
        previous := sha256(
            previous || uuid_send(originator_ids[i]) || int8send(originator_versions[i])
            || convert_to(topics[i], 'UTF8') || '\x00'::bytea || states[i]
        );
        hashes[i] := previous;
    END LOOP;
    INSERT INTO ledger_events (originator_id, originator_version, topic, state, event_hash)
    SELECT * FROM unnest(originator_ids, originator_versions, topics, states, hashes);
    -- Under the lock no other writer draws from the sequence: the batch's ids
    -- are the contiguous run ending here.
    last_id := currval(pg_get_serial_sequence('ledger_events', 'notification_id'));
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
    RETURN last_id;
END;
$$;
