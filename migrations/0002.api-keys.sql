-- API keys: only a SHA-256 digest of each key is kept. Keys carry 256 bits
-- of randomness, so a fast digest is as good as a slow one here, and lets
-- every request be checked with one index lookup.
-- depends: 0001.event-store

CREATE TABLE api_keys (
    key_id uuid PRIMARY KEY,
    key_digest bytea NOT NULL UNIQUE CHECK (octet_length(key_digest) = 32),
    -- The first characters of the key, to recognise it in a list.
    key_prefix text NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'admin', 'auditor', 'service')),
    owner_id text CHECK ((role = 'user') = (owner_id IS NOT NULL)),
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
