"""A funded account's states and which may follow which
(docs/rules.md#tiers-forks-and-merges).

SAFE: figures kept, no new trading. FORKING and MERGING: capital moving to or
from another account. PENDING_CLOSURE: the closure process is running.
ERROR: a fork or merge failed and waits for a person. CLOSED is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class FundedAccountState(StrEnum):
    SAFE = "safe"  # figures kept, positions may be closed, none opened
    ACTIVE = "active"
    FORKING = "forking"
    MERGING = "merging"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    ERROR = "error"
    PENDING_CLOSURE = "pending_closure"


_S = FundedAccountState
# Which state may follow which; a state never follows itself. CLOSED is final.
ALLOWED_TRANSITIONS: Final[Mapping[FundedAccountState, frozenset[FundedAccountState]]] = (
    MappingProxyType(
        {
            # Trading back on; held by an admin; wound down; or closed by a rule
            # violation found while trading was off (marks still move the figures).
            _S.SAFE: frozenset({_S.ACTIVE, _S.SUSPENDED, _S.PENDING_CLOSURE, _S.CLOSED}),
            # Trading paused (SAFE) or held (SUSPENDED); a fork or merge starts; the
            # trader or an admin winds it down; something broke (ERROR); a rule
            # violation closes it (CLOSED).
            _S.ACTIVE: frozenset(
                {
                    _S.SAFE,
                    _S.SUSPENDED,
                    _S.FORKING,
                    _S.MERGING,
                    _S.PENDING_CLOSURE,
                    _S.ERROR,
                    _S.CLOSED,
                }
            ),
            # The fork completed, or failed and is rolled back (ERROR until it is).
            _S.FORKING: frozenset({_S.ACTIVE, _S.ERROR}),
            # A partial merge leaves it trading; a full merge empties and closes it.
            _S.MERGING: frozenset({_S.ACTIVE, _S.CLOSED, _S.ERROR}),
            # Released to trade or to SAFE; wound down; closed (violation, admin).
            _S.SUSPENDED: frozenset({_S.ACTIVE, _S.SAFE, _S.PENDING_CLOSURE, _S.CLOSED}),
            # Waiting for the last positions and payout; then closed. No way back.
            _S.PENDING_CLOSURE: frozenset({_S.CLOSED}),
            # A fully rolled-back fork or merge leaves nothing to review: ACTIVE.
            # Otherwise held for review: SAFE (figures only) or SUSPENDED.
            _S.ERROR: frozenset({_S.ACTIVE, _S.SAFE, _S.SUSPENDED}),
            _S.CLOSED: frozenset(),
        }
    )
)
