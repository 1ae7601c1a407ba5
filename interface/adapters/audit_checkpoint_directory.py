"""Signed checkpoints written outside the database, append-only
(docs/operations.md#audit).

One JSON file per checkpoint, named by its sequence; a file is never
replaced: it is written under a temporary name and linked to its own name,
which fails if the name exists. Point LEDGER_AUDIT_CHECKPOINT_DIR at storage
the database's administrators cannot rewrite (an object store bucket with a
retention lock, mounted or synced), and a rewritten database cannot take its
checkpoints with it.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import orjson

from domain.audit_checkpoint import CheckpointFormatError, SignedCheckpoint

_NAME: Final = re.compile(r"^checkpoint-(\d{12})\.json$")


def checkpoint_file_name(sequence: int) -> str:
    return f"checkpoint-{sequence:012d}.json"


def checkpoint_json(signed: SignedCheckpoint) -> bytes:
    return orjson.dumps(
        {
            "statement": signed.statement.decode(),
            "signature": base64.b64encode(signed.signature).decode(),
            "entries": base64.b64encode(signed.entries).decode(),
        }
    )


def checkpoint_from_json(raw: bytes | str | dict[str, str]) -> SignedCheckpoint:
    try:
        fields = raw if isinstance(raw, dict) else orjson.loads(raw)
        return SignedCheckpoint(
            statement=fields["statement"].encode(),
            signature=base64.b64decode(fields["signature"], validate=True),
            entries=base64.b64decode(fields["entries"], validate=True),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CheckpointFormatError(f"not a checkpoint file: {error}") from error


class CheckpointDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def sequences(self) -> list[int]:
        if not self.path.is_dir():
            return []
        found = (_NAME.match(name) for name in os.listdir(self.path))
        return sorted(int(match.group(1)) for match in found if match)

    def append(self, sequence: int, signed: SignedCheckpoint) -> bool:
        """Write the checkpoint's file; False when one of that sequence exists."""
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / checkpoint_file_name(sequence)
        if final.exists():
            return False
        temporary = self.path / f".{final.name}.{os.getpid()}.tmp"
        with temporary.open("wb") as file:
            file.write(checkpoint_json(signed))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, final)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        return True

    def read(self) -> Iterator[tuple[int, SignedCheckpoint | CheckpointFormatError]]:
        """Every checkpoint file in sequence order; a damaged one as its error."""
        for sequence in self.sequences():
            try:
                raw = (self.path / checkpoint_file_name(sequence)).read_bytes()
                yield sequence, checkpoint_from_json(raw)
            except CheckpointFormatError as error:
                yield sequence, error
