"""A command-line argument the ledger stores is held to the API's text rules.

An operator's `--note` or `--label` lands in the same tables and events as a
client's strings, and a NUL in it would fail the same way: refused here,
before anything is opened or written, with the option named
(interface/text_rules.py).
"""

from __future__ import annotations

import typer

from interface.settings import Settings
from interface.text_rules import describe_fault, text_fault


def stored_text(
    context: typer.Context, parameter: typer.CallbackParam, value: str | None
) -> str | None:
    """A Typer callback for an option or argument whose value is stored; the
    refusal is a usage error, which names the option itself."""
    if value is None or context.resilient_parsing:
        return value
    fault = text_fault(value, Settings().string_length_max)
    if fault is not None:
        raise typer.BadParameter(describe_fault("the value", fault))
    return value
