"""`ledger bench --only audit`: the writer with checkpoint signing on and off,
and `audit verify` against the checkpoints in events/s.

Each phase is a ledger on a fresh database (chain v2, migration 0012), the
projections running in process as `ledger serve` runs them: "off" (no
checkpointer) and "on" (the checkpointer signing every second or 10,000
events, as by default). Each opens and funds the same accounts, then writes
the same transfers from client threads (benchmarks/writer_phases.py); the
phases alternate (off, on, off, on) so a machine's drift falls on both, and
"on"'s median transfers/s is reported as a ratio to "off"'s.

After the last "on" phase its log is checkpointed to the head and checked
against the checkpoints with the public key alone (the log pass of `ledger
audit verify`, without views), in events/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks import databases
from benchmarks.workload import Workload
from benchmarks.writer_phases import open_and_fund_accounts, run_phase
from interface.audit.checkpoint_sources import verify_database_checkpoints
from interface.audit_setup import audit_public_keys, build_checkpointer, checkpoint_dir
from interface.bootstrap import build_ledger
from interface.settings import Settings

ACCOUNTS_DEFAULT: Final[int] = 1_000
TRANSFERS_DEFAULT: Final[int] = 40_000
CLIENT_THREADS: Final[int] = 8
CHUNK_SIZE: Final[int] = 100
ROUNDS_DEFAULT: Final[int] = 2
MINIMUM_RATIO: Final[float] = 0.98
MINIMUM_VERIFY_EVENTS_PER_S: Final[float] = 150_000.0


@dataclass(frozen=True, slots=True)
class AuditBenchmarkConfig:
    accounts: int = ACCOUNTS_DEFAULT
    transfers: int = TRANSFERS_DEFAULT
    rounds: int = ROUNDS_DEFAULT
    database_url: str | None = None


def _phase(
    server_url: str, config: AuditBenchmarkConfig, *, on: bool, verify: bool
) -> dict[str, Any]:
    with (
        databases.temporary_database(server_url, "bench_audit") as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        settings = Settings(database_url=url, data_dir=Path(scratch))
        ledger = build_ledger(settings, start_checkpointer=on)
        try:
            workload = Workload(accounts=config.accounts, seed=24, chunk_size=CHUNK_SIZE)
            account_ids = open_and_fund_accounts(ledger.local_writer, workload)
            result = run_phase(
                ledger.local_writer,
                workload,
                account_ids,
                "on" if on else "off",
                config.transfers,
                CLIENT_THREADS,
            )
        finally:
            ledger.close()
        figures: dict[str, Any] = {"name": "on" if on else "off"}
        figures["transfers_per_s"] = round(result.transfers_per_s, 1)
        if verify:
            checkpointer = build_checkpointer(settings, url)
            while checkpointer.run_once():
                pass
            report, elapsed_s = verify_database_checkpoints(
                url, audit_public_keys(settings), checkpoint_dir(settings)
            )
            figures["verify_ok"] = report.ok
            figures["verify_events"] = report.events_checked
            figures["verify_checkpoints"] = report.checkpoints_verified
            figures["verify_events_per_s"] = round(report.events_checked / elapsed_s, 1)
        return figures


def run(config: AuditBenchmarkConfig) -> dict[str, Any]:
    server_url = databases.server_url(config.database_url)
    phases: list[dict[str, Any]] = []
    for round_index in range(config.rounds):
        last = round_index == config.rounds - 1
        phases.append(_phase(server_url, config, on=False, verify=False))
        phases.append(_phase(server_url, config, on=True, verify=last))
    off = statistics.median(phase["transfers_per_s"] for phase in phases if phase["name"] == "off")
    on = statistics.median(phase["transfers_per_s"] for phase in phases if phase["name"] == "on")
    verified = phases[-1]
    return {
        "accounts": config.accounts,
        "transfers_per_phase": config.transfers,
        "phases": phases,
        "writer_transfers_per_s_off": round(off, 1),
        "writer_transfers_per_s_on": round(on, 1),
        "ratio_on_to_off": round(on / off, 3) if off else 0.0,
        "audit_verify_events_per_s": verified["verify_events_per_s"],
        "audit_verify_ok": verified["verify_ok"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger bench --only audit")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS_DEFAULT)
    parser.add_argument("--transfers", type=int, default=TRANSFERS_DEFAULT)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--quick", action="store_true", help="5,000 transfers, one round")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args(argv)
    config = AuditBenchmarkConfig(
        accounts=arguments.accounts,
        transfers=5_000 if arguments.quick else arguments.transfers,
        rounds=1 if arguments.quick else arguments.rounds,
        database_url=arguments.database_url,
    )
    report = run(config)
    if arguments.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for key, value in report.items():
            if key != "phases":
                sys.stdout.write(f"{key}: {value}\n")
        for phase in report["phases"]:
            sys.stdout.write(f"  {phase}\n")
    passed = (
        report["audit_verify_ok"]
        and report["ratio_on_to_off"] >= MINIMUM_RATIO
        and report["audit_verify_events_per_s"] >= MINIMUM_VERIFY_EVENTS_PER_S
    )
    return 0 if passed else 1
