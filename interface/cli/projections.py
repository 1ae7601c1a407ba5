"""`ledger projections`: run the views, rebuild them, show where they are."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table

from interface.cli.context import migrated_database_url

if TYPE_CHECKING:
    from projections.view import View
    from projections.view_health import ViewState

projections_app = typer.Typer(help="Views built from the log.", no_args_is_help=True)


def _log_head(database_url: str) -> int:
    from projections.runner import log_head

    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        return log_head(cursor)


@contextmanager
def _progress_bar(description: str, total: int) -> Iterator[Progress]:
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        progress.add_task(description, total=max(total, 1))
        yield progress


@projections_app.command("run")
def run() -> None:
    """Keep every view up with the log until stopped (Ctrl-C or SIGTERM).
    Several runners may run at once; they take turns per view."""
    from projections.registry import all_views
    from projections.runner import ProjectionRunner

    database_url = migrated_database_url()
    runner = ProjectionRunner(database_url, all_views())
    signal.signal(signal.SIGTERM, lambda *_: runner.stop(timeout_s=0))
    typer.echo("projections: running (Ctrl-C to stop)")
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop(timeout_s=0)
    typer.echo(f"projections: stopped at {runner.positions()}")


@projections_app.command("rebuild")
def rebuild(
    name: Annotated[str | None, typer.Argument(help="One view; all of them if omitted")] = None,
    shadow: Annotated[
        bool,
        typer.Option(help="Build a shadow copy and swap it in; the live view keeps serving"),
    ] = False,
) -> None:
    """Empty a view and replay the log into it (or build it aside with --shadow)."""
    from projections.rebuild import rebuild_all_in_place, rebuild_in_place, rebuild_with_shadow
    from projections.registry import all_views, view_named

    database_url = migrated_database_url()
    try:
        views = [view_named(name)] if name else all_views()
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
    if not shadow and len(views) > 1:
        # Every view at once, each replayed in a process of its own.
        head = _log_head(database_url)
        with _progress_bar("all views", head) as progress:
            task = progress.task_ids[0]
            positions = rebuild_all_in_place(
                database_url,
                views,
                progress=lambda reached: progress.update(task, completed=reached),
            )
            progress.update(task, completed=max(head, *positions.values()))
        for view_name, position in positions.items():
            typer.echo(f"{view_name}: rebuilt to position {position}")
        return
    rebuild_view = rebuild_with_shadow if shadow else rebuild_in_place
    for view in views:
        head = _log_head(database_url)
        with _progress_bar(f"{view.name}{' (shadow)' if shadow else ''}", head) as progress:
            task = progress.task_ids[0]

            def show(reached: int, progress: Progress = progress, task: TaskID = task) -> None:
                progress.update(task, completed=reached)

            position = rebuild_view(database_url, view, progress=show)
            progress.update(task, completed=max(position, head))
        typer.echo(f"{view.name}: rebuilt to position {position}")


@projections_app.command("status")
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout, for scripts")
    ] = False,
) -> None:
    """Each view's position, its lag behind the log, and whether it has
    stopped on an event it cannot apply (exit 1 if one has)."""
    from projections.registry import all_views
    from projections.view_health import view_states

    database_url = migrated_database_url()
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        head = _log_head(database_url)
        states = view_states(cursor)
    views = all_views()
    failed = sorted(name for name, state in states.items() if state.failure is not None)
    if as_json:
        typer.echo(json.dumps(_status_json(views, states, head, failed)))
    else:
        _print_status(views, states, head)
    if failed:
        raise typer.Exit(1)


def _status_json(
    views: Sequence[View], states: Mapping[str, ViewState], head: int, failed: Sequence[str]
) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for view in views:
        state = states.get(view.name)
        if state is None:
            described[view.name] = {"position": None, "lag_events": head, "failed": None}
            continue
        failure = state.failure
        described[view.name] = {
            "position": state.position,
            "lag_events": state.lag_events,
            "lag_s": round(state.lag_s, 3),
            "version": state.version,
            "code_version": view.version,
            "updated_at": state.updated_at.isoformat(),
            "failed": None
            if failure is None
            else {
                "position": failure.position,
                "reason": failure.reason,
                "failed_at": failure.failed_at.isoformat(),
            },
        }
    return {"log_position": head, "failed": list(failed), "views": described}


def _print_status(views: Sequence[View], states: Mapping[str, ViewState], head: int) -> None:
    table = Table("view", "position", "lag (events)", "version", "updated", "failed")
    for view in views:
        state = states.get(view.name)
        if state is None:
            table.add_row(view.name, "-", str(head), str(view.version), "never run", "")
            continue
        stale = "" if state.version == view.version else f" (code: {view.version}; rebuilds)"
        failure = state.failure
        table.add_row(
            view.name,
            str(state.position),
            str(state.lag_events),
            f"{state.version}{stale}",
            f"{state.updated_at:%Y-%m-%d %H:%M:%S}",
            ""
            if failure is None
            else f"at position {failure.position} since {failure.failed_at:%Y-%m-%d %H:%M:%S}: "
            f"{failure.reason}",
        )
    Console().print(table)
    typer.echo(f"log position: {head}")
