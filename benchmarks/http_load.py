"""The HTTP benchmark's load generator: many keep-alive clients on one event loop.

It runs in a process of its own (see `LoadProcess`), so its work is not
counted against the server's and the two do not share an interpreter lock.
Each client holds one HTTP/1.1 keep-alive connection and sends its next
request as soon as the last one is answered (a closed loop), so at most
`clients` requests are in flight.

The default client is a few dozen lines over asyncio's protocols and
httptools' response parser (both already installed with uvicorn[standard]),
on uvloop when available: a request costs the generator some tens of
microseconds of CPU, so on a small machine it leaves the cores to the server
and the database. `client="httpx"` uses httpx.AsyncClient instead, as a
cross-check (it costs several times more CPU per request).

Timing: every client starts at `start_ns`; requests sent before
`measure_from_ns` are warm-up and only counted. A request is measured if it
was sent inside the window; no new request is sent after `stop_ns`; the window
closes when the last measured request is answered. Latency is
`time.perf_counter_ns` from just before the request's bytes are written to
just after its response has been parsed in full.

Only the standard library, httptools and uvloop are imported at module level:
the child process starts quickly and imports nothing of the ledger.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final, Literal, cast

import httptools

TRANSFERS: Final = "transfers"
# Transfers all between the same two accounts, one way or the other.
HOT: Final = "hot"
READS: Final = "reads"
# The service's GET /healthz, no key, no database.
HEALTH: Final = "health"
# POST /v1/transfers/batch, BATCH_ITEMS transfers per request.
BATCH: Final = "batch"
# GET / of a bare FastAPI app returning a constant (benchmarks/http_floor.py).
FLOOR: Final = "floor"
PhaseKind = Literal["transfers", "hot", "reads", "health", "batch", "floor"]
PHASE_KINDS: Final[tuple[str, ...]] = (FLOOR, HEALTH, TRANSFERS, HOT, READS, BATCH)
ClientKind = Literal["raw", "httpx"]
EXPECTED_STATUS: Final[dict[str, int]] = {
    TRANSFERS: 201,
    HOT: 201,
    READS: 200,
    HEALTH: 200,
    BATCH: 200,
    FLOOR: 200,
}
# Transfers per batch request: the batch route's figures are per transfer.
BATCH_ITEMS: Final[int] = 100
# A batch answered 200 with an item refused counts as this status: not the
# expected one, and its effect on the balances unknown.
BATCH_REFUSED_ITEMS_STATUS: Final[int] = 207
BATCH_ALL_SUCCEEDED: Final[bytes] = b'"failed":0'
CONNECT_TIMEOUT_S: Final[float] = 10.0
ERROR_PAUSE_S: Final[float] = 0.01
# How long the parent waits for the child to connect and to report.
CHILD_READY_TIMEOUT_S: Final[float] = 60.0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What the child process does; plain values only (it crosses a process boundary)."""

    kind: PhaseKind
    host: str
    port: int
    api_key: str
    account_ids: tuple[str, ...]
    clients: int
    warmup_s: float
    duration_s: float
    seed: int
    # Unique per phase and run: the transfers' idempotency keys start with it.
    tag: str
    currency: str = "USD"
    amount_minor_max: int = 10_000
    # Also send an `Idempotency-Key` header (the HTTP-level replay store).
    idempotency_header: bool = False
    client: ClientKind = "raw"
    request_timeout_s: float = 30.0


@dataclass(slots=True)
class LoadResult:
    kind: str
    clients: int
    expected_status: int
    # The measured window, from its start to the last measured answer.
    seconds: float
    # Every measured request's latency, in nanoseconds, sorted.
    latencies_ns: array[int]
    # Measured requests by outcome: "201", "422", "error: ReadTimeout", ...
    outcomes: dict[str, int]
    warmup_requests: int
    # This process's CPU time (user + system) inside the measured window.
    cpu_s: float
    # Net minor units moved into each account by the transfers answered with
    # 201, warm-up included (for checking the balances afterwards); and
    # requests whose outcome is unknown (no answer, or a 5xx).
    net_minor: list[int] = field(default_factory=list)
    unknown_outcomes: int = 0
    # Requests answered with the expected status, warm-up included.
    acknowledged: int = 0
    event_loop: str = "asyncio"
    client: str = "raw"

    @property
    def requests(self) -> int:
        return len(self.latencies_ns)

    @property
    def ok(self) -> int:
        return self.outcomes.get(str(self.expected_status), 0)

    @property
    def errors(self) -> int:
        return self.requests - self.ok


