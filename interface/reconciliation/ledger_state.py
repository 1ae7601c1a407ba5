"""The ledger check's pass over the log, kept at its last clean position to
go on from: what makes an incremental ledger check cost the new events only.

See docs/operations.md#reconciliation.

The single pass of `ledger audit verify` (interface/audit/log_checks.py)
holds, per account, open hold and funded account or process, what the log
so far adds up to; never anything per event. After a full ledger check
that found nothing, that state is kept (JSON, in `reconciliation_states`,
with its position in `reconciliation_positions`, in one transaction). An
incremental check loads it and goes on with the events after that
position, in one REPEATABLE READ snapshot: the hash chain from the stored
link of the last verified event, the order of positions and versions, each
new transfer's balance, and then every account's totals and every
currency's debits and credits over the whole state, as a full pass ends.
A clean incremental check keeps its state in turn.

What an incremental check does not look at: events changed at or before
the verified position (their links were checked then), and the signed
checkpoints. The daily full run checks both.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import psycopg

from interface.adapters.persistence.checkpoint_store import chain_v2_from
from interface.audit.checkpoints import CheckpointCheck, CheckpointReport
from interface.audit.log_checks import LogCheck
from interface.audit.report import VerifyReport
from interface.audit.stored_events import LOG_PAGE_ROWS, snapshot_connection
from interface.audit.tamper_checks import add_tamper_findings
from projections.runner import log_head

LEDGER_CHECK_NAME: Final[str] = "ledger"
# The subject of the ledger check's one position: the whole log.
LOG_SUBJECT: Final[str] = "log"
# Bumped when what the state holds changes: a state of another version is
# not gone on from (the next run checks in full and keeps a new one).
STATE_VERSION: Final[int] = 1

_SELECT_PAGE: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state, event_hash,"
    " recorded_at FROM ledger_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)


class _ChainFrom(CheckpointCheck):
    """The hash chain only, from a stored link on (no checkpoints: they are
    the full run's)."""

    def __init__(self, previous_link: bytes, v2_from: int, report: CheckpointReport) -> None:
        super().__init__([], v2_from, report)
        self._previous_link = previous_link


def state_of(check: LogCheck) -> bytes:
    """The pass's state, as JSON (ids as hex: JSON keys are text)."""
    return orjson.dumps(
        {
            "last_position": check.last_position,
            "accounts": {key.hex(): value for key, value in check.accounts.items()},
            "derived": check.derived,
            "holds": {key.hex(): value for key, value in check.holds.items()},
            "sequences": {key.hex(): value for key, value in check.sequences.items()},
        }
    )


def _restore(check: LogCheck, state: bytes) -> None:
    data: dict[str, Any] = orjson.loads(state)
    check.last_position = int(data["last_position"])
    check.accounts = {bytes.fromhex(key): value for key, value in data["accounts"].items()}
    check.derived = data["derived"]
    check.holds = {bytes.fromhex(key): value for key, value in data["holds"].items()}
    check.sequences = {bytes.fromhex(key): int(value) for key, value in data["sequences"].items()}


def keep_state(database_url: str, state: bytes, position: int) -> None:
    """The state of a clean pass up to `position`, to go on from."""
    with psycopg.connect(database_url) as connection, connection.transaction():
        connection.execute(
            "INSERT INTO reconciliation_states (check_name, version, state) VALUES (%s, %s, %s)"
            " ON CONFLICT (check_name) DO UPDATE SET version = excluded.version,"
            " state = excluded.state",
            (LEDGER_CHECK_NAME, STATE_VERSION, state),
        )
        connection.execute(
            "INSERT INTO reconciliation_positions (check_name, subject, position, version)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (check_name, subject) DO UPDATE"
            " SET position = excluded.position, version = excluded.version, verified_at = now()",
            (LEDGER_CHECK_NAME, LOG_SUBJECT, position, STATE_VERSION),
        )


def forget_state(database_url: str) -> None:
    """After a pass that found something: the next run checks in full."""
    with psycopg.connect(database_url) as connection, connection.transaction():
        connection.execute(
            "DELETE FROM reconciliation_positions WHERE check_name = %s", (LEDGER_CHECK_NAME,)
        )
        connection.execute(
            "DELETE FROM reconciliation_states WHERE check_name = %s", (LEDGER_CHECK_NAME,)
        )


def check_log_since_verified(database_url: str) -> VerifyReport | None:
    """The events after the last clean position, checked on from its state;
    the report as a full pass's. None when there is nothing to go on from
    (no kept state, another version of it, a log shorter than it or a
    stored link missing): the caller checks in full."""
    with snapshot_connection(database_url) as reader:
        found = reader.execute(
            "SELECT p.position, s.state FROM reconciliation_positions AS p"
            " JOIN reconciliation_states AS s ON s.check_name = p.check_name"
            " WHERE p.check_name = %s AND p.subject = %s AND p.version = %s AND s.version = %s",
            (LEDGER_CHECK_NAME, LOG_SUBJECT, STATE_VERSION, STATE_VERSION),
        ).fetchone()
        if found is None:
            return None
        position, state = int(found[0]), bytes(found[1])
        report = VerifyReport()
        with reader.cursor(binary=True) as cursor:
            report.head_position = log_head(cursor)
            cursor.execute(
                "SELECT event_hash FROM ledger_events WHERE notification_id = %s", (position,)
            )
            link = cursor.fetchone()
            v2_from = chain_v2_from(reader)
            if link is None or report.head_position < position or v2_from > position + 1:
                return None
            tamper_report = CheckpointReport()
            check = LogCheck(report, _ChainFrom(bytes(link[0]), v2_from, tamper_report))
            _restore(check, state)
            after = position
            while True:
                cursor.execute(_SELECT_PAGE, (after, LOG_PAGE_ROWS))
                rows = cursor.fetchall()
                if not rows:
                    break
                check.check_page(rows)
                check.check_earlier_versions(cursor, final=False)
                report.events_checked += len(rows)
                after = rows[-1][0]
            check.check_earlier_versions(cursor, final=True)
    kept = state_of(check)
    check.finish()
    add_tamper_findings(tamper_report, report)
    if report.ok:
        keep_state(database_url, kept, check.last_position)
    return report
