"""Everything an offline audit needs, in one JSON Lines file, and its check
with no database (`ledger audit export`, `ledger audit verify --export`).

Lines, in this order, each an object with a `kind`:

- `header`: the format, where chain version 2 begins, the log's head;
- `public_keys`: the PEM of the keys the service signs with (for reference:
  a verifier trusts the keys it is given, never the file's own);
- `checkpoint`, one per signed checkpoint, from the directory outside the
  database when it has it (`source`), else from the database;
- `event`, one per stored event in log order: every stored field, the body
  in base64 byte for byte, the time as microseconds since 2000-01-01 UTC
  (`recorded_at_us`, exactly what the link covers) and as ISO 8601.

Checkpoints come before the events, so a check reads the file once, in
order, holding one page of events at a time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Final
from uuid import UUID

import orjson

from domain.audit_checkpoint import CheckpointFormatError, SignedCheckpoint
from domain.event_chain import recorded_at_from_bytes
from interface.adapters.audit_checkpoint_directory import (
    CheckpointDirectory,
    checkpoint_from_json,
    checkpoint_json,
)
from interface.adapters.audit_keys import PublicKeys
from interface.adapters.persistence.checkpoint_store import chain_v2_from, stored_checkpoints
from interface.audit.checkpoint_sources import log_pages, raw_log_connection
from interface.audit.checkpoints import (
    CheckpointCheck,
    CheckpointReport,
    Damage,
    Row,
    TamperFinding,
    verified_checkpoints,
)

EXPORT_FORMAT: Final[str] = "ledger-audit-export/1"
# Events checked per page when reading an export back.
EXPORT_PAGE_ROWS: Final[int] = 20_000


class ExportFormatError(ValueError):
    pass


def write_offline_export(
    database_url: str, sink: IO[bytes], directory: Path | None, public_keys_pem: bytes | None
) -> int:
    """Write the export; how many events it holds."""
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    events = 0
    with raw_log_connection(database_url) as connection:
        stored = dict(stored_checkpoints(connection))
        head = connection.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events")
        head_row = head.fetchone()
        sink.write(
            dumps(
                {
                    "kind": "header",
                    "format": EXPORT_FORMAT,
                    "chain_v2_from": chain_v2_from(connection),
                    "head_position": int(head_row[0]) if head_row else 0,
                },
                option=newline,
            )
        )
        if public_keys_pem:
            sink.write(
                dumps({"kind": "public_keys", "pem": public_keys_pem.decode()}, option=newline)
            )
        mirrored = dict(CheckpointDirectory(directory).read()) if directory is not None else {}
        for sequence in sorted(stored.keys() | mirrored.keys()):
            copy = mirrored.get(sequence)
            source = "directory"
            if not isinstance(copy, SignedCheckpoint):
                copy, source = stored[sequence], "database"
            line = orjson.loads(checkpoint_json(copy))
            sink.write(
                dumps(
                    {"kind": "checkpoint", "sequence": sequence, "source": source, **line},
                    option=newline,
                )
            )
        for page in log_pages(connection):
            sink.write(b"".join(dumps(_event(row), option=newline) for row in page))
            events += len(page)
    return events


def _event(row: Row) -> dict[str, Any]:
    position, originator, version, topic, state, stored, recorded = row
    return {
        "kind": "event",
        "position": position,
        "stream": str(UUID(bytes=originator)),
        "version": version,
        "type": topic.decode(errors="replace"),
        "type_base64": base64.b64encode(topic).decode(),
        "recorded_at_us": int.from_bytes(recorded, "big", signed=True),
        "recorded_at": recorded_at_from_bytes(recorded).astimezone(UTC).isoformat(),
        "state_base64": base64.b64encode(state).decode(),
        "link": stored.hex(),
    }


def verify_offline_export(path: Path, keys: PublicKeys) -> CheckpointReport:
    report = CheckpointReport()
    with path.open("rb") as file:
        lines = iter(file)
        header = _header(next(lines, b""))
        checkpoints: list[tuple[int, SignedCheckpoint | CheckpointFormatError]] = []
        first_event: Row | None = None
        for raw in lines:
            line = orjson.loads(raw)
            kind = line.get("kind")
            if kind == "checkpoint":
                try:
                    checkpoints.append((int(line["sequence"]), checkpoint_from_json(line)))
                except CheckpointFormatError as error:
                    checkpoints.append((int(line["sequence"]), error))
            elif kind == "event":
                first_event = _row(line)
                break
        # The file's checkpoints stand for the directory: each copy is checked
        # on its own signature, and there is no second copy to compare.
        valid = verified_checkpoints(
            [(s, c) for s, c in checkpoints if isinstance(c, SignedCheckpoint)], None, keys, report
        )
        for sequence, copy in checkpoints:
            if isinstance(copy, CheckpointFormatError):
                report.add(_unreadable(sequence, copy))
        check = CheckpointCheck(valid, int(header["chain_v2_from"]), report)
        for page in _pages(first_event, lines):
            check.check_page(page)
        check.finish()
    return report


def _header(raw: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ExportFormatError(f"not an audit export: {error}") from error
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError(f"not an audit export (no header line of format {EXPORT_FORMAT})")
    return header


def _pages(first: Row | None, lines: Iterator[bytes]) -> Iterator[list[Row]]:
    if first is None:
        return
    page = [first]
    for raw in lines:
        line = orjson.loads(raw)
        if line.get("kind") != "event":
            continue
        page.append(_row(line))
        if len(page) >= EXPORT_PAGE_ROWS:
            yield page
            page = []
    if page:
        yield page


def _row(line: dict[str, Any]) -> Row:
    try:
        return (
            int(line["position"]),
            UUID(line["stream"]).bytes,
            int(line["version"]),
            base64.b64decode(line["type_base64"]),
            base64.b64decode(line["state_base64"]),
            bytes.fromhex(line["link"]),
            int(line["recorded_at_us"]).to_bytes(8, "big", signed=True),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ExportFormatError(f"an event line that cannot be read: {error}") from error


def _unreadable(sequence: int, error: CheckpointFormatError) -> TamperFinding:
    return TamperFinding(
        Damage.CHECKPOINT_INVALID, None, f"checkpoint {sequence}: {error}", checkpoint=sequence
    )
