"""What the runner asks of a view, and the small helpers views share.

A view owns its tables (made by its own DDL, so a rebuild can make them
afresh in another schema), works out a page of events in one call and
writes it in another, and says
how its rows are ordered for a canonical digest. Table and index names are
unqualified: the connection's search_path decides whether a view writes its
live tables or a shadow copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import psycopg

from projections.events import LoggedEvent

Cursor = psycopg.Cursor[Any]


class PageWrite(Protocol):
    """A page's rows, worked out; written in the runner's transaction."""

    def write(self, cursor: Cursor) -> None: ...


class View(Protocol):
    # Its name in `projection_tracking` and on the command line.
    name: str
    # Bumped when the tables or the handlers change meaning: a stored view of
    # another version is rebuilt from the log before it is read.
    version: int
    # Its tables, in the order they are created.
    tables: tuple[str, ...]

    def create_tables(self, cursor: Cursor) -> None:
        """CREATE TABLE IF NOT EXISTS for every table, with primary keys."""

    def create_indexes(self, cursor: Cursor) -> None:
        """Secondary indexes (IF NOT EXISTS); a rebuild makes them after loading."""

    def forget(self, *, starts_empty: bool) -> None:
        """Drop what the view remembers between pages. `starts_empty`: the
        tables are empty now, so anything not remembered does not exist."""

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> PageWrite:
        """Work out the rows for events in log order, moving what the view
        remembers on; the caller writes them and the position in one
        transaction. `cursor` reads back what memory lacks; None only for a
        view replaying from empty (it lacks nothing), which lets a replay work
        out one page while the last is still being written."""

    def digest_order(self, table: str) -> str:
        """The columns that order `table`'s rows for a canonical digest."""


def apply_page(view: View, cursor: Cursor, events: Sequence[LoggedEvent]) -> None:
    view.prepare(cursor, events).write(cursor)


def copy_rows(cursor: Cursor, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
    """COPY rows in; fastest way into PostgreSQL for more than a few rows."""
    if not rows:
        return
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
