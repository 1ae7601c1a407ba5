"""The `ledger` command's exit statuses, one meaning each (docs/operations.md#the-command-line).

A script or a deploy gate tells them apart without reading the output: 1 is
"it ran and found something", never "it could not run". The two
configuration codes are the BSD sysexits ones (EX_UNAVAILABLE, EX_CONFIG),
as many Unix tools use them.
"""

from __future__ import annotations

from typing import Final

OK: Final[int] = 0
# The command ran and found a problem: a finding of `audit verify`, a view
# stopped, a high or critical reconciliation exception open, stuck closures.
FOUND_PROBLEMS: Final[int] = 1
# A usage error (Click's own), or a refusal of what was asked (no such closure,
# an exception resolved already).
USAGE: Final[int] = 2
# Another process holds the lease of the work asked for (`closures tick`).
LEASE_HELD: Final[int] = 3
# `reconcile run`: nothing failed, but not every check ran; the report says why.
INCOMPLETE: Final[int] = 4
# The database could not be reached (LEDGER_DATABASE_URL, or the embedded one).
DATABASE_UNAVAILABLE: Final[int] = 69
# A setting is wrong (a LEDGER_* variable, the .env file): the message names it.
CONFIGURATION: Final[int] = 78
