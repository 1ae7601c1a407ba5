-- Where each stream publisher that cannot keep its own resume point stopped:
-- the key (ledger position, sequence) of the last integration event a broker
-- acknowledged. A Redis stream keeps its own last id and needs no row; a
-- Kafka topic spread over partitions has no single last message, so its
-- publisher records the key here after every acknowledged page
-- (docs/events.md#kafka). Written by one publisher at a time, under its lease.
-- depends: 0013.simulator-state

CREATE TABLE stream_publisher_positions (
    publisher text PRIMARY KEY CHECK (length(publisher) BETWEEN 1 AND 128),
    position bigint NOT NULL CHECK (position >= 0),
    sequence integer NOT NULL CHECK (sequence >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
