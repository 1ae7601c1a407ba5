"""Command-line options of a benchmark, into its config dataclass."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

Config = TypeVar("Config")


def config_from(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    integer_fields: Sequence[str],
    default: Callable[[], Config],
    quick: Callable[[], Config],
    helps: Mapping[str, str] | None = None,
) -> tuple[Config, bool]:
    """Add the options every benchmark has (its integer fields, --data-dir,
    --database-url, --quick, --json) to `parser`, parse `argv`, and return
    the config with what was given and whether to print JSON. `helps`: an
    integer field's help text, by field name."""
    for name in integer_fields:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=(helps or {}).get(name),
        )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke run")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    arguments: dict[str, Any] = vars(parser.parse_args(argv))
    is_quick, as_json = arguments.pop("quick"), arguments.pop("json")
    # Only what was given: None is an option left out, False a flag not set.
    # `is`, not `in (None, False)`: 0 == False, so a given 0 (`--smaller-size
    # 0`, `--seed 0`) would be taken for a flag not set and dropped.
    overrides = {
        name: value for name, value in arguments.items() if value is not None and value is not False
    }
    base = quick() if is_quick else default()
    return replace(base, **overrides), bool(as_json)  # type: ignore[type-var]
