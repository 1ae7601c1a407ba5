"""One way for every `ledger` command to print what it found: text for a
person by default, JSON on stdout with `--json` for scripts.

A single result is one JSON document; a list is JSON Lines, one object per
line (as `audit export` streams events), so a script reads either with
`json.loads` per document or per line. Messages about the work itself
(progress, warnings) go to stderr, so stdout stays parseable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (JSON Lines for lists), for scripts")
]


def _plain(value: Any) -> Any:
    """Values JSON has no type for, as their usual text."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_text(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, default=_plain)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json_text(value))


def print_json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    """A list as JSON Lines on stdout: one compact object per line."""
    for row in rows:
        typer.echo(json_text(row, indent=None))


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """A list as a table for a person; `None` shows as "-"."""
    table = Table(*columns)
    for row in rows:
        table.add_row(*("-" if row.get(name) is None else str(row[name]) for name in columns))
    Console().print(table)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    """A list: JSON Lines with `--json`, else a table of `columns` (every key
    stays in the JSON; the table shows those a person scans)."""
    if as_json:
        print_json_lines(rows)
    else:
        print_table(rows, columns)


def print_mapping(value: Mapping[str, Any], *, as_json: bool) -> None:
    """A single result: a JSON object with `--json`, else `key: value` lines."""
    if as_json:
        print_json(value)
        return
    for key, item in value.items():
        shown = json_text(item, indent=None) if isinstance(item, (dict, list)) else item
        typer.echo(f"{key}: {'-' if shown is None else shown}")
