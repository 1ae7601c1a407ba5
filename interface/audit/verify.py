"""`ledger audit verify`: check the whole ledger from its stored events alone.

An auditor should not have to trust the service's code paths, caches or
views, so this reads `ledger_events` with plain SQL (stored_events.py) and
checks, in one pass in log order, the hash chain and the signed checkpoints
(tamper_checks.py), the order of positions and versions, and the money
(log_checks.py). Then each view is compared with a
fresh replay of the log up to the position the view says it has reached
(view_checks.py). What it finds is a report (report.py).

The log is read in pages inside one REPEATABLE READ transaction, so the
checks see one consistent log however much is written meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from interface.adapters.audit_keys import PublicKeys
from interface.audit.log_checks import LogCheck, check_log
from interface.audit.report import Progress, VerifyReport
from interface.audit.view_checks import compare_views


def verify_ledger(
    database_url: str,
    *,
    check_views: bool = True,
    progress: Progress | None = None,
    public_keys: PublicKeys | None = None,
    checkpoint_directory: Path | None = None,
    log_read: Callable[[LogCheck], None] | None = None,
) -> VerifyReport:
    """The report. With `public_keys`, the log is also checked against every
    checkpoint they sign, from the database and from `checkpoint_directory`.
    `log_read`: given the log pass's state once the log is read (`check_log`)."""
    started = time.perf_counter()
    report = VerifyReport()
    check_log(
        database_url,
        report,
        progress,
        public_keys=public_keys,
        checkpoint_directory=checkpoint_directory,
        read=log_read,
    )
    report.log_elapsed_s = time.perf_counter() - started
    if check_views:
        compare_views(database_url, report, progress)
    report.elapsed_s = time.perf_counter() - started
    return report
