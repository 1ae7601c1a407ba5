"""A child tells its supervisor it has started; others wait for that, through pipes.

The supervisor passes one pipe's writing end to the child that tells and
names it in LEDGER_READY_FD; the child writes one line once it runs (the
worker: once its projection runner and workers have started) and closes it.
The children that wait for it (the HTTP processes, at the first start)
start at the same time, so their imports and set-up overlap, and before
serving read LEDGER_GO_FD until the supervisor writes there (or closes it).
A process started otherwise has neither variable: telling and waiting do
nothing.
"""

from __future__ import annotations

import os
from typing import Final

READY_FD_VARIABLE: Final[str] = "LEDGER_READY_FD"
READY_MESSAGE: Final[bytes] = b"ready\n"
GO_FD_VARIABLE: Final[str] = "LEDGER_GO_FD"
GO_MESSAGE: Final[bytes] = b"go\n"


def tell_ready() -> None:
    descriptor = os.environ.pop(READY_FD_VARIABLE, None)
    if descriptor is None:
        return
    try:
        os.write(int(descriptor), READY_MESSAGE)
    finally:
        os.close(int(descriptor))


def wait_for_go() -> None:
    descriptor = os.environ.pop(GO_FD_VARIABLE, None)
    if descriptor is None:
        return
    with os.fdopen(int(descriptor), "rb") as gate:
        # The line, or the end when the supervisor closed it unsaid.
        gate.readline()
