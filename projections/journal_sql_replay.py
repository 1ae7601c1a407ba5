"""Replaying the journal view from empty inside PostgreSQL, set-based.

The journal's incremental path (`JournalView.prepare` and `write`) works
event by event in Python, about 20 µs an event on one core: the slowest part
of a rebuild. From empty it need not be incremental, as every row is a
function of the transfers' events:

- a transfer's row is its `Recorded` event joined with what later events
  changed: its resolution (posted, voided or expired; at most one) and its
  reversal (at most one);
- its entries are its postings, at its own position; a resolution's entries
  are the postings of the hold it resolves, at the resolution's position;
- each entry's running figures are sums of the changes of the account's
  entries so far in (position, seq) order: a window function.

So a replay from empty is two `INSERT ... SELECT` statements over the log,
the bodies decoded by PostgreSQL's JSON functions; no row passes through
Python. Both run in one transaction, the caller's: a crash loses the replay
whole, never half of it. The transfers' primary key is taken off while they
load and put back after, and the secondary indexes are made at the end, in
the same transaction. Rebuilds (in place or with a shadow) replay into a
scratch schema and swap the tables in (`rebuild.py`); so does the audit.

The live runner keeps the view with the Python path, page by page. Two
derivations of the same rows, written apart, check each other: `ledger
audit verify` compares the live view's digest with a replay's, the
projections benchmark compares a Python replay with this one on its whole
log, and a test compares them row for row on a varied history.

The replay reads the log up to a position fixed before it starts (the log's
head, or `until`): writers append under a table lock, so every event up to a
position seen is committed, and events never change, so each statement sees
the same events. Each sort gets `REPLAY_SORT_MEMORY` (each hash twice that,
PostgreSQL's `hash_mem_multiplier`) and spills to disk past it, so the
server's memory for a replay stays flat however long the log.

Why not in parallel: PostgreSQL runs no `INSERT ... SELECT` with parallel
workers. Splitting the work over two sessions (transfers by position range,
then entries by account range, in a scratch schema swapped in) was measured:
a little faster for the journal alone, slower for a rebuild of every view on
a 2-core machine, as it costs more CPU in all (each session scans and
unnests what it then skips, and reads rows another session wrote).
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

from projections.events import (
    NUL_SAFE_BODY_SQL,
    POSITION_MAX,
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
)
from projections.journal import (
    ENTRY_PENDING,
    ENTRY_PENDING_EXPIRED,
    ENTRY_PENDING_POSTED,
    ENTRY_PENDING_VOIDED,
    ENTRY_POSTED,
)
from projections.view import Cursor, View

# Memory for each sort of the replay (the running figures' sort above all;
# each hash gets twice it) and for building its indexes: past it PostgreSQL
# spills to disk. Small enough that the replay's memory stays the same from
# a million events on; the spilled sorts cost little next to the rest.
REPLAY_SORT_MEMORY: Final[str] = "64MB"
TRANSFERS_TABLE: Final[str] = "view_journal_transfers"


def _plain_text(body: str, key: str) -> str:
    """SQL for a stored value as text: a custom value's `_data_` (a datetime's
    ISO text), else the value itself; what `events.plain` gives in Python."""
    return f"coalesce({body}->'{key}'->>'_data_', {body}->>'{key}')"


# An event's body, stored as JSON text in bytea, with NULs spelt as the
# Python path spells them (jsonb cannot hold one).
_BODY: Final = NUL_SAFE_BODY_SQL

# Each `Recorded` event's fields, extracted once (OFFSET 0 keeps PostgreSQL
# from folding the subqueries, which would decode a body once per use),
# joined with what later events changed: a transfer has at most one
# resolution and one reversal, so one row of changes per transfer, probed
# once. Posted as recorded: resolved when recorded, posted_postings NULL
# (the postings themselves); a hold: pending, '[]' posted until it is posted.
_INSERT_TRANSFERS: Final = f"""
INSERT INTO view_journal_transfers (
    transfer_id, position, logged_at, recorded_at, status, pending, expires_at,
    reverses_transfer_id, reversed_by_transfer_id, resolved_at, metadata, postings,
    posted_postings)
