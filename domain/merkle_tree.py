"""Merkle trees as Certificate Transparency defines them (RFC 6962, section 2.1).

A signed checkpoint carries the root over the events it covers; an inclusion
proof (the audit path) shows one event is among them without the others. The
leaf and node hashes have different one-byte prefixes, so a node can never
pass for a leaf. The proof's check is RFC 9162's (section 2.1.3.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """The tree's root over leaf hashes. Pairing neighbours level by level,
    a last odd node carried up as it is, gives RFC 6962's left-balanced tree.
    The empty tree's root is sha256 of nothing."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    sha256 = hashlib.sha256
    while len(level) > 1:
        paired = [
            sha256(_NODE_PREFIX + level[index] + level[index + 1]).digest()
            for index in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _split(size: int) -> int:
    """The largest power of two smaller than size (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index`, leaf side first (RFC 6962 PATH)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of a tree of {len(leaves)}")
    path: list[bytes] = []
    low, high = 0, len(leaves)
    # Walk from the root down, then reverse: each level's sibling subtree.
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            path.append(root_of_leaves(leaves[middle:high]))
            high = middle
        else:
            path.append(root_of_leaves(leaves[low:middle]))
            low = middle
    path.reverse()
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root a leaf and its audit path lead to; None when the path cannot
    belong to leaf `index` of a tree of `size` leaves."""
    if not 0 <= index < size:
        return None
    position, last = index, size - 1
    root = leaf
    for sibling in path:
        if last == 0:
            return None
        if position % 2 or position == last:
            root = node_hash(sibling, root)
            if not position % 2:
                # A right edge carried up: skip the levels where it had no sibling.
                while position and not position % 2:
                    position >>= 1
                    last >>= 1
        else:
            root = node_hash(root, sibling)
        position >>= 1
        last >>= 1
    return root if last == 0 else None
