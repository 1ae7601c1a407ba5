"""A canonical digest of a view's tables, and the rows where two copies differ.

The digest is sha256 over every row's text form in the view's own order:
two copies of a view are equal exactly when their digests are (the same
rows, the same values). Rows are streamed from a server-side cursor, so a
table of any size is hashed in constant memory.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import psycopg
from psycopg import sql

from projections.view import View

# Rows fetched per round trip while hashing.
DIGEST_FETCH_ROWS: Final[int] = 10_000
DIFFERING_ROWS_MAX: Final[int] = 20


def table_digest(connection: psycopg.Connection[Any], schema: str, table: str, order: str) -> str:
    """Hash of the table's rows; call inside a transaction (server-side cursor)."""
    digest = hashlib.sha256()
    query = sql.SQL("SELECT t::text FROM {}.{} AS t ORDER BY {}").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(order)
    )
    with connection.cursor(name=f"digest_{table}") as cursor:
        cursor.itersize = DIGEST_FETCH_ROWS
        cursor.execute(query)
        for (text,) in cursor:
            digest.update(text.encode())
            digest.update(b"\n")
    return digest.hexdigest()


def view_digest(connection: psycopg.Connection[Any], view: View, schema: str) -> dict[str, str]:
    return {
        table: table_digest(connection, schema, table, view.digest_order(table))
        for table in view.tables
    }


def differing_rows(
    connection: psycopg.Connection[Any],
    table: str,
    expected_schema: str,
    actual_schema: str,
    limit: int = DIFFERING_ROWS_MAX,
) -> tuple[list[str], list[str]]:
    """(rows only in the expected copy, rows only in the actual copy), as text."""
    found: list[list[str]] = []
    for first, second in ((expected_schema, actual_schema), (actual_schema, expected_schema)):
        query = sql.SQL(
            "SELECT * FROM (SELECT t::text FROM {}.{} AS t EXCEPT ALL"
            " SELECT t::text FROM {}.{} AS t) AS d LIMIT {}"
        ).format(
            sql.Identifier(first),
            sql.Identifier(table),
            sql.Identifier(second),
            sql.Identifier(table),
            sql.Literal(limit),
        )
        with connection.cursor() as cursor:
            cursor.execute(query)
            found.append([row[0] for row in cursor.fetchall()])
    return found[0], found[1]
