"""`ledger audit keygen`, `checkpoint`, `prove`, `check-proof` and the offline
export and its verify (docs/operations.md#audit): signed checkpoints from
the command line. `check-proof` and `verify --export` need no database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import orjson
import psycopg
import typer
from rich.console import Console

from interface.adapters.audit_keys import AuditKeyError, CheckpointSigner, write_key_pair
from interface.audit.checkpoints import CheckpointReport
from interface.audit.offline_export import (
    ExportFormatError,
    verify_offline_export,
    write_offline_export,
)
from interface.audit.proofs import ProofUnavailable, check_proof, prove
from interface.audit_setup import (
    audit_public_keys,
    build_checkpointer,
    checkpoint_dir,
    public_keys_path,
)
from interface.cli.context import command_settings, migrated_database_url
from interface.cli.output import JsonOption, print_json

# Findings printed in full; the rest are counted.
TAMPER_FINDINGS_SHOWN_MAX = 50


def register(audit_app: typer.Typer) -> None:
    audit_app.command("keygen")(keygen)
    audit_app.command("checkpoint")(checkpoint)
    audit_app.command("prove")(prove_event)
    audit_app.command("check-proof")(check_proof_file)


def keygen(
    private_key: Annotated[Path, typer.Option(help="Write the private key here (PEM, 0600)")],
    public_keys: Annotated[
        Path | None,
        typer.Option(help="Append the public key here (default: the configured public keys file)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make an Ed25519 key pair for signed checkpoints. Old public keys stay in
    the public keys file, so checkpoints signed before a rotation still verify."""
    settings = command_settings()
    signer = CheckpointSigner.generate()
    target = public_keys or public_keys_path(settings)
    try:
        write_key_pair(signer, private_key, target)
    except FileExistsError:
        raise typer.BadParameter(f"{private_key} exists: a key is never overwritten") from None
    if as_json:
        print_json(
            {"key_id": signer.key_id, "private_key": str(private_key), "public_keys": str(target)}
        )
        return
    typer.echo(
        f"key id {signer.key_id}: private key {private_key}, public key appended to {target}"
    )
    typer.echo(f"use it: LEDGER_AUDIT_SIGNING_KEY_FILE={private_key}")


def checkpoint(as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the log now (the service does every few seconds)."""
    settings = command_settings()
    made = build_checkpointer(settings, migrated_database_url()).run_once()
    if as_json:
        print_json({"signed": made, "directory": str(checkpoint_dir(settings))})
        return
    typer.echo(f"{made} checkpoint(s) signed into {checkpoint_dir(settings)}")


def prove_event(
    event: Annotated[str, typer.Argument(help="Log position, or <stream id>/<version>")],
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """Print a Merkle inclusion proof of one event against a signed checkpoint."""
    with psycopg.connect(migrated_database_url()) as connection:
        try:
            proof = prove(connection, event)
        except ProofUnavailable as missing:
            typer.echo(str(missing), err=True)
            raise typer.Exit(1) from None
    text = orjson.dumps(proof, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    if output is None:
        sys.stdout.buffer.write(text)
    else:
        output.write_bytes(text)


def check_proof_file(
    proof: Annotated[Path, typer.Argument(help="A proof `ledger audit prove` printed")],
    public_key: Annotated[
        Path | None, typer.Option(help="Trusted public key(s), PEM (default: the configured file)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check an inclusion proof with the public key alone. Exit 1 if it fails."""
    try:
        keys = audit_public_keys(command_settings(), public_key)
    except AuditKeyError as error:
        raise typer.BadParameter(str(error)) from None
    result = check_proof(orjson.loads(proof.read_bytes()), keys)
    if as_json:
        print_json({"ok": result.ok, "message": result.message})
    else:
        typer.echo(("OK: " if result.ok else "FAILED: ") + result.message)
    raise typer.Exit(0 if result.ok else 1)


def export_offline_to(database_url: str, sink: IO[bytes]) -> int:
    """The offline export (events with their stored bodies, checkpoints,
    public keys) to `sink`; how many events."""
    settings = command_settings()
    keys_file = public_keys_path(settings)
    keys_pem = keys_file.read_bytes() if keys_file.exists() else None
    return write_offline_export(database_url, sink, checkpoint_dir(settings), keys_pem)


def verify_export(export: Path, public_key: Path | None) -> CheckpointReport:
    try:
        keys = audit_public_keys(command_settings(), public_key)
        return verify_offline_export(export, keys)
    except (AuditKeyError, ExportFormatError) as error:
        raise typer.BadParameter(str(error)) from None


def print_tamper_report(
    console: Console, report: CheckpointReport, *, findings: bool = True
) -> None:
    """What the checkpoints cover; with `findings`, what differs from them
    (`ledger audit verify` prints them among its own findings instead)."""
    console.print(
        f"checkpoints: {report.checkpoints_verified} verified (keys {', '.join(report.key_ids)}),"
        f" covering {report.events_covered:,} events through position "
        f"{report.covered_through:,}; {report.window_events:,} after the newest (chain only)"
    )
    if report.ok or not findings:
        return
    first = report.first
    if first is not None:
        console.print(
            f"[red]first affected event: {first.event}[/red]: {first.damage.value}: "
            f"{first.message}",
            highlight=False,
        )
    total = len(report.findings) + report.findings_dropped
    for finding in report.findings[:TAMPER_FINDINGS_SHOWN_MAX]:
        console.print(
            f"[bold]{finding.damage.value}[/bold] ({finding.event}): {finding.message}",
            highlight=False,
        )
    if total > TAMPER_FINDINGS_SHOWN_MAX:
        console.print(f"... and {total - TAMPER_FINDINGS_SHOWN_MAX} more")
