"""Each view against a fresh replay of the log.

See docs/rules.md#reconciliation.

The same comparison as `ledger audit verify` makes of the views
(`check_views`): each view's tables are digested in one snapshot with the
position the view says it has reached, the log is replayed up to that position
into a scratch schema, and the digests compared; a view that differs is listed
with the rows that differ. A view that lags the log is not a discrepancy (it is
compared at its own position); one built by another version of its code is not
either (the service rebuilds it at start).

The replays and the digests are those of `ledger projections rebuild`, on
every core (`projections.parallel_replay`). A full check keeps the replays
of the views found equal (view_replica.py); an incremental run
(`scope.incremental_runs`) goes on from them with the events since, and
compares only the rows those events wrote; without them it checks in full.

A view is derived data: one that differs, or was never built, is rebuilt
from the log by the service itself. The rebuild is made aside, in the shadow
schema, while the live view keeps serving and the live runner keeps it
following the log; it is swapped in under the view's tracking row lock, so
the runner waits for the swap only (`projections.rebuild.rebuild_with_shadow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Final

from domain.reconciliation import CheckResult, Discrepancy, DiscrepancyKind
from interface.audit.report import Finding, Progress, ViewCheck, ViewStatus
from interface.audit.view_checks import check_views
from interface.reconciliation.scope import is_incremental
from interface.reconciliation.view_replica import check_views_incrementally, keep_replays
from projections.rebuild import rebuild_with_shadow
from projections.registry import view_named

PROJECTIONS_CHECK: Final[str] = "projections"
MEASURE: Final[str] = "views equal to a fresh replay"
# What a discrepancy names as its fix: this prefix and the view's name.
REBUILD_CORRECTION_PREFIX: Final[str] = "rebuild:"
# Differing rows quoted in a discrepancy's message (the audit keeps more;
# the message is cut at the domain's length limit anyway).
ROWS_QUOTED_MAX: Final[int] = 3
# Digest characters quoted: enough to tell two digests apart by eye.
DIGEST_QUOTED_CHARS: Final[int] = 12


class ProjectionsCheck:
    """`incremental`: True or False for every run; None (the service's) as
    the run says (`scope.incremental_runs`)."""

    def __init__(
        self,
        database_url: str,
        *,
        progress: Progress | None = None,
        incremental: bool | None = None,
    ) -> None:
        self._database_url = database_url
        self._progress = progress
        self._incremental = incremental

    @property
    def name(self) -> str:
        return PROJECTIONS_CHECK

    def run(self) -> CheckResult:
        incremental = is_incremental() if self._incremental is None else self._incremental
        report = check_views_incrementally(self._database_url) if incremental else None
        if report is None:
            # In full; the replays of the views found equal are kept to go
            # on from (the next incremental run's starting point).
            report = check_views(
                self._database_url,
                progress=self._progress,
                compared=partial(keep_replays, self._database_url),
            )
        findings_by_view: dict[str, list[Finding]] = {}
        for finding in report.findings:
            findings_by_view.setdefault(finding.subject or "", []).append(finding)
        discrepancies: list[Discrepancy] = []
        for view_check in report.views:
            found = _discrepancy(view_check, findings_by_view.get(_subject(view_check.name), []))
            if found is not None:
                discrepancies.append(found)
        return CheckResult.compared(
            PROJECTIONS_CHECK,
            MEASURE,
            expected=len(report.views),
            actual=sum(1 for view_check in report.views if view_check.status is ViewStatus.EQUAL),
            discrepancies=tuple(discrepancies),
            elapsed_s=report.elapsed_s,
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        """Rebuild the view the discrepancy names, aside, and swap it in."""
        correction = discrepancy.correction or ""
        if not correction.startswith(REBUILD_CORRECTION_PREFIX):
            raise ValueError(f"the projections check cannot apply {correction!r}")
        name = correction.removeprefix(REBUILD_CORRECTION_PREFIX)
        try:
            # A fresh instance: a view remembers things between pages, and
            # the live runner's own must not be touched.
            view = view_named(name)
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None
        # The rebuild holds the shadow schema's lock itself: one at a time.
        position = rebuild_with_shadow(self._database_url, view)
        return (
            f"rebuilt view {name} from the log (shadow replay, swapped in at position {position})"
        )


def _subject(view_name: str) -> str:
    return f"view {view_name}"


def _discrepancy(view_check: ViewCheck, findings: Sequence[Finding]) -> Discrepancy | None:
    subject = _subject(view_check.name)
    correction = f"{REBUILD_CORRECTION_PREFIX}{view_check.name}"
    if view_check.status is ViewStatus.NOT_BUILT:
        return Discrepancy(
            DiscrepancyKind.VIEW_NOT_BUILT,
            subject,
            f"view {view_check.name} was never built in this database",
            correction=correction,
        )
    if view_check.status is not ViewStatus.DIFFERENT:
        return None
    differing = [
        table
        for table, digest in view_check.live_digests.items()
        if view_check.replayed_digests.get(table) != digest
    ]
    rows = [line for finding in findings for line in finding.details][:ROWS_QUOTED_MAX]
    # The audit's findings name the view, each differing table and the position.
    message = "; ".join(finding.message for finding in findings) or (
        f"view {view_check.name} at position {view_check.position} differs from a fresh "
        f"replay of the log in {', '.join(differing)}"
    )
    if rows:
        message += " -- e.g. " + " | ".join(rows)
    return Discrepancy(
        DiscrepancyKind.VIEW_DIFFERS,
        subject,
        message,
        expected=_digests(view_check.replayed_digests, differing),
        actual=_digests(view_check.live_digests, differing),
        correction=correction,
    )


def _digests(digests: dict[str, str], tables: Sequence[str]) -> str:
    return ", ".join(f"{table} {digests[table][:DIGEST_QUOTED_CHARS]}" for table in tables)