# One client connection ---------------------------------------------------------


class HttpConnectionError(Exception):
    """The connection closed or sent something that is not HTTP."""


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, check_batch: bool = False) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._body = bytearray()
        # Batch responses: read the body for refused items.
        self.check_batch = check_batch
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpConnectionError(f"unparseable response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpConnectionError("the server closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        status = self._parser.get_status_code()
        if status == 200 and self.check_batch and BATCH_ALL_SUCCEEDED not in self._body:
            status = BATCH_REFUSED_ITEMS_STATUS
        self._body.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result(status)
        if not self._parser.should_keep_alive():
            self.close()

    def request(self, data: bytes) -> asyncio.Future[int]:
        if self.closed or self._transport is None:
            raise HttpConnectionError("the connection is closed")
        self._waiter = self._loop.create_future()
        self._transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


async def _open_raw(spec: LoadSpec) -> _RawConnection:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        _, protocol = await loop.create_connection(
            lambda: _RawConnection(loop, check_batch=spec.kind == BATCH), spec.host, spec.port
        )
    return protocol


# Requests -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    body: bytes
    # For transfers: (debit index, credit index, amount) of each, to count
    # when answered with the expected status.
    transfers: tuple[tuple[int, int, int], ...]


class _RequestMaker:
    """Draws the next request of one client, from a generator seeded per client."""

    def __init__(self, spec: LoadSpec, client_number: int) -> None:
        self._spec = spec
        self._client_number = client_number
        self._random = random.Random(f"{spec.seed}:{spec.kind}:{spec.tag}:{client_number}")
        self._sent = 0
        self._ids = spec.account_ids
        self._last = len(spec.account_ids) - 1
        self._head_common = (
            f"Host: {spec.host}:{spec.port}\r\nAuthorization: Bearer {spec.api_key}\r\n"
        )

    def next(self) -> _Request:
        number = self._sent
        self._sent += 1
        kind = self._spec.kind
        if kind == HEALTH:
            return _Request("GET", "/healthz", b"", ())
        if kind == FLOOR:
            return _Request("GET", "/", b"", ())
        if kind == READS:
            account = self._ids[self._random.randint(0, self._last)]
            return _Request("GET", f"/v1/accounts/{account}", b"", ())
        if kind == BATCH:
            drawn = [self._draw() for _ in range(BATCH_ITEMS)]
            items = b",".join(
                self._transfer_json(f"{number}-{index}", transfer)
                for index, transfer in enumerate(drawn)
            )
            body = b'{"transfers":[' + items + b"]}"
            return _Request("POST", "/v1/transfers/batch", body, tuple(drawn))
        transfer = self._draw()
        return _Request(
            "POST", "/v1/transfers", self._transfer_json(str(number), transfer), (transfer,)
        )

    def _draw(self) -> tuple[int, int, int]:
        """(debit index, credit index, amount) of the next transfer."""
        amount = self._random.randint(1, self._spec.amount_minor_max)
        if self._spec.kind == HOT:
            # One pair of accounts, either way round, so neither runs dry.
            return (0, 1, amount) if self._random.random() < 0.5 else (1, 0, amount)
        debit = self._random.randint(0, self._last)
        # A distinct second account, uniformly among the others.
        credit = (debit + self._random.randint(1, self._last)) % len(self._ids)
        return debit, credit, amount

    def _transfer_json(self, number: str, transfer: tuple[int, int, int]) -> bytes:
        debit, credit, amount = transfer
        key = f"{self._spec.tag}-{self._client_number}-{number}"
        return (
            f'{{"idempotency_key":"{key}","debit_account_id":"{self._ids[debit]}",'
            f'"credit_account_id":"{self._ids[credit]}",'
            f'"amount":"{amount // 100}.{amount % 100:02d}","currency":"{self._spec.currency}"}}'
        ).encode()

    def raw_bytes(self, request: _Request) -> bytes:
        head = f"{request.method} {request.path} HTTP/1.1\r\n{self._head_common}"
        if request.method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(request.body)}\r\n"
            if self._spec.idempotency_header:
                head += (
                    f"Idempotency-Key: {self._spec.tag}-h-{self._client_number}-{self._sent}\r\n"
                )
        return head.encode() + b"\r\n" + request.body

    def headers(self, request: _Request) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._spec.api_key}"}
        if request.method == "POST":
            headers["Content-Type"] = "application/json"
            if self._spec.idempotency_header:
                headers["Idempotency-Key"] = (
                    f"{self._spec.tag}-h-{self._client_number}-{self._sent}"
                )
        return headers


