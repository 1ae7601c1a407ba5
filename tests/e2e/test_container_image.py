"""The image builds and runs as docs/deployment.md says, where docker can
build it: a docker daemon is reachable and the base image can be pulled.
Elsewhere (no docker, no daemon, no route to the image registry: this
machine reaches only package registries) the test is skipped, saying which."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Asking the daemon whether it is there.
DAEMON_QUERY_TIMEOUT_S: Final[float] = 20.0
# A build on a cold cache installs every locked package.
BUILD_TIMEOUT_S: Final[float] = 900.0
RUN_TIMEOUT_S: Final[float] = 120.0
# What a build that could not fetch its base image says (BuildKit and the
# classic builder): a network matter, not the Dockerfile's fault.
PULL_FAILURES: Final = (
    "failed to resolve source metadata",
    "failed to fetch",
    "pull access denied",
    "error pulling image",
    "dial tcp",
    "no such host",
    "tls handshake timeout",
    "i/o timeout",
    "connection refused",
    "network is unreachable",
    "temporary failure in name resolution",
    "failed to do request",
)


def _docker(*arguments: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The image built from the work tree, removed afterwards."""
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed: the image is not built here")
    try:
        daemon = _docker("info", "--format", "{{.ServerVersion}}", timeout_s=DAEMON_QUERY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip("the docker daemon did not answer: the image is not built here")
    if daemon.returncode != 0:
        reason = (daemon.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"no docker daemon reachable ({reason}): the image is not built here")
    tag = f"ledger-test:{uuid.uuid4().hex[:12]}"
    try:
        build = _docker("build", "--tag", tag, str(ROOT), timeout_s=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"the build took over {BUILD_TIMEOUT_S:g} s: too slow a network here")
    if build.returncode != 0:
        output = build.stdout + build.stderr
        lowered = output.lower()
        if any(failure in lowered for failure in PULL_FAILURES):
            line = next(
                (
                    text
                    for text in output.splitlines()
                    if any(f in text.lower() for f in PULL_FAILURES)
                ),
                "",
            )
            pytest.skip(f"docker could not pull what the build needs (no network?): {line.strip()}")
        pytest.fail(f"docker build failed:\n{output[-4000:]}")
    try:
        yield tag
    finally:
        _docker("image", "rm", "--force", tag, timeout_s=RUN_TIMEOUT_S)


def test_the_image_runs_the_cli_as_a_user_that_is_not_root(image: str) -> None:
    who = _docker("run", "--rm", "--entrypoint", "id", image, "-u", timeout_s=RUN_TIMEOUT_S)
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() != "0"
    helped = _docker("run", "--rm", image, "--help", timeout_s=RUN_TIMEOUT_S)
    assert helped.returncode == 0, helped.stderr
    assert "db" in helped.stdout


def test_the_image_declares_its_health_check(image: str) -> None:
    inspected = _docker("image", "inspect", image, timeout_s=RUN_TIMEOUT_S)
    assert inspected.returncode == 0, inspected.stderr
    (details,) = json.loads(inspected.stdout)
    test = details["Config"]["Healthcheck"]["Test"]
    assert any("/healthz" in part for part in test)
    assert details["Config"]["User"].split(":")[0] not in {"", "root", "0"}
