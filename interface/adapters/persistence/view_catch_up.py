"""Reading a view after this process's own writes.

A read that must see what this process just wrote first brings the view up
to the writer's last position: it waits for the projection thread when one
runs here, or catches the views up on this thread when none does (a CLI
command). Another process's writes may still be a moment behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.ports.writer import Writer
from projections.runner import ProjectionRunner


def catch_up_to_own_writes(
    runner: ProjectionRunner | None, writer: Writer, names: Sequence[str], wait_s: float
) -> None:
    """Bring the named views up to this process's last write; past `wait_s`
    the read goes ahead on what the views hold."""
    if runner is None:
        return
    if runner.is_running:
        runner.wait_for(writer.last_position, names, wait_s)
    else:
        runner.catch_up()
