"""The wire format between writer clients and the writer process.

Every message is three ZeroMQ frames: a kind (one byte), a request id chosen
by the client (echoed in the answer) and a body. Bodies are pickles of the
application's own types (commands, `AggregateChanges`, `WriteReceipt`,
exceptions): the two ends are processes of one deployment running the same
code, and only they may reach the socket (loopback or an ipc path, or CURVE
with the deployment's key beyond loopback: curve.py). Pickle keeps every
command and aggregate type crossing without a schema of its own.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from application.writer import (
    AggregateChanges,
    WriteReceipt,
    WriterLimits,
    WriterStatistics,
)
from domain.commands import Command

# Client to writer.
SUBMIT: Final[bytes] = b"s"
STATUS_QUERY: Final[bytes] = b"?"
# Writer to client.
RECEIPT: Final[bytes] = b"r"
FAILURE: Final[bytes] = b"e"
STATUS: Final[bytes] = b"!"

PICKLE_PROTOCOL: Final[int] = pickle.HIGHEST_PROTOCOL


@dataclass(frozen=True, slots=True)
class WriterStatus:
    """What the writer process answers a status query with (and a heartbeat)."""

    # Chosen at each start: a client sees a restart as a new id.
    incarnation: str
    running: bool
    last_position: int
    queued_commands: int
    statistics: WriterStatistics
    limits: WriterLimits


def encode_submission(commands: Sequence[Command], changes: AggregateChanges | None) -> bytes:
    return pickle.dumps((list(commands), changes), protocol=PICKLE_PROTOCOL)


def decode_submission(body: bytes) -> tuple[list[Command], AggregateChanges | None]:
    commands, changes = pickle.loads(body)  # noqa: S301 - a process of this deployment
    return commands, changes


def encode_receipt(receipt: WriteReceipt) -> bytes:
    """A submission's receipt, carrying only the transfers its own commands
    recorded (the writer's receipt maps every transfer of the whole batch)."""
    own = {
        result.id: receipt.recorded_transfers[result.id]
        for result in receipt.results
        if result.id is not None and result.id in receipt.recorded_transfers
    }
    if len(own) != len(receipt.recorded_transfers):
        receipt = replace(receipt, recorded_transfers=own)
    return pickle.dumps(receipt, protocol=PICKLE_PROTOCOL)


def decode_receipt(body: bytes) -> WriteReceipt:
    receipt: WriteReceipt = pickle.loads(body)  # noqa: S301 - a process of this deployment
    return receipt


def encode_failure(error: BaseException) -> bytes:
    """The writer's exception as it is (WriterOverloaded, WriterStopped, a
    database fault...), so the client raises what an in-process caller would;
    one that does not pickle crosses as a RuntimeError with its text."""
    try:
        return pickle.dumps(error, protocol=PICKLE_PROTOCOL)
    except Exception:  # noqa: BLE001 - any exception must cross
        return pickle.dumps(
            RuntimeError(f"{type(error).__name__}: {error}"), protocol=PICKLE_PROTOCOL
        )


def decode_failure(body: bytes) -> BaseException:
    error: Any = pickle.loads(body)  # noqa: S301 - a process of this deployment
    if isinstance(error, BaseException):
        return error
    return RuntimeError(f"the writer answered an unreadable failure: {error!r}")


def encode_status(status: WriterStatus) -> bytes:
    return pickle.dumps(status, protocol=PICKLE_PROTOCOL)


def decode_status(body: bytes) -> WriterStatus:
    status: WriterStatus = pickle.loads(body)  # noqa: S301 - a process of this deployment
    return status
