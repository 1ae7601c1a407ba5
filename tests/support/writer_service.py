"""`ledger writer` and HTTP processes that submit to it, as child processes
(spawned, waited for and stopped as tests/support/service_process.py does)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import create_api_key
from tests.support.service_process import (
    LEDGER_SCRIPT,
    ChildProcess,
    ServiceProcess,
    free_port,
    spawn,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

SERVING_LINE = b"writer serving at"
# The pause between two reads of the writer's log.
LOG_POLL_INTERVAL_S = 0.05


def writer_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@dataclass
class WriterProcess(ChildProcess):
    endpoint: str
    # Where this process's lines start in a log that others may have written before.
    log_start: int = 0

    ROLE: ClassVar[str] = "writer"

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Until the process says it serves (it has the lease and the socket)."""
        self.wait_for_line(SERVING_LINE, timeout_s)

    def wait_for_line(self, text: bytes, timeout_s: float = 60.0) -> None:
        """Until the process's log holds `text`."""
        self.wait_until(
            lambda: text in self.log_path.read_bytes()[self.log_start :],
            f"no {text!r}",
            timeout_s,
            LOG_POLL_INTERVAL_S,
        )


def _environment(
    database_url: str, data_dir: Path, endpoint: str, extra: Mapping[str, str] | None
) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_WRITER_ENDPOINT": endpoint,
        "LEDGER_LOG_LEVEL": "INFO",
        "LEDGER_LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def start_writer(
    database_url: str,
    data_dir: Path,
    log_path: Path,
    endpoint: str,
    environment: Mapping[str, str] | None = None,
) -> WriterProcess:
    spawned = spawn(
        [str(LEDGER_SCRIPT), "writer"],
        _environment(database_url, data_dir, endpoint, environment),
        log_path,
    )
    return WriterProcess(
        process=spawned.process,
        log_path=spawned.log_path,
        _log=spawned.log,
        endpoint=endpoint,
        log_start=spawned.log_start,
    )


def start_http_process(
    database_url: str,
    data_dir: Path,
    log_path: Path,
    endpoint: str,
    environment: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """One uvicorn process of the API, without background work, submitting
    to the writer at `endpoint`."""
    api_key = create_api_key(database_url, Role.SERVICE)
    port = free_port()
    spawned = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.support.writer_service:create_http_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        {
            **_environment(database_url, data_dir, endpoint, environment),
            "LEDGER_LOG_LEVEL": "WARNING",
        },
        log_path,
        cwd=Path(__file__).resolve().parents[2],
    )
    return ServiceProcess.serving(spawned, port, api_key)


def create_http_app() -> FastAPI:
    """The API from the environment (uvicorn --factory), as one HTTP process."""
    from interface.api.app import create_app
    from interface.observability.logging import configure_logging
    from interface.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
