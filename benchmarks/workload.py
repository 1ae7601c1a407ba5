"""The benchmark's work, the same for the ledger and for the naive baseline.

User accounts are numbered 0..accounts-1. Each transfer moves a small random
amount from one user account to another; every account is funded so far
beyond what the whole run can take out of it that no transfer fails for
funds. The transfers are drawn from a seeded generator per chunk, so a chunk
is the same whichever client thread builds it, and can be drawn again after
the run to check the balances.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

TRANSFER_AMOUNT_MINOR_MAX: Final[int] = 10_000
# $10,000,000 per account: two hundred thousand transfers of at most $100
# among a thousand accounts take out about $1,000 of each on average.
FUNDING_MINOR: Final[int] = 1_000_000_000
CURRENCY: Final[str] = "USD"


class TransferSpec(NamedTuple):
    debit_account: int
    credit_account: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Workload:
    accounts: int
    seed: int
    chunk_size: int

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("transfers need at least two accounts")
        if self.chunk_size < 1:
            raise ValueError("a chunk holds at least one transfer")

    def chunk_count(self, transfers: int) -> int:
        return -(-transfers // self.chunk_size)

    def chunk(self, phase: str, index: int, transfers: int) -> list[TransferSpec]:
        """Transfers [index * chunk_size, ...) of a phase of `transfers` in all."""
        start = index * self.chunk_size
        size = min(self.chunk_size, transfers - start)
        rng = random.Random(f"{self.seed}:{phase}:{index}")
        last = self.accounts - 1
        specs: list[TransferSpec] = []
        for _ in range(size):
            debit_account = rng.randint(0, last)
            # A distinct second account, uniformly among the others.
            credit_account = (debit_account + rng.randint(1, last)) % self.accounts
            specs.append(
                TransferSpec(
                    debit_account, credit_account, rng.randint(1, TRANSFER_AMOUNT_MINOR_MAX)
                )
            )
        return specs

    def transfers(self, phase: str, transfers: int) -> Iterator[TransferSpec]:
        for index in range(self.chunk_count(transfers)):
            yield from self.chunk(phase, index, transfers)

    def expected_balances(self, phases: dict[str, int]) -> list[int]:
        """Each user account's credits minus debits after the given phases."""
        balances = [FUNDING_MINOR] * self.accounts
        for phase, transfers in phases.items():
            for spec in self.transfers(phase, transfers):
                balances[spec.debit_account] -= spec.amount_minor
                balances[spec.credit_account] += spec.amount_minor
        return balances


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values; 0.0 when there are none."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]
