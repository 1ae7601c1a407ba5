"""Every PostgreSQL advisory lock key the service takes, in one place.

An advisory lock key is one number per database shared by every process, so
two jobs given the same key would silently keep each other out. Each key is
named here with what it guards; tests/unit/test_advisory_locks.py checks that
no two are equal. All are session locks, released when their connection closes.
"""

from __future__ import annotations

from typing import Final

# The projections import nothing of the interface, so the shadow rebuild's key
# is defined beside it and listed here with the others.
from projections.rebuild import SHADOW_LOCK_KEY

# Schema upgrades: one process migrates while the others wait ("ledger").
MIGRATION_LOCK_KEY: Final[int] = 0x6C65_6467_6572

# Leases of the background workers: one process runs each pass at a time
# (interface/workers/leased_worker.py); the others skip it.
# The payout worker's passes over approved withdrawals ("payouts").
PAYOUT_WORKER_LOCK_KEY: Final[int] = 0x7061796F757473
# The closure worker's passes over due closures ("closure").
CLOSURE_WORKER_LOCK_KEY: Final[int] = 0x636C6F73757265
# The guard worker's broker syncs and guard passes ("guards").
GUARD_WORKER_LOCK_KEY: Final[int] = 0x677561726473
# The rules monitor's passes over accounts to mark and enforce ("rules").
RULES_MONITOR_LOCK_KEY: Final[int] = 0x72756C6573
# The fork scanner's passes over accounts over their threshold ("forks").
FORK_SCANNER_LOCK_KEY: Final[int] = 0x666F726B73
# The reconciliation schedule: one process starts each scheduled run ("reconc").
RECONCILIATION_SCHEDULE_LOCK_KEY: Final[int] = 0x7265636F6E63
# The webhook worker's fan-out and deliveries ("webhook").
WEBHOOK_WORKER_LOCK_KEY: Final[int] = 0x776562686F6F6B
# The stream publisher's copies to Redis ("streams").
STREAM_PUBLISHER_LOCK_KEY: Final[int] = 0x73747265616D73
# The Kafka publisher's copies, apart from the Redis one's ("kafka").
KAFKA_PUBLISHER_LOCK_KEY: Final[int] = 0x6B61666B61
# The checkpointer's signed checkpoints of the log ("chkpt").
CHECKPOINTER_LOCK_KEY: Final[int] = 0x63686B7074
# The writer lease: one `ledger writer` process per database ("writer").
WRITER_LEASE_LOCK_KEY: Final[int] = 0x777269746572

# Scratch schemas, one per database: one user at a time.
# SHADOW_LOCK_KEY (imported above): the shadow schema views are rebuilt into,
# by `ledger projections rebuild` and by the projections check's correction.
# The audit verify's schemas (the fresh replay, the live copy).
AUDIT_VERIFY_LOCK_KEY: Final[int] = 0x1ED9E7A0D17

__all__ = [
    "AUDIT_VERIFY_LOCK_KEY",
    "CHECKPOINTER_LOCK_KEY",
    "CLOSURE_WORKER_LOCK_KEY",
    "FORK_SCANNER_LOCK_KEY",
    "GUARD_WORKER_LOCK_KEY",
    "KAFKA_PUBLISHER_LOCK_KEY",
    "MIGRATION_LOCK_KEY",
    "PAYOUT_WORKER_LOCK_KEY",
    "RECONCILIATION_SCHEDULE_LOCK_KEY",
    "RULES_MONITOR_LOCK_KEY",
    "SHADOW_LOCK_KEY",
    "STREAM_PUBLISHER_LOCK_KEY",
    "WEBHOOK_WORKER_LOCK_KEY",
    "WRITER_LEASE_LOCK_KEY",
]
