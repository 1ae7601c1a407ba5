"""What one HTTP request costs in this process, in microseconds, without a network.

Each case is an ASGI app called directly by a small driver (a fresh scope,
a `receive` that hands over the body, a `send` that keeps the status), many
times in a row on one event loop, so what is measured is the framework's and
the service's own work per request: no socket, no HTTP parser, no server.

The cases (see `_cases`):
- the floor: a bare FastAPI app with one `async` route returning a constant
  (benchmarks/http_floor.py), the yardstick of issue 22;
- the floor with one of the service's middlewares added (each alone), with
  the `check_request` dependency, and with each way of writing a JSON body
  (the framework's own, `ORJSONResponse`, a typed model);
- the whole service: `GET /healthz`, and `GET /v1/accounts/{id}` with a
  service key on a real database (the embedded PostgreSQL of the other
  benchmarks, or LEDGER_BENCH_DATABASE_URL).

    .venv/bin/python -m benchmarks.http_request_cost [--requests N] [--only NAME] [--cprofile]

`--only NAME` keeps the cases whose name holds NAME; `--cprofile` prints their
top frames under cProfile (cumulative, then own time) instead of timings.
For a sampling profile, run the timed cases under py-spy (a tool, not a
dependency): `py-spy record -o profile.txt -f raw -- .venv/bin/python -m
benchmarks.http_request_cost --only healthz --requests 20000`. Figures from a
shared machine are noisy: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import Depends, FastAPI
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message

from benchmarks import databases
from benchmarks.http_floor import FLOOR_BODY, create_floor_app

# Requests per timed round, and rounds per case (every case in turn, round
# by round): the figure is the median round's, so one round disturbed by
# another process does not decide it.
REQUESTS_DEFAULT: Final[int] = 1_000
ROUNDS: Final[int] = 7
WARM_UP_REQUESTS: Final[int] = 300
PROFILE_TOP: Final[int] = 25
# The service's limiter must not refuse the benchmark's own requests.
RATE_LIMIT_PER_S: Final[float] = 1_000_000.0
RATE_LIMIT_BURST: Final[int] = 10_000_000
FLOOR_PATH: Final[str] = "/"
PROBE_PATH: Final[str] = "/v1/probe"
FLOOR_CASE: Final[str] = "floor (bare FastAPI, async route)"


@dataclass(frozen=True)
class RequestShape:
    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


class AsgiDriver:
    """Calls an ASGI app as a server would for one HTTP/1.1 request."""

    def __init__(self, app: ASGIApp, shape: RequestShape) -> None:
        self.app = app
        self.shape = shape
        self.status = 0

    async def once(self) -> int:
        shape = self.shape
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": shape.method,
            "scheme": "http",
            "path": shape.path,
            "raw_path": shape.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), *shape.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": shape.body, "more_body": False}
            # Nothing more: the client waits for the answer.
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]

        await self.app(scope, receive, send)
        return self.status


@dataclass(frozen=True)
class Round:
    """One round's cost per request: wall time, and the CPU time of this
    process (every thread: the thread pool's work counts, other processes'
    do not), the steadier figure on a shared machine."""

    wall_us: float
    cpu_us: float


async def _warm_up(driver: AsgiDriver, expected_status: int) -> None:
    for _ in range(WARM_UP_REQUESTS):
        await driver.once()
    if driver.status != expected_status:
        raise RuntimeError(
            f"{driver.shape.method} {driver.shape.path} answered {driver.status}, "
            f"not {expected_status}"
        )


async def _round(driver: AsgiDriver, requests: int) -> Round:
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        await driver.once()
    return Round(
        (time.perf_counter() - wall_started) / requests * 1e6,
        (time.process_time() - cpu_started) / requests * 1e6,
    )


# The apps ----------------------------------------------------------------------------


class _ModelBody(BaseModel):
    """A small typed body, as most routes answer (a response model)."""

    status: str


def _floor_with(
    *,
    middleware: Callable[[FastAPI], None] | None = None,
    dependencies: Sequence[Any] = (),
    path: str = FLOOR_PATH,
    state: dict[str, Any] | None = None,
) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, dependencies=list(dependencies))

    @app.get(path)
    async def constant() -> dict[str, str]:
        return FLOOR_BODY

    if middleware is not None:
        middleware(app)
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    return app


def _floor_answering(kind: str) -> FastAPI:
    """The floor's route with one way of writing its JSON body."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if kind == "untyped":

        @app.get(FLOOR_PATH)
        async def untyped():  # type: ignore[no-untyped-def]
            return FLOOR_BODY

    elif kind == "orjson":
        with warnings.catch_warnings():
            # Deprecated by FastAPI in favour of its typed path: measured anyway.
            warnings.simplefilter("ignore", DeprecationWarning)

            @app.get(FLOOR_PATH, response_class=ORJSONResponse)
            async def with_orjson() -> dict[str, str]:
                return FLOOR_BODY

    elif kind == "model":

        @app.get(FLOOR_PATH)
        async def model() -> _ModelBody:
            return _ModelBody(status="ok")

    elif kind == "sync":

        @app.get(FLOOR_PATH)
        def plain_def() -> dict[str, str]:
            return FLOOR_BODY

    else:
        raise ValueError(kind)
    return app


