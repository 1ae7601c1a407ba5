"""A child tells its supervisor it has started, through a pipe.

The supervisor passes the pipe's writing end and names it in
LEDGER_READY_FD; the child writes one line once it runs (the worker: once
its projection runner and workers have started) and closes it. A process
started otherwise has no such variable, and telling does nothing.
"""

from __future__ import annotations

import os
from typing import Final

READY_FD_VARIABLE: Final[str] = "LEDGER_READY_FD"
READY_MESSAGE: Final[bytes] = b"ready\n"


def tell_ready() -> None:
    descriptor = os.environ.pop(READY_FD_VARIABLE, None)
    if descriptor is None:
        return
    try:
        os.write(int(descriptor), READY_MESSAGE)
    finally:
        os.close(int(descriptor))
