-- Idempotency-Key records: the first response to each (API key, header
-- value), replayed to every retry of the same request for at least a day.
-- A row without a response is a request in progress: its claim token says
-- which request owns it, so a request that lost its claim (after a crash,
-- taken over) can never overwrite the response of the one that won it.
-- depends: 0002.api-keys

CREATE TABLE idempotency_records (
    key_id uuid NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    idempotency_key text NOT NULL
        CHECK (octet_length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of the method, path, query and body: what "the same request" means.
    request_digest bytea NOT NULL CHECK (octet_length(request_digest) = 32),
    claim_token uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    -- Only definitive answers are kept: a 5xx releases the record instead.
    response_status smallint CHECK (response_status BETWEEN 200 AND 499),
    response_headers jsonb,
    response_body bytea,
    completed_at timestamptz,
    PRIMARY KEY (key_id, idempotency_key),
    CHECK (
        (response_status IS NULL) = (completed_at IS NULL)
        AND (response_status IS NULL) = (response_headers IS NULL)
        AND (response_status IS NULL) = (response_body IS NULL)
    )
);

-- The retention sweep deletes the oldest records first.
CREATE INDEX idempotency_records_created_at_idx ON idempotency_records (created_at);
