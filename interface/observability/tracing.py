"""OpenTelemetry traces: HTTP requests, database calls and background jobs.

Off unless the environment asks for it with the standard variables
(docs/operations.md#tracing): `OTEL_EXPORTER_OTLP_ENDPOINT` (or its traces
form) or `OTEL_TRACES_EXPORTER`. While off, nothing of the SDK or of the
instrumentations is imported, the app gets no middleware, psycopg is not
wrapped, and a background pass asks one module variable: the cost is nil.

On, once per process (`configure_from_environment`, called by the wiring):
- each HTTP request is a server span named by its route template
  (opentelemetry-instrumentation-fastapi), health probes and /metrics left out;
- each psycopg query is a client span (opentelemetry-instrumentation-psycopg),
  the child of the request or job that made it. A query outside any (the
  projection runner's polls, the writer's commits) starts no trace of its
  own: every second of polling would otherwise be a trace;
- each pass of a leased background worker, each item a due-work pass
  handles, and each reconciliation run asked for through the API is a span
  (`job_span`), parent of the queries it makes.
The exporter, its endpoint, headers and timeout, the sampler, the batch
processor and the resource all come from the SDK's own `OTEL_*` variables.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Link, Tracer

log = structlog.get_logger(__name__)

# Any of these set (and not empty) turns tracing on.
ENDPOINT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTER_VARIABLE: Final = "OTEL_TRACES_EXPORTER"
# The exporters this service ships: OTLP over HTTP (protobuf), and the
# console for a look. gRPC would bring grpcio, a large native package.
SUPPORTED_EXPORTERS: Final = frozenset({"otlp", "console"})
SUPPORTED_OTLP_PROTOCOL: Final = "http/protobuf"
PROTOCOL_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# Requests not traced unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says otherwise:
# probes and scrapes, every few seconds, say nothing about the work.
EXCLUDED_URLS_VARIABLE: Final = "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"
DEFAULT_EXCLUDED_URLS: Final = "/healthz,/readyz,/metrics"
# The resource's service.name when OTEL_SERVICE_NAME does not give one.
DEFAULT_SERVICE_NAME: Final = "ledger"
INSTRUMENTATION_NAME: Final = "ledger"


class TracingConfigurationError(ValueError):
    """An OTEL_* variable asks for something this service cannot do."""


@dataclass(frozen=True)
class _Tracing:
    provider: TracerProvider
    tracer: Tracer


# The process's tracing while on; None while off (the default).
_active: _Tracing | None = None
_lock = threading.Lock()


def requested(environ: Mapping[str, str]) -> bool:
    """Whether the environment turns tracing on."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporter_names(environ)
    if exporters == ["none"]:
        return False
    return bool(environ.get(EXPORTER_VARIABLE, "").strip()) or any(
        environ.get(variable, "").strip() for variable in ENDPOINT_VARIABLES
    )


def is_on() -> bool:
    return _active is not None


def configure_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on, once per process, if the environment asks; True when
    it is on. Refuses (TracingConfigurationError, naming the variable and
    the fix) an exporter or protocol this service does not ship."""
    environ = os.environ if environ is None else environ
    if _active is not None:
        return True
    if not requested(environ):
        return False
    exporters = [_exporter(name, environ) for name in _exporter_names(environ)]
    start(exporters, batch=True, set_global=True)
    log.info("tracing_on", exporters=_exporter_names(environ))
    return True


def start(
    exporters: Sequence[SpanExporter], *, batch: bool = True, set_global: bool = False
) -> None:
    """Trace into `exporters` from now on: through a batch processor (the
    service) or one span at a time (tests, with the SDK's in-memory exporter).
    `set_global` also makes it the process's tracer provider, for libraries
    that ask for it."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    global _active  # noqa: PLW0603  (the process's one switch)
    with _lock:
        if _active is not None:
            return
        resource = Resource.create()
        if resource.attributes.get(SERVICE_NAME) in (None, "unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        # The sampler OTEL_TRACES_SAMPLER chose, told to leave out queries
        # made outside any request or job. Set before any tracer is made.
        provider.sampler = _work_sampler(provider.sampler)
        for exporter in exporters:
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            provider.add_span_processor(processor)
        if set_global:
            trace.set_tracer_provider(provider)
        PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
        _active = _Tracing(provider, provider.get_tracer(INSTRUMENTATION_NAME))


def stop() -> None:
    """Flush and end tracing: psycopg unwrapped, no more spans. Connections
    opened while it was on keep their traced cursors until closed."""
    global _active  # noqa: PLW0603
    with _lock:
        if _active is None:
            return
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().uninstrument()
        _active.provider.shutdown()
        _active = None


def instrument_app(app: FastAPI) -> None:
    """Trace the app's requests, when tracing is on; else leave it alone."""
    tracing = _active
    if tracing is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracing.provider,
        excluded_urls=os.environ.get(EXCLUDED_URLS_VARIABLE, DEFAULT_EXCLUDED_URLS),
        # One span per request, not one more per ASGI message.
        exclude_spans=["receive", "send"],
    )


def current_link() -> Link | None:
    """A link to the current span (the request that asks for a job), to hand
    to `job_span`; None while tracing is off or outside any span."""
    if _active is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return trace.Link(context) if context.is_valid else None


@contextlib.contextmanager
def job_span(
    name: str, attributes: Mapping[str, str] | None = None, link: Link | None = None
) -> Iterator[None]:
    """A span around one unit of background work, parent of the queries it
    makes; an exception is recorded on it and goes on. Nothing while off."""
    tracing = _active
    if tracing is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    with tracing.tracer.start_as_current_span(
        name,
        kind=SpanKind.INTERNAL,
        attributes=dict(attributes or {}),
        links=[link] if link is not None else None,
    ):
        yield


def add_trace_ids(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a line logged inside a traced span names it
    (`trace_id`, `span_id`, as the exporters spell them), so a log line
    leads to its trace. Nothing while tracing is off."""
    if _active is None:
        return event_dict
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [
        name.strip().lower()
        for name in environ.get(EXPORTER_VARIABLE, "").split(",")
        if name.strip()
    ]
    return names or ["otlp"]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name not in SUPPORTED_EXPORTERS:
        raise TracingConfigurationError(
            f"{EXPORTER_VARIABLE}={name}: this service exports traces with "
            f"{', '.join(sorted(SUPPORTED_EXPORTERS))} (or none); set it to one of them"
        )
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    for variable in PROTOCOL_VARIABLES:
        protocol = environ.get(variable, "").strip()
        if protocol:
            if protocol != SUPPORTED_OTLP_PROTOCOL:
                raise TracingConfigurationError(
                    f"{variable}={protocol}: this service sends OTLP over "
                    f"{SUPPORTED_OTLP_PROTOCOL} only; set it to {SUPPORTED_OTLP_PROTOCOL} "
                    "and point the endpoint at the collector's HTTP port (4318)"
                )
            break
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _work_sampler(delegate: Any) -> Any:
    """`delegate`, except that a client span with no parent is dropped. The
    only client spans here are psycopg's queries (outgoing HTTP is not
    instrumented), and the instrumentation names them before it sets their
    attributes, so the kind is what tells: queries are traced as parts of
    requests and jobs."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind, get_current_span

    class QueriesInsideWork(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            parent = get_current_span(parent_context).get_span_context()
            if kind is SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            result: SamplingResult = delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
            return result

        def get_description(self) -> str:
            return f"QueriesInsideWork{{{delegate.get_description()}}}"

    return QueriesInsideWork()
