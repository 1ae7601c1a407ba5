"""`ledger projections`: run the views, rebuild them, show where they are."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from interface.cli.context import migrated_database_url
from interface.cli.output import JsonOption, print_json
from interface.cli.progress import progress_bars

if TYPE_CHECKING:
    from projections.view import View
    from projections.view_health import ViewState

projections_app = typer.Typer(help="Views built from the log.", no_args_is_help=True)


def _log_head(database_url: str) -> int:
    from projections.runner import log_head

    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        return log_head(cursor)


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
        typer.Option(
            "--shadow/--in-place",
            help="--shadow (the default): build aside while the live views serve, then "
            "swap them in at once. --in-place: empty the live views and replay into "
            "them; refused while a service, a projection runner or another rebuild "
            "uses the database",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Replay views from the log (exit 1 if one stops on an event it cannot apply).

    By default the views are replayed into shadow tables (schema
    ledger_shadow) while the live ones keep serving, then swapped in, all in
    one transaction: readers never see a view empty or partial.

    --in-place empties the live views and replays into them: a little faster
    and needs no room for a second copy, but readers see accounts missing
    and lists cut short until it ends. So it is refused while anything else
    uses the views on this database, as PostgreSQL's pg_stat_activity lists
    them by application_name: a running service ("ledger service", its
    connection pool), a projection runner ("ledger projection runner", in
    `ledger serve` or `ledger projections run`) or another rebuild ("ledger
    projections rebuild"). Stop them first; a process that died takes its
    sessions with it.
    """
    from projections.rebuild import rebuild_all_in_place, rebuild_all_with_shadow
    from projections.registry import all_views, view_named

    database_url = migrated_database_url()
    try:
        views = [view_named(name)] if name else all_views()
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
    head = max(_log_head(database_url), 1)
    label = "all views" if len(views) > 1 else views[0].name
    if shadow:
        with progress_bars("events", as_json=as_json) as bars:
            advance = bars.phase(f"{label} (shadow)", head)
            positions = rebuild_all_with_shadow(
                database_url, views, progress=lambda reached: advance(min(reached, head), head)
            )
            bars.finish(f"{label} (shadow)")
    else:
        with _alone_on_the_views(database_url), progress_bars("events", as_json=as_json) as bars:
            advance = bars.phase(label, head)
            positions = rebuild_all_in_place(
                database_url, views, progress=lambda reached: advance(min(reached, head), head)
            )
            bars.finish(label)
    if as_json:
        print_json({"rebuilt": positions, "shadow": shadow})
    else:
        for view_name, position in positions.items():
            typer.echo(f"{view_name}: rebuilt to position {position}")
    _exit_if_failed(database_url, [view.name for view in views])


@contextmanager
def _alone_on_the_views(database_url: str) -> Iterator[None]:
    """Refuse (exit 1) while another session uses the views; then hold a
    session named as a rebuild's until done, so others see this one."""
    from projections.rebuild import REBUILD_APPLICATION_NAME
    from projections.view_sessions import other_view_sessions

    others = other_view_sessions(database_url)
    if others:
        typer.echo(
            "projections: refusing to rebuild in place while the views are in use "
            "(readers would see them empty); stop these first, or rebuild without "
            "--in-place:\n" + "\n".join(f"  {session}" for session in others),
            err=True,
        )
        raise typer.Exit(1)
    with psycopg.connect(database_url, application_name=REBUILD_APPLICATION_NAME):
        yield


def _exit_if_failed(database_url: str, names: Sequence[str]) -> None:
    from projections.view_health import failed_views

    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        failures = failed_views(cursor, names)
    for view_name, failure in sorted(failures.items()):
        typer.echo(
            f"{view_name}: stopped at the event at position {failure.position}: {failure.reason}",
            err=True,
        )
    if failures:
        raise typer.Exit(1)


@projections_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Each view's position, its lag behind the log, and whether it has
    stopped on an event it cannot apply (exit 1 if one has)."""
    from projections.registry import all_views
    from projections.view_health import view_states

    database_url = migrated_database_url()
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        head = _log_head(database_url)
        views = all_views()
        states = view_states(cursor, [view.name for view in views])
    failed = sorted(name for name, state in states.items() if state.failure is not None)
    if as_json:
        print_json(_status_json(views, states, head, failed))
    else:
        _print_status(views, states, head)
    if failed:
        raise typer.Exit(1)


def _status_json(
    views: Sequence[View], states: Mapping[str, ViewState], head: int, failed: Sequence[str]
) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for view in views:
        state = states[view.name]
        failure = state.failure
        described[view.name] = {
            "position": state.position,
            "lag_events": state.lag_events,
            "lag_s": round(state.lag_s, 3),
            "version": state.version,
            "code_version": view.version,
            "updated_at": None if state.updated_at is None else state.updated_at.isoformat(),
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
        state = states[view.name]
        if state.updated_at is None:
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