# The clients ------------------------------------------------------------------------

# Sends one request, returns the status (raises on no answer).
Sender = Callable[[_Request], Awaitable[int]]


@dataclass(slots=True)
class _Tally:
    latencies_ns: array[int]
    outcomes: Counter[str]
    net_minor: list[int]
    warmup_requests: int = 0
    unknown_outcomes: int = 0
    acknowledged: int = 0
    last_answer_ns: int = 0


async def _client_loop(
    spec: LoadSpec,
    send: Sender,
    maker: _RequestMaker,
    tally: _Tally,
    measure_from_ns: int,
    stop_ns: int,
) -> None:
    expected = EXPECTED_STATUS[spec.kind]
    clock = time.perf_counter_ns
    while (sent_ns := clock()) < stop_ns:
        request = maker.next()
        sent_ns = clock()
        try:
            async with asyncio.timeout(spec.request_timeout_s):
                status = await send(request)
            answered_ns = clock()
            outcome = str(status)
        except Exception as error:  # noqa: BLE001 - counted by type, never raised
            answered_ns = clock()
            status, outcome = 0, f"error: {type(error).__name__}"
            # A refused or broken connection fails at once: do not spin on it.
            await asyncio.sleep(ERROR_PAUSE_S)
        if status == expected:
            tally.acknowledged += 1
        if request.transfers:
            if status == expected:
                for debit, credit, amount in request.transfers:
                    tally.net_minor[debit] -= amount
                    tally.net_minor[credit] += amount
            elif status in (0, BATCH_REFUSED_ITEMS_STATUS) or status >= 500:
                tally.unknown_outcomes += 1
        if sent_ns < measure_from_ns:
            tally.warmup_requests += 1
            continue
        tally.latencies_ns.append(answered_ns - sent_ns)
        tally.outcomes[outcome] += 1
        tally.last_answer_ns = answered_ns


async def _raw_sender(spec: LoadSpec, maker: _RequestMaker) -> tuple[Sender, Callable[[], None]]:
    state: dict[str, _RawConnection] = {"connection": await _open_raw(spec)}

    async def send(request: _Request) -> int:
        connection = state["connection"]
        if connection.closed:
            connection = state["connection"] = await _open_raw(spec)
        try:
            return await connection.request(maker.raw_bytes(request))
        except BaseException:
            # No answer (or a late one) must never be read as the next request's.
            connection.close()
            raise

    def close() -> None:
        state["connection"].close()

    return send, close