SELECT
    recorded.transfer_id,
    recorded.position,
    recorded.logged_at,
    recorded.recorded_at,
    coalesce(change.status, CASE WHEN recorded.pending THEN 'pending' ELSE 'posted' END),
    recorded.pending,
    recorded.expires_at,
    recorded.reverses_transfer_id,
    change.reversed_by,
    coalesce(change.resolved_at, CASE WHEN NOT recorded.pending THEN recorded.recorded_at END),
    recorded.metadata,
    recorded.postings,
    coalesce(change.posted_postings, CASE WHEN recorded.pending THEN '[]'::jsonb END)
FROM (
    SELECT originator_id AS transfer_id, notification_id AS position, recorded_at AS logged_at,
        {_plain_text("body", "recorded_at")}::timestamptz AS recorded_at,
        (body->'pending')::boolean AS pending,
        {_plain_text("body", "expires_at")}::timestamptz AS expires_at,
        (body->>'reverses_transfer_id')::uuid AS reverses_transfer_id,
        body->'metadata' AS metadata,
        body->'postings' AS postings
    FROM (
        SELECT notification_id, originator_id, recorded_at, {_BODY} AS body
        FROM ledger_events
        WHERE topic = %(recorded)s AND notification_id <= %(until)s
        OFFSET 0
    ) AS event
    OFFSET 0
) AS recorded
LEFT JOIN (
    -- The one value of each kind ([1] of an array of at most one).
    SELECT originator_id,
        (array_agg(CASE topic WHEN %(posted)s THEN 'posted' WHEN %(voided)s THEN 'voided'
            ELSE 'expired' END) FILTER (WHERE topic <> %(reversed)s))[1] AS status,
        (array_agg({_plain_text("body", "at")}::timestamptz)
            FILTER (WHERE topic <> %(reversed)s))[1] AS resolved_at,
        (array_agg(body->'postings') FILTER (WHERE topic = %(posted)s))[1] AS posted_postings,
        (array_agg((body->>'reversal_transfer_id')::uuid)
            FILTER (WHERE topic = %(reversed)s))[1] AS reversed_by
    FROM (
        SELECT originator_id, topic, {_BODY} AS body
        FROM ledger_events
        WHERE topic IN (%(posted)s, %(voided)s, %(expired)s, %(reversed)s)
            AND notification_id <= %(until)s
        OFFSET 0
    ) AS event
    GROUP BY originator_id
) AS change ON change.originator_id = recorded.transfer_id
"""  # noqa: S608 - constant text, values bound as parameters

# Every money movement as entries, one per posting: recording a transfer
# (its postings), and resolving a hold (the hold's postings, from the rows
# the statement before made, at the resolution's position). A movement
# holds its postings' amounts (held_sign 1: recording a hold), releases them
# (-1: any resolution; the posting's whole hold, so a partial post releases
# the rest too) or neither (0), and posts `posts` (a posted transfer's own
# postings, or what a hold's posting posted; none for the rest). Posting
# adds to the posted balance on the credit side, takes from it on the debit
# side; holding and releasing move the pending figure of the posting's side.
_INSERT_ENTRIES: Final = """
INSERT INTO view_journal_entries (
    account_id, position, seq, transfer_id, entry_type, side, amount_minor, currency,
    logged_at, posted_balance, debits_pending, credits_pending)
SELECT account_id, position, seq, transfer_id, entry_type, side,
    coalesce(posted, held), currency, logged_at,
    sum(CASE WHEN side = 'debit' THEN -coalesce(posted, 0) ELSE coalesce(posted, 0) END)
        OVER running,
    sum(CASE WHEN side = 'debit' THEN held_sign * held ELSE 0 END) OVER running,
    sum(CASE WHEN side = 'debit' THEN 0 ELSE held_sign * held END) OVER running