@dataclass(frozen=True)
class Case:
    name: str
    app: ASGIApp
    shape: RequestShape
    expected_status: int = 200


def _floor_cases(ledger: Any, rate_limiter: Any, api_key: str) -> list[Case]:
    from interface.api.middleware.authentication import AuthenticationMiddleware
    from interface.api.middleware.body_size_limit import BodySizeLimitMiddleware
    from interface.api.middleware.database_faults import DatabaseFaultMiddleware
    from interface.api.middleware.idempotency import install_idempotency
    from interface.api.middleware.rate_limiting import RATE_LIMITER_STATE_KEY, RateLimitMiddleware
    from interface.api.middleware.request_context import RequestContextMiddleware
    from interface.api.request_checks import check_request
    from interface.observability.metrics import HttpMetrics

    floor = RequestShape("GET", FLOOR_PATH)
    keyed = RequestShape("GET", PROBE_PATH, ((b"authorization", f"Bearer {api_key}".encode()),))
    state = {"ledger": ledger, RATE_LIMITER_STATE_KEY: rate_limiter}

    def adding(middleware_class: Any, **options: Any) -> Callable[[FastAPI], None]:
        return lambda app: app.add_middleware(middleware_class, **options)

    return [
        Case(FLOOR_CASE, create_floor_app(), floor),
        Case("floor, untyped route", _floor_answering("untyped"), floor),
        Case("floor, plain def route", _floor_answering("sync"), floor),
        Case("floor, ORJSONResponse", _floor_answering("orjson"), floor),
        Case("floor, pydantic model", _floor_answering("model"), floor),
        Case(
            "floor + request_context",
            _floor_with(
                middleware=adding(RequestContextMiddleware, metrics=HttpMetrics()), state=state
            ),
            floor,
        ),
        Case(
            "floor + database_faults",
            _floor_with(middleware=adding(DatabaseFaultMiddleware), state=state),
            floor,
        ),
        Case(
            "floor + rate_limiting (keyed)",
            _floor_with(middleware=adding(RateLimitMiddleware), path=PROBE_PATH, state=state),
            keyed,
        ),
        Case(
            "floor + authentication (keyed)",
            _floor_with(middleware=adding(AuthenticationMiddleware), path=PROBE_PATH, state=state),
            keyed,
        ),
        Case(
            "floor + body_size_limit",
            _floor_with(middleware=adding(BodySizeLimitMiddleware), state=state),
            floor,
        ),
        Case(
            "floor + idempotency (GET)",
            _floor_with(middleware=install_idempotency, state=state),
            floor,
        ),
        Case(
            "floor + check_request",
            _floor_with(dependencies=[Depends(check_request)], state=state),
            floor,
        ),
    ]


def _service_cases(app: FastAPI, api_key: str, account_id: str) -> list[Case]:
    keyed = ((b"authorization", f"Bearer {api_key}".encode()),)
    return [
        Case("service GET /healthz", app, RequestShape("GET", "/healthz")),
        Case(
            "service GET /v1/accounts/{id}",
            app,
            RequestShape("GET", f"/v1/accounts/{account_id}", keyed),
        ),
    ]


# The service -------------------------------------------------------------------------


@contextmanager
def _database(data_dir: Path | None) -> Iterator[str]:
    with databases.temporary_database(
        databases.server_url(data_dir=data_dir), "bench_request_cost"
    ) as url:
        yield url


def _settings(database_url: str, data_dir: Path | None) -> Any:
    from interface.settings import Settings

    return Settings(
        database_url=database_url,
        data_dir=databases.ledger_data_dir(database_url, data_dir),
        rate_limit_per_s=RATE_LIMIT_PER_S,
        rate_limit_burst=RATE_LIMIT_BURST,
    )


