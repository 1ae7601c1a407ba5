"""The real service, `ledger serve`, as a child process on a given database,
and what every child process of the tests shares (`ChildProcess`, `spawn`):
its own session (so a kill reaches its children), its output appended to a
log file, a wait that stops early when it exits, a stop that asks and then
kills. tests/support/writer_service.py starts `ledger writer` and HTTP
processes with the same."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

import httpx

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import create_api_key

LEDGER_SCRIPT = Path(sys.executable).with_name("ledger")
# How long one wait for /readyz may take before the next try.
READY_PROBE_TIMEOUT_S = 2.0
# The pause between two looks at a child that is not there yet.
READY_PROBE_INTERVAL_S = 0.1
# How long a child killed with SIGKILL may take to be reaped.
KILLED_EXIT_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Spawned:
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    # Where this process's lines start in a log that others may have written before.
    log_start: int


def spawn(
    arguments: Sequence[str],
    environment: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
) -> Spawned:
    """`arguments` in a session of its own, stdout and stderr appended to `log_path`."""
    log = log_path.open("ab")
    log_start = log.tell()
    process = subprocess.Popen(
        list(arguments),
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )
    return Spawned(process, log_path, log, log_start)


@dataclass
class ChildProcess:
    """A child started by `spawn`: waited for, stopped, killed, its log read."""

    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    # What the messages call it ("the service exited early").
    ROLE: ClassVar[str] = "child process"
    # How long `stop` waits after SIGTERM before it kills.
    STOP_TIMEOUT_S: ClassVar[float] = 30.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until(
        self, done: Callable[[], bool], waiting_for: str, timeout_s: float, interval_s: float
    ) -> None:
        """Until `done()`; RuntimeError as soon as the process exits, TimeoutError
        after `timeout_s`, each with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.ROLE} exited early:\n{self.log_tail()}")
            if done():
                return
            time.sleep(interval_s)
        raise TimeoutError(
            f"{waiting_for} from the {self.ROLE} in {timeout_s}s:\n{self.log_tail()}"
        )

    def kill_hard(self) -> None:
        """kill -9 the process and everything in its process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=KILLED_EXIT_TIMEOUT_S)
        self._log.close()

    def stop(self, timeout_s: float | None = None) -> int:
        """Ask politely (SIGTERM), then kill after `timeout_s` (STOP_TIMEOUT_S
        when not given); its exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.STOP_TIMEOUT_S if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_hard()
                return self.process.returncode
        self._log.close()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class ServiceProcess(ChildProcess):
    base_url: str
    # A platform (service role) key made in the service's database.
    api_key: str

    ROLE: ClassVar[str] = "service"
    STOP_TIMEOUT_S: ClassVar[float] = 15.0

    @classmethod
    def serving(cls, spawned: Spawned, port: int, api_key: str) -> ServiceProcess:
        """The HTTP service `spawned` runs on `port` of 127.0.0.1."""
        return cls(
            process=spawned.process,
            log_path=spawned.log_path,
            _log=spawned.log,
            base_url=f"http://127.0.0.1:{port}",
            api_key=api_key,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until GET /readyz answers 200."""
        with httpx.Client(base_url=self.base_url, timeout=READY_PROBE_TIMEOUT_S) as client:

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            self.wait_until(ready, "no ready answer", timeout_s, READY_PROBE_INTERVAL_S)


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
    spawned = spawn(
        [str(LEDGER_SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        variables,
        log_path,
    )
    return ServiceProcess.serving(spawned, port, api_key)
