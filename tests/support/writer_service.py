"""`ledger writer` and HTTP processes that submit to it, as child processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import create_api_key
from tests.support.service_process import LEDGER_SCRIPT, ServiceProcess, free_port

if TYPE_CHECKING:
    from fastapi import FastAPI

SERVING_LINE = b"writer serving at"


def writer_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@dataclass
class WriterProcess:
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path
    _log: IO[bytes]
    # Where this process's lines start in a log that others may have written before.
    log_start: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Until the process says it serves (it has the lease and the socket)."""
        self.wait_for_line(SERVING_LINE, timeout_s)

    def wait_for_line(self, text: bytes, timeout_s: float = 60.0) -> None:
        """Until the process's log holds `text`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the writer exited early:\n{self.log_tail()}")
            if text in self.log_path.read_bytes()[self.log_start :]:
                return
            time.sleep(0.05)
        raise TimeoutError(f"no {text!r} from the writer in {timeout_s}s:\n{self.log_tail()}")

    def kill_hard(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then kill; its exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_hard()
                return self.process.returncode
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


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
    log = log_path.open("ab")
    log_start = log.tell()
    process = subprocess.Popen(
        [str(LEDGER_SCRIPT), "writer"],
        env=_environment(database_url, data_dir, endpoint, environment),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WriterProcess(process, endpoint, log_path, log, log_start)


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
    log = log_path.open("ab")
    process = subprocess.Popen(
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
        env={
            **_environment(database_url, data_dir, endpoint, environment),
            "LEDGER_LOG_LEVEL": "WARNING",
        },
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return ServiceProcess(process, f"http://127.0.0.1:{port}", log_path, log, api_key)


def create_http_app() -> FastAPI:
    """The API from the environment (uvicorn --factory), as one HTTP process."""
    from interface.api.app import create_app
    from interface.observability.logging import configure_logging
    from interface.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
