-- Where each reconciliation check last found everything in order, per
-- subject (the projections check: one row per view, at the position the
-- view was compared at): an incremental run (`ledger reconcile run
-- --incremental`, the hourly schedule) checks only what changed after it
-- (docs/operations.md#reconciliation). Written in the same transaction as
-- what the check keeps to go on from there; a subject without a row is
-- checked in full.
-- depends: 0014.stream-positions

CREATE TABLE reconciliation_positions (
    check_name text NOT NULL,
    subject text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    -- The version of the code the subject was checked with (a view's).
    version integer NOT NULL,
    verified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (check_name, subject)
);
