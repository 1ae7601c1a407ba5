"""A view with one row per process aggregate (a withdrawal, a closure).

Each such view makes a row from the aggregate's first event and moves it on
with each later one, as the aggregate's own handlers do. What differs per
view is the table, the columns and the two handlers; the rest is here once:
what the view remembers between pages (read back from its table when it does
not), and a page's write (the rows it replaces, deleted, and every touched
row copied in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from projections.events import LoggedEvent
from projections.view import Cursor, copy_rows


class Row(Protocol):
    def row(self) -> tuple[Any, ...]: ...


RowT = TypeVar("RowT", bound=Row)


@dataclass(frozen=True, slots=True)
class RowsPage:
    table: str
    key_column: str
    columns: tuple[str, ...]
    # Rows whose earlier versions this page replaces.
    replaced: list[UUID]
    rows: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        if self.replaced:
            cursor.execute(
                f"DELETE FROM {self.table} WHERE {self.key_column} = ANY(%s)",  # noqa: S608
                (self.replaced,),
            )
        copy_rows(cursor, self.table, self.columns, self.rows)


class AggregateRows(Generic[RowT]):
    """What a view of one row per aggregate remembers, and how it works out a page."""

    def __init__(
        self,
        *,
        table: str,
        columns: tuple[str, ...],
        first_topic: str,
        later_topics: frozenset[str],
        created: Callable[[LoggedEvent], RowT],
        apply: Callable[[RowT, LoggedEvent], None],
        from_columns: Callable[..., RowT],
        remembered_max: int,
    ) -> None:
        self._table = table
        self._columns = columns
        self._first_topic = first_topic
        self._later_topics = later_topics
        self._created = created
        self._apply = apply
        self._from_columns = from_columns
        self._remembered_max = remembered_max
        self._rows: dict[UUID, RowT] = {}
        self._complete = False

    def forget(self, *, starts_empty: bool) -> None:
        self._rows = {}
        self._complete = starts_empty

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> RowsPage:
        # A replay from empty (no cursor) keeps everything: it cannot read back.
        if cursor is not None and len(self._rows) > self._remembered_max:
            self.forget(starts_empty=False)
        self._remember(cursor, events)
        rows = self._rows
        created: set[UUID] = set()
        touched: dict[UUID, None] = {}
        for event in events:
            if event.topic == self._first_topic:
                rows[event.originator_id] = self._created(event)
                created.add(event.originator_id)
            elif event.topic in self._later_topics:
                row = rows.get(event.originator_id)
                if row is None:
                    raise LookupError(
                        f"{self._table}: aggregate {event.originator_id} has an event at "
                        f"position {event.position} before its first"
                    )
                self._apply(row, event)
            else:
                continue
            touched[event.originator_id] = None
        # Rows are copied out of memory now: memory moves on with the next page.
        return RowsPage(
            table=self._table,
            key_column=self._columns[0],
            columns=self._columns,
            replaced=[key for key in touched if key not in created],
            rows=[rows[key].row() for key in touched],
        )

    def _remember(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> None:
        """Read back the rows this page changes that memory lacks."""
        if self._complete:
            return
        if cursor is None:
            raise ValueError("only a view that replays from empty prepares without a cursor")
        missing = list(
            {
                event.originator_id: None
                for event in events
                if event.topic in self._later_topics and event.originator_id not in self._rows
            }
        )
        if not missing:
            return
        cursor.execute(
            f"SELECT {', '.join(self._columns)} FROM {self._table}"  # noqa: S608
            f" WHERE {self._columns[0]} = ANY(%s)",
            (missing,),
        )
        for found in cursor.fetchall():
            self._rows[found[0]] = self._from_columns(*found)