def _quiet_logging() -> None:
    """The server's logging (JSON lines, INFO), written where nobody reads:
    rendering each line is part of a request's cost, the terminal is not."""
    from interface.observability.logging import configure_logging

    configure_logging("INFO", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115


@asynccontextmanager
async def _running_service(settings: Any) -> AsyncIterator[tuple[FastAPI, Any, str, str]]:
    """The app on a ledger with one opened account and a service key, once
    the views show the account."""
    from benchmarks.workload import Workload
    from benchmarks.writer_phases import open_and_fund_accounts
    from interface.adapters.persistence.api_keys import Role
    from interface.api.app import create_app
    from interface.bootstrap import build_ledger

    ledger = build_ledger(settings)
    async with AsyncExitStack() as stack:
        stack.callback(ledger.close)
        account_ids = open_and_fund_accounts(ledger.local_writer, Workload(2, 1, 10))
        _, api_key = ledger.api_keys.create(Role.SERVICE, label="request cost benchmark")
        app = create_app(ledger=ledger)
        await stack.enter_async_context(app.router.lifespan_context(app))
        account_id = str(account_ids[0])
        driver = AsgiDriver(
            app,
            RequestShape(
                "GET",
                f"/v1/accounts/{account_id}",
                ((b"authorization", f"Bearer {api_key}".encode()),),
            ),
        )
        while await driver.once() != 200:
            await asyncio.sleep(0.05)
        if ledger.projections is not None:
            # The views have what the reads need; their polling would only
            # add its CPU time to every case's.
            ledger.projections.stop()
        yield app, ledger, api_key, account_id


# Running -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A case's median round, in microseconds per request."""

    name: str
    cpu_us: float
    wall_us: float


async def _measure(cases: Sequence[Case], requests: int) -> list[Figure]:
    """Round by round, every case in turn: a busy spell of the machine
    lands on every case alike, not on whichever ran then."""
    drivers = [AsgiDriver(case.app, case.shape) for case in cases]
    for case, driver in zip(cases, drivers, strict=True):
        await _warm_up(driver, case.expected_status)
    rounds: list[list[Round]] = [[] for _ in cases]
    for _ in range(ROUNDS):
        for driver, case_rounds in zip(drivers, rounds, strict=True):
            case_rounds.append(await _round(driver, requests))
    return [
        Figure(
            case.name,
            statistics.median(one.cpu_us for one in case_rounds),
            statistics.median(one.wall_us for one in case_rounds),
        )
        for case, case_rounds in zip(cases, rounds, strict=True)
    ]


async def _profile(case: Case, requests: int) -> str:
    driver = AsgiDriver(case.app, case.shape)
    await _warm_up(driver, case.expected_status)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await driver.once()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    return text.getvalue()


async def _run(arguments: argparse.Namespace) -> int:
    _quiet_logging()
    with _database(arguments.data_dir) as database_url:
        settings = _settings(database_url, arguments.data_dir)
        async with _running_service(settings) as (app, ledger, api_key, account_id):
            rate_limiter = app.state.rate_limiter
            cases = [
                *_floor_cases(ledger, rate_limiter, api_key),
                *_service_cases(app, api_key, account_id),
            ]
            if arguments.only is not None:
                cases = [case for case in cases if arguments.only in case.name]
                if not cases:
                    print(f"no case is named like {arguments.only!r}")
                    return 2
            if arguments.cprofile:
                for case in cases:
                    print(f"== {case.name}\n{await _profile(case, arguments.requests)}")
                return 0
            load_before = os.getloadavg()[0]
            figures = await _measure(cases, arguments.requests)
            load_after = os.getloadavg()[0]
    floor = next((one.cpu_us for one in figures if one.name == FLOOR_CASE), figures[0].cpu_us)
    print(f"{'case':<40} {'CPU us':>8} {'wall us':>8} {'floor/case':>10}")
    for figure in figures:
        share = floor / figure.cpu_us
        print(f"{figure.name:<40} {figure.cpu_us:>8.1f} {figure.wall_us:>8.1f} {share:>10.0%}")
    print(
        f"median of {ROUNDS} rounds of {arguments.requests} requests per case; "
        f"floor/case on CPU time; load average (1 min) {load_before:.2f} at start, "
        f"{load_after:.2f} at end; {os.cpu_count()} CPUs"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=REQUESTS_DEFAULT)
    parser.add_argument("--only", default=None, help="the cases named like this only")
    parser.add_argument(
        "--cprofile", action="store_true", help="top frames under cProfile instead of timings"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        # uvloop, as uvicorn[standard] runs the service, when installed.
        import uvloop
    except ImportError:
        return asyncio.run(_run(arguments))
    return uvloop.run(_run(arguments))


if __name__ == "__main__":
    raise SystemExit(main())
