"""The real service, `ledger serve`, as a child process on a given database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import create_api_key

LEDGER_SCRIPT = Path(sys.executable).with_name("ledger")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    _log: IO[bytes]
    # A platform (service role) key made in the service's database.
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the service exited early:\n{self.log_tail()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"the service was not ready in {timeout_s}s:\n{self.log_tail()}")

    def kill_hard(self) -> None:
        """kill -9 the service and everything in its process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask politely (SIGTERM), then kill."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_hard()
                return
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_service(
    database_url: str,
    data_dir: Path,
    log_path: Path,
    environment: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """`environment` adds to (or overrides) the service's variables."""
    api_key = create_api_key(database_url, Role.SERVICE)
    port = free_port()
    variables = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(environment or {}),
    }
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(LEDGER_SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=variables,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return ServiceProcess(process, f"http://127.0.0.1:{port}", log_path, log, api_key)
