"""Logging writes to stderr as it is when a line is written: a command run in
process by a test's CLI runner swaps stderr for a stream it closes after,
and lines logged later (by any test in the same worker) must still go out."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import structlog

from interface.observability.logging import configure_logging


def test_lines_logged_after_a_swapped_stderr_is_closed_still_go_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    swapped = io.StringIO()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    original, sys.stderr = sys.stderr, swapped
    try:
        # As a command run in process configures it (loggers not cached, so
        # the other tests' loggers are left as they were).
        configure_logging("INFO", cache_loggers=False)
    finally:
        sys.stderr = original
    swapped.close()
    try:
        structlog.get_logger("after").warning("written_after_the_swap")
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(root_level)

    assert "written_after_the_swap" in capsys.readouterr().err
