"""A table's fingerprint, worked out inside PostgreSQL: what the audit's and
the reconciliation's view comparisons compare (docs/performance.md#projections-and-audit).

The md5 of each row's text form, its two 64-bit halves each summed over
the table, and the number of rows: a sum, so the order rows are read in
does not matter (no sort, no index walk) and no row leaves the server,
which reads the table once with its own C code. Two copies of a table
have the same fingerprint when they hold the same rows, as often as each
other; a difference goes unseen only if the sums of 128-bit hashes of the
differing rows cancel out. The canonical, ordered sha256 digest
(`projections.digest`) remains for the benchmark's comparisons and lists.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

_FINGERPRINT: Final = (
    "SELECT count(*),"
    " coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),"
    " coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)"
    " FROM (SELECT md5(t::text) AS h FROM {} AS t) AS hashed"
)


def table_fingerprint(connection: psycopg.Connection[Any], schema: str, table: str) -> str:
    """ "<rows>:<sum of first halves>:<sum of second halves>" of the table."""
    row = connection.execute(sql.SQL(_FINGERPRINT).format(sql.Identifier(schema, table))).fetchone()
    assert row is not None
    return f"{row[0]}:{row[1]}:{row[2]}"
