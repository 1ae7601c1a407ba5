"""Tracing is off unless the standard OTEL_* variables turn it on, and off
costs nothing: no tracing SDK or instrumentation imported, no middleware, psycopg
unwrapped. An exporter or protocol the service does not ship is refused,
naming the variable and the fix (docs/operations.md#tracing)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from interface.observability import tracing


@pytest.mark.parametrize(
    ("environment", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        # Other OTEL_* variables alone say how, not whether.
        ({"OTEL_SERVICE_NAME": "ledger", "OTEL_TRACES_SAMPLER": "always_on"}, False),
    ],
)
def test_the_environment_turns_tracing_on(environment: dict[str, str], on: bool) -> None:
    assert tracing.requested(environment) is on


def test_off_the_app_and_the_driver_are_left_alone() -> None:
    from interface.api.app import create_app

    assert tracing.configure_from_environment({}) is False
    assert not tracing.is_on()
    app = create_app()
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert not hasattr(psycopg.connect, "__wrapped__")
    with tracing.job_span("a job"):
        pass
    assert tracing.current_link() is None


def test_off_nothing_of_the_tracing_sdk_or_the_instrumentations_is_imported() -> None:
    # Only the tracing parts: redis' client imports the SDK's metrics
    # package itself when it is installed.
    probe = (
        "import sys\n"
        "import interface.api.app, interface.bootstrap, interface.cli.main\n"
        "loaded = [m for m in sys.modules if m.startswith(("
        "'opentelemetry.sdk.trace', 'opentelemetry.instrumentation', 'opentelemetry.exporter'))]\n"
        "print(loaded)\n"
    )
    environment = {"PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        timeout=120,
    )
    assert shown.stdout.strip() == "[]", shown.stdout


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
        ),
    ],
)
def test_what_the_service_cannot_export_is_refused_by_name(
    environment: dict[str, str], named: str
) -> None:
    with pytest.raises(tracing.TracingConfigurationError, match=named):
        tracing.configure_from_environment(environment)
    assert not tracing.is_on()
