"""Merkle inclusion proofs of single events against a signed checkpoint
(`ledger audit prove`, `ledger audit check-proof`; docs/operations.md#audit).

A proof is one JSON document: the event's stored fields (its body in
base64, byte for byte), the stored link before it, its leaf's place in the
checkpoint's tree, the audit path, and the signed checkpoint statement. A
checker needs only the public key: it recomputes the event's link from its
fields, its leaf from (position, recorded_at, link), the root from the path,
and compares with the signed root. Nothing else of the history is handed over.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from domain.audit_checkpoint import (
    ENTRY_BYTES,
    CheckpointFormatError,
    SignedCheckpoint,
    entry,
    entry_leaves,
    parse_statement,
)
from domain.event_chain import (
    GENESIS_HASH,
    chained_hash,
    chained_link_of,
    recorded_at_bytes,
)
from domain.merkle_tree import inclusion_path, leaf_hash, root_from_path
from interface.adapters.audit_keys import PublicKeys
from interface.adapters.persistence.checkpoint_store import checkpoint_covering

PROOF_FORMAT: Final[str] = "ledger-inclusion-proof/1"


class ProofUnavailable(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ProofCheck:
    ok: bool
    message: str


def prove(connection: psycopg.Connection[Any], event: str) -> dict[str, Any]:
    """The proof of one event, named by its position ("42") or by its stream
    and version ("<originator id>/<version>")."""
    row = _event_row(connection, event)
    if row is None:
        raise ProofUnavailable(f"no event {event}")
    position, originator, version, topic, state, stored, recorded, previous = row
    signed = checkpoint_covering(connection, position)
    if signed is None:
        raise ProofUnavailable(
            f"event at position {position} is after the newest checkpoint: try again in a moment"
        )
    checkpoint = signed.checkpoint
    index = position_index(signed, position)
    if index is None:
        raise ProofUnavailable(
            f"checkpoint {checkpoint.sequence} does not list position {position}"
        )
    return {
        "format": PROOF_FORMAT,
        "event": {
            "position": position,
            "stream": str(originator),
            "version": version,
            "type": topic,
            "recorded_at": recorded.isoformat(),
            "state_base64": base64.b64encode(bytes(state)).decode(),
            "link": bytes(stored).hex(),
            "previous_link": (bytes(previous) if previous is not None else GENESIS_HASH).hex(),
        },
        "leaf_index": index,
        "tree_size": checkpoint.leaf_count,
        "audit_path": [node.hex() for node in inclusion_path(entry_leaves(signed.entries), index)],
        "checkpoint": {
            "statement": signed.statement.decode(),
            "signature": base64.b64encode(signed.signature).decode(),
        },
    }


def position_index(signed: SignedCheckpoint, position: int) -> int | None:
    """The place of `position` among the checkpoint's entries (sorted)."""
    entries = signed.entries
    low, high = 0, len(entries) // ENTRY_BYTES
    while low < high:
        middle = (low + high) // 2
        found = int.from_bytes(entries[middle * ENTRY_BYTES : middle * ENTRY_BYTES + 8], "big")
        if found == position:
            return middle
        if found < position:
            low = middle + 1
        else:
            high = middle
    return None


def check_proof(proof: dict[str, Any], keys: PublicKeys) -> ProofCheck:
    try:
        return _check(proof, keys)
    except (KeyError, TypeError, ValueError, CheckpointFormatError) as error:
        return ProofCheck(False, f"not a readable proof: {error}")


def _check(proof: dict[str, Any], keys: PublicKeys) -> ProofCheck:
    if proof.get("format") != PROOF_FORMAT:
        return ProofCheck(False, "not a ledger inclusion proof")
    statement = proof["checkpoint"]["statement"].encode()
    signature = base64.b64decode(proof["checkpoint"]["signature"], validate=True)
    checkpoint = parse_statement(statement)
    if not keys.verifies(checkpoint.key_id, statement, signature):
        return ProofCheck(
            False, f"the checkpoint is not signed by a trusted key (key id {checkpoint.key_id})"
        )
    event = proof["event"]
    position = int(event["position"])
    recorded = datetime.fromisoformat(event["recorded_at"])
    state = base64.b64decode(event["state_base64"], validate=True)
    previous = bytes.fromhex(event["previous_link"])
    stream, version, topic = UUID(event["stream"]), int(event["version"]), str(event["type"])
    if position >= checkpoint.chain_v2_from:
        link = chained_link_of(previous, position, stream, version, topic, state, recorded)
    else:
        link = chained_hash(previous, stream, version, topic, state)
    leaf = leaf_hash(entry(position, recorded_at_bytes(recorded), link))
    path = [bytes.fromhex(node) for node in proof["audit_path"]]
    root = root_from_path(leaf, int(proof["leaf_index"]), checkpoint.leaf_count, path)
    if root is None or root.hex() != checkpoint.merkle_root:
        return ProofCheck(
            False,
            f"the event at position {position} is not in checkpoint {checkpoint.sequence} "
            "as it is given: its fields, or the path, were changed",
        )
    return ProofCheck(
        True,
        f"event at position {position} (stream {stream} v{version}, {topic}) is in "
        f"checkpoint {checkpoint.sequence}, signed by key {checkpoint.key_id} at "
        f"{checkpoint.created_at}",
    )


def _event_row(connection: psycopg.Connection[Any], event: str) -> tuple[Any, ...] | None:
    columns = (
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
        " e.event_hash, e.recorded_at, (SELECT p.event_hash FROM ledger_events AS p"
        " WHERE p.notification_id < e.notification_id ORDER BY p.notification_id DESC LIMIT 1)"
        " FROM ledger_events AS e"
    )
    if "/" in event:
        stream, _, version = event.partition("/")
        try:
            key: tuple[Any, ...] = (UUID(stream), int(version))
        except ValueError:
            return None
        return connection.execute(
            columns + " WHERE e.originator_id = %s AND e.originator_version = %s", key
        ).fetchone()
    if not event.isdigit():
        return None
    return connection.execute(columns + " WHERE e.notification_id = %s", (int(event),)).fetchone()
