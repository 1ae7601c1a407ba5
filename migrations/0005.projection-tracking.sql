-- Each projection's position in the log, written in the same transaction as
-- the view rows it covers. `version` is the view's schema version: a view
-- whose code says another version is rebuilt from the log at start.
-- depends: 0004.account-listing

CREATE TABLE projection_tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    version integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Record time is taken per row, under the writers' table lock, so it grows
-- with the position: "balance as of a time" is then "as of the last position
-- recorded by that time". now() would be the transaction's start, which two
-- writers can reach in the opposite order to the lock.
ALTER TABLE ledger_events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();

-- Views live in the public schema; rebuilds with --shadow build here and
-- swap the finished tables in.
CREATE SCHEMA IF NOT EXISTS ledger_shadow;
