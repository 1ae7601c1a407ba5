-- What a reconciliation check adds up over the log, kept at the position it
-- last found everything in order (`reconciliation_positions`), so an
-- incremental run goes on from there instead of reading the log from the
-- start: the ledger check's totals per account, open holds and versions
-- (interface/reconciliation/ledger_state.py), never anything per event.
-- Written in the same transaction as its position; `version` is the
-- format's (a state of another version is not gone on from).
-- depends: 0015.reconciliation-positions

CREATE TABLE reconciliation_states (
    check_name text PRIMARY KEY,
    version integer NOT NULL,
    state bytea NOT NULL
);