async def _run_clients(spec: LoadSpec, control: Connection) -> LoadResult:
    makers = [_RequestMaker(spec, number) for number in range(spec.clients)]
    closers: list[Callable[[], Awaitable[None] | None]] = []
    senders: list[Sender] = []
    if spec.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=spec.clients, max_keepalive_connections=spec.clients)
        http_client = httpx.AsyncClient(
            base_url=f"http://{spec.host}:{spec.port}",
            limits=limits,
            timeout=spec.request_timeout_s,
        )

        for maker in makers:

            async def send_httpx(request: _Request, maker: _RequestMaker = maker) -> int:
                response = await http_client.request(
                    request.method,
                    request.path,
                    content=request.body or None,
                    headers=maker.headers(request),
                )
                if (
                    response.status_code == 200
                    and spec.kind == BATCH
                    and BATCH_ALL_SUCCEEDED not in response.content
                ):
                    return BATCH_REFUSED_ITEMS_STATUS
                return response.status_code

            senders.append(send_httpx)
        closers.append(http_client.aclose)
    else:
        for maker in makers:
            send, close = await _raw_sender(spec, maker)
            senders.append(send)
            closers.append(close)
    # Connected: tell the parent, and wait for the common start time.
    control.send(("ready", None))
    start_ns: int = control.recv()
    measure_from_ns = start_ns + int(spec.warmup_s * 1e9)
    stop_ns = measure_from_ns + int(spec.duration_s * 1e9)
    tallies = [
        _Tally(array("q"), Counter(), [0] * len(spec.account_ids)) for _ in range(spec.clients)
    ]
    await asyncio.sleep(max(0.0, (start_ns - time.perf_counter_ns()) / 1e9))
    cpu_marks: list[float] = []

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, (measure_from_ns - time.perf_counter_ns()) / 1e9))
        cpu_marks.append(_process_cpu_s())

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(
        *(
            _client_loop(spec, send, maker, tally, measure_from_ns, stop_ns)
            for send, maker, tally in zip(senders, makers, tallies, strict=True)
        )
    )
    await marker
    cpu_s = _process_cpu_s() - cpu_marks[0]
    for closer in closers:
        closed = closer()
        if closed is not None:
            await closed
    latencies = array("q", sorted(value for tally in tallies for value in tally.latencies_ns))
    outcomes: Counter[str] = Counter()
    for tally in tallies:
        outcomes.update(tally.outcomes)
    last_answer_ns = max((tally.last_answer_ns for tally in tallies), default=0)
    net = [sum(column) for column in zip(*(tally.net_minor for tally in tallies), strict=True)]
    return LoadResult(
        kind=spec.kind,
        clients=spec.clients,
        expected_status=EXPECTED_STATUS[spec.kind],
        seconds=max(0.0, (last_answer_ns - measure_from_ns) / 1e9),
        latencies_ns=latencies,
        outcomes=dict(outcomes),
        warmup_requests=sum(tally.warmup_requests for tally in tallies),
        cpu_s=cpu_s,
        net_minor=net,
        unknown_outcomes=sum(tally.unknown_outcomes for tally in tallies),
        acknowledged=sum(tally.acknowledged for tally in tallies),
        event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        client=spec.client,
    )


def _process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _child_main(spec: LoadSpec, control: Connection) -> None:
    """The child process: run the clients, send back ("result", LoadResult) or ("error", text)."""
    try:
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(_run_clients(spec, control))
        control.send(("result", result))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises
        control.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        control.close()


class LoadFailed(Exception):
    """The load generator could not run (not: the server answered with errors)."""


class LoadProcess:
    """The generator in a child process: `start()` connects every client,
    `go()` starts them all at once; `result()` waits for the report."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")
        self._control, child_end = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(spec, child_end), name=f"http-load-{spec.kind}", daemon=True
        )
        self._child_end = child_end

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> None:
        self._process.start()
        self._child_end.close()
        message = self._receive(CHILD_READY_TIMEOUT_S)
        if message[0] != "ready":
            raise LoadFailed(f"the load generator did not start: {message[1]}")

    def go(self, delay_s: float = 0.05) -> int:
        """Start every client `delay_s` from now; returns that instant (perf_counter_ns)."""
        start_ns = time.perf_counter_ns() + int(delay_s * 1e9)
        self._control.send(start_ns)
        return start_ns

    def result(self) -> LoadResult:
        allowance = self.spec.warmup_s + self.spec.duration_s + self.spec.request_timeout_s
        message = self._receive(allowance + CHILD_READY_TIMEOUT_S)
        self._process.join(10)
        if message[0] != "result":
            raise LoadFailed(f"the load generator failed: {message[1]}")
        result: LoadResult = message[1]
        return result

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
        self._control.close()

    def _receive(self, timeout_s: float) -> tuple[str, Any]:
        if not self._control.poll(timeout_s):
            raise LoadFailed(f"no word from the load generator in {timeout_s:.0f} s")
        try:
            message: tuple[str, Any] = self._control.recv()
        except EOFError:
            raise LoadFailed(f"the load generator exited (code {self._process.exitcode})") from None
        return message
