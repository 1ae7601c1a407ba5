"""A supervised child dies with its supervisor (Linux).

The supervisor names itself in LEDGER_SUPERVISOR_PID; a child started so
asks the kernel, first thing, to kill it when its parent dies
(prctl PR_SET_PDEATHSIG), and exits at once if the supervisor is already
gone. A supervisor killed hard (kill -9) then takes its children with it,
as a single process would have gone. Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Final

SUPERVISOR_PID_VARIABLE: Final[str] = "LEDGER_SUPERVISOR_PID"
# prctl(2): the signal a process gets when its parent dies.
PR_SET_PDEATHSIG: Final[int] = 1


def die_with_supervisor() -> None:
    supervisor_pid = os.environ.pop(SUPERVISOR_PID_VARIABLE, None)
    if supervisor_pid is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != int(supervisor_pid):
        # It died before the request took effect.
        sys.exit(1)
