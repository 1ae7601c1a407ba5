"""Query and path parameter types shared by the routes."""

from __future__ import annotations

import re
from typing import Annotated, Final

from fastapi import Path
from pydantic import AwareDatetime, BeforeValidator

from projections.events import POSITION_MAX

__all__ = ["POSITION_MAX", "IsoTime", "PositionId"]

POSITION_ID_LENGTH_MAX: Final[int] = 128
# A broker position's id in a path.
PositionId = Annotated[str, Path(min_length=1, max_length=POSITION_ID_LENGTH_MAX)]

# A time as ISO 8601 text with an offset. Pydantic alone would also take a
# number ("0.5") as seconds since 1970, which the schema (date-time) refuses.
_ISO_TIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)"
)


def _iso_time_text(value: object) -> object:
    if not isinstance(value, str) or not _ISO_TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 time with an offset, like 2026-01-02T03:04:05Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_time_text)]
