"""Until migration 0012 moves from migrations/pending/ into migrations/ (with
the audit verify reading chain version 2): apply it to a test's database."""

from __future__ import annotations

from pathlib import Path

import psycopg

STAGED = (
    Path(__file__).resolve().parents[2] / "migrations/pending/0012.chain-v2-and-checkpoints.sql"
)


def ensure_chain_v2(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        present = connection.execute("SELECT to_regclass('ledger_chain_schemes')").fetchone()
        if present is not None and present[0] is not None:
            return
        connection.execute(STAGED.read_text().replace("-- depends", "--"))
