"""The hash chain and the signed checkpoints inside `ledger audit verify`'s
one pass over the log (docs/operations.md#audit).

Each event's link is recomputed by the scheme it was written with (version 1
before the position where version 2 begins, version 2 from there), and, when
the verifier trusts public keys, the log is compared with every signed
checkpoint (interface/audit/checkpoints.py). What that finds becomes verify's
findings, each naming the first affected event (position, stream, version),
the kind of damage and the checkpoint that proves it.

Without public keys only the chain is checked: a superuser who recomputes
the chain after a change is then caught only by the ledger's own rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from interface.adapters.audit_checkpoint_directory import CheckpointDirectory
from interface.adapters.audit_keys import PublicKeys
from interface.adapters.persistence.checkpoint_store import chain_v2_from, stored_checkpoints
from interface.audit.checkpoints import (
    CheckpointCheck,
    CheckpointReport,
    TamperFinding,
    VerifiedCheckpoint,
    verified_checkpoints,
)
from interface.audit.report import Finding, FindingKind, VerifyReport


def tamper_check(
    connection: psycopg.Connection[Any],
    tamper_report: CheckpointReport,
    public_keys: PublicKeys | None,
    checkpoint_directory: Path | None,
) -> CheckpointCheck:
    """The check to feed the log's pages to, its checkpoints read in the
    verify's snapshot (`connection`) and from the directory outside it."""
    checkpoints: list[VerifiedCheckpoint] = []
    if public_keys is not None:
        mirrored = (
            list(CheckpointDirectory(checkpoint_directory).read())
            if checkpoint_directory is not None
            else None
        )
        checkpoints = verified_checkpoints(
            stored_checkpoints(connection), mirrored, public_keys, tamper_report
        )
    return CheckpointCheck(checkpoints, chain_v2_from(connection), tamper_report)


def add_tamper_findings(tamper_report: CheckpointReport, report: VerifyReport) -> None:
    report.checkpoints = tamper_report
    for tamper in tamper_report.findings:
        report.add(finding_of(tamper))
    report.findings_dropped += tamper_report.findings_dropped


def finding_of(tamper: TamperFinding) -> Finding:
    """A checkpoint or chain finding as one of verify's findings."""
    kind = FindingKind.HASH_CHAIN if tamper.checkpoint is None else FindingKind.CHECKPOINT
    details = [f"damage: {tamper.damage.value}"]
    if tamper.stream is not None:
        details.append(f"event: {tamper.event}")
    if tamper.checkpoint is not None:
        details.append(f"proved by checkpoint {tamper.checkpoint}")
    if tamper.affected_events > 1:
        details.append(f"events of that checkpoint that differ: {tamper.affected_events}")
    if tamper.position is not None:
        subject = f"event at position {tamper.position}"
    else:
        subject = f"checkpoint {tamper.checkpoint}"
    return Finding(
        kind,
        tamper.position,
        tamper.message,
        details=tuple(details),
        subject=subject,
        stream=tamper.stream,
        version=tamper.version,
        damage=tamper.damage.value,
        checkpoint=tamper.checkpoint,
    )
