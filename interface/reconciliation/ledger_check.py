"""The ledger against its own arithmetic, from the stored events alone.

See docs/rules.md#reconciliation.

The same single pass over `ledger_events` as `ledger audit verify`
(`verify_ledger` without the views): the hash chain and the order of positions
and versions, every transfer balancing per currency, debits equal to credits
per currency, and each account's totals equal to the sums of the postings made
to it. Nothing here reads a view, so a view that went wrong cannot hide a fault
in the log (the projections check compares the views).

An incremental run (`scope.incremental_runs`) checks the events after the
last clean pass, going on from what it added up (ledger_state.py); without
one it checks in full. A clean full pass keeps its state for that.

Each finding becomes a discrepancy named by what it is about ("transfer
<id>", "account <id>", "event at position 7", "currency USD"): words that
stay the same from run to run, so an open exception is recognised again
rather than raised twice. Findings about the same thing are one discrepancy,
their messages joined and the largest amount kept. None is corrected by the
service: a broken log is for a person to look into.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from domain.reconciliation import CheckResult, CheckStatus, Discrepancy, DiscrepancyKind
from interface.adapters.audit_keys import PublicKeys
from interface.audit.log_checks import LogCheck
from interface.audit.report import Finding, FindingKind, VerifyReport
from interface.audit.verify import verify_ledger
from interface.reconciliation.ledger_state import (
    check_log_since_verified,
    forget_state,
    keep_state,
    state_of,
)
from interface.reconciliation.scope import is_incremental

LEDGER_CHECK: Final[str] = "ledger"
# Counted per currency, never summed across them: a total over every account
# and currency means nothing and can pass any integer range a record holds.
MEASURE: Final[str] = "currencies whose posted debits equal their posted credits"
# Said of a finding that names nothing narrower (every log finding names
# something; this keeps a future one from failing the whole check).
WHOLE_LOG_SUBJECT: Final[str] = "the log"

# What the audit finds, as the kinds reconciliation severities are set for.
DISCREPANCY_KINDS: Final[dict[FindingKind, DiscrepancyKind]] = {
    FindingKind.HASH_CHAIN: DiscrepancyKind.HASH_CHAIN,
    # Tampering a signed checkpoint proves is as grave as a broken chain.
    FindingKind.CHECKPOINT: DiscrepancyKind.HASH_CHAIN,
    FindingKind.POSITION_ORDER: DiscrepancyKind.EVENT_ORDER,
    FindingKind.VERSION_SEQUENCE: DiscrepancyKind.EVENT_ORDER,
    FindingKind.UNKNOWN_EVENT: DiscrepancyKind.EVENT_ORDER,
    FindingKind.UNREADABLE_EVENT: DiscrepancyKind.EVENT_ORDER,
    FindingKind.TRANSFER_LIFECYCLE: DiscrepancyKind.EVENT_ORDER,
    # A posting that is not a positive amount on a side cannot balance.
    FindingKind.UNBALANCED_TRANSFER: DiscrepancyKind.UNBALANCED_TRANSFER,
    FindingKind.INVALID_POSTING: DiscrepancyKind.UNBALANCED_TRANSFER,
    FindingKind.UNBALANCED_TOTALS: DiscrepancyKind.UNBALANCED_TOTALS,
    FindingKind.ACCOUNT_TOTALS: DiscrepancyKind.ACCOUNT_TOTALS,
}


# The keys the check trusts, read at each run: the default local setup makes
# its key pair when the checkpointer first starts, after the checks are built.
TrustedKeys = Callable[[], PublicKeys | None]


class LedgerConsistencyCheck:
    def __init__(
        self,
        database_url: str,
        *,
        trusted_keys: TrustedKeys | None = None,
        checkpoint_directory: Path | None = None,
        incremental: bool | None = None,
    ) -> None:
        """`incremental`: True or False for every run; None (the service's)
        as the run says (`scope.incremental_runs`)."""
        self._database_url = database_url
        self._trusted_keys = trusted_keys
        self._checkpoint_directory = checkpoint_directory
        self._incremental = incremental

    @property
    def name(self) -> str:
        return LEDGER_CHECK

    def run(self) -> CheckResult:
        incremental = is_incremental() if self._incremental is None else self._incremental
        report = check_log_since_verified(self._database_url) if incremental else None
        if report is None:
            report = self._full_pass()
        elif not report.ok:
            # Checked in full next time, until a full pass is clean again.
            forget_state(self._database_url)
        discrepancies = discrepancies_of(report.findings)
        currencies = sorted(set(report.posted_debits_minor) | set(report.posted_credits_minor))
        return CheckResult(
            LEDGER_CHECK,
            CheckStatus.FAILED if discrepancies or report.findings_dropped else CheckStatus.PASSED,
            MEASURE,
            expected=len(currencies),
            actual=sum(
                1
                for currency in currencies
                if report.posted_debits_minor.get(currency, 0)
                == report.posted_credits_minor.get(currency, 0)
            ),
            discrepancies=discrepancies,
            elapsed_s=report.elapsed_s,
        )

    def _full_pass(self) -> VerifyReport:
        """The whole log; a clean pass's state kept to go on from."""
        kept: list[tuple[bytes, int]] = []

        def keep(check: LogCheck) -> None:
            kept.append((state_of(check), check.last_position))

        # With the public keys, the log is also held against every signed
        # checkpoint, so a rewritten or truncated tail is caught here too
        # (docs/operations.md#signed-checkpoints), not only by `audit verify`.
        report = verify_ledger(
            self._database_url,
            check_views=False,
            public_keys=self._trusted_keys() if self._trusted_keys is not None else None,
            checkpoint_directory=self._checkpoint_directory,
            log_read=keep,
        )
        if report.ok and kept:
            keep_state(self._database_url, *kept[0])
        else:
            forget_state(self._database_url)
        return report

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the ledger check corrects nothing ({discrepancy.fingerprint}): "
            "a fault in the log is for a person to look into"
        )


def discrepancies_of(findings: list[Finding]) -> tuple[Discrepancy, ...]:
    """One discrepancy per (kind, subject), in the order first found."""
    grouped: dict[tuple[DiscrepancyKind, str], list[Finding]] = {}
    for finding in findings:
        kind = DISCREPANCY_KINDS[finding.kind]
        grouped.setdefault((kind, finding.subject or WHOLE_LOG_SUBJECT), []).append(finding)
    return tuple(_discrepancy(kind, subject, same) for (kind, subject), same in grouped.items())


def _discrepancy(kind: DiscrepancyKind, subject: str, findings: list[Finding]) -> Discrepancy:
    largest = max(findings, key=lambda finding: abs(finding.amount_minor))
    currencies = {finding.currency for finding in findings if finding.currency is not None}
    return Discrepancy(
        kind,
        subject,
        "; ".join(finding.message for finding in findings),
        amount_minor=largest.amount_minor,
        # The amount is in the currency it was found in; several say none.
        currency=largest.currency if len(currencies) == 1 else None,
    )