FROM (
    SELECT (posting->>'account_id')::uuid AS account_id, position, seq, transfer_id,
        entry_type, posting->>'side' AS side, posting->>'currency' AS currency, logged_at,
        (posting->'amount_minor')::bigint AS held, held_sign,
        (posts->seq->'amount_minor')::bigint AS posted
    FROM (
        SELECT movement.*, postings->seq AS posting
        FROM (
            SELECT transfer_id, position, logged_at, postings,
                CASE WHEN pending THEN %(entry_pending)s ELSE %(entry_posted)s END AS entry_type,
                CASE WHEN pending THEN 1 ELSE 0 END AS held_sign,
                CASE WHEN pending THEN NULL ELSE postings END AS posts,
                generate_series(0, jsonb_array_length(postings) - 1) AS seq
            FROM view_journal_transfers
            UNION ALL
            SELECT transfer.transfer_id, resolution.notification_id, resolution.recorded_at,
                transfer.postings,
                CASE resolution.topic WHEN %(posted)s THEN %(entry_pending_posted)s
                    WHEN %(voided)s THEN %(entry_pending_voided)s
                    ELSE %(entry_pending_expired)s END,
                -1,
                CASE WHEN resolution.topic = %(posted)s THEN transfer.posted_postings END,
                generate_series(0, jsonb_array_length(transfer.postings) - 1)
            FROM ledger_events AS resolution
            CROSS JOIN LATERAL (
                SELECT transfer_id, postings, posted_postings
                FROM view_journal_transfers
                WHERE transfer_id = resolution.originator_id
                -- Looked up by key for each resolution (a few), never hashing
                -- every transfer, as the planner would by its estimates.
                OFFSET 0
            ) AS transfer
            WHERE resolution.topic IN (%(posted)s, %(voided)s, %(expired)s)
                AND resolution.notification_id <= %(until)s
        ) AS movement
        OFFSET 0
    ) AS element
    OFFSET 0
) AS entry
WINDOW running AS (PARTITION BY account_id ORDER BY position, seq ROWS UNBOUNDED PRECEDING)
"""

_PARAMETERS: Final = {
    "recorded": TRANSFER_RECORDED,
    "posted": TRANSFER_PENDING_POSTED,
    "voided": TRANSFER_PENDING_VOIDED,
    "expired": TRANSFER_PENDING_EXPIRED,
    "reversed": TRANSFER_REVERSED,
    "entry_posted": ENTRY_POSTED,
    "entry_pending": ENTRY_PENDING,
    "entry_pending_posted": ENTRY_PENDING_POSTED,
    "entry_pending_voided": ENTRY_PENDING_VOIDED,
    "entry_pending_expired": ENTRY_PENDING_EXPIRED,
}


def replay_journal(view: View, cursor: Cursor, *, until: int | None = None) -> int:
    """Fill the journal's empty tables (those the search_path finds) from the
    log up to `until` (default: all of it) and make their indexes, in the
    caller's transaction, which commits without waiting for the disk (a
    crash loses it whole: the replay is made again). The position of the
    last event read, which is the view's position once committed."""
    cursor.execute(
        "SELECT coalesce(max(notification_id), 0) FROM ledger_events WHERE notification_id <= %s",
        (POSITION_MAX if until is None else until,),
    )
    row = cursor.fetchone()
    assert row is not None
    position = int(row[0])
    for setting, value in (
        ("synchronous_commit", "off"),
        ("work_mem", REPLAY_SORT_MEMORY),
        ("maintenance_work_mem", REPLAY_SORT_MEMORY),
        # Each transfer is looked up once: a cache of lookups would only grow.
        ("enable_memoize", "off"),
    ):
        cursor.execute("SELECT set_config(%s, %s, true)", (setting, value))
    parameters = {**_PARAMETERS, "until": position}
    # A key built once over the loaded rows costs less than one kept up
    # row by row; it goes back as it was, name and definition.
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'p'",
        (TRANSFERS_TABLE,),
    )
    key = cursor.fetchone()
    assert key is not None
    key_name, key_definition = key
    table = sql.Identifier(TRANSFERS_TABLE)
    cursor.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, sql.Identifier(key_name))
    )
    cursor.execute(_INSERT_TRANSFERS, parameters)
    cursor.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            table, sql.Identifier(key_name), sql.SQL(key_definition)
        )
    )
    cursor.execute(_INSERT_ENTRIES, parameters)
    view.create_indexes(cursor)
    return position
