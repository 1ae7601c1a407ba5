"""What any text a client or an operator hands the ledger must be to be stored.

No control character, C0 (U+0000-U+001F, tab and line breaks included), DEL
or C1 (U+0080-U+009F): no field holds multi-line text, and a NUL cannot even
be stored in a PostgreSQL text column. No unpaired surrogate (JSON's
`"\\ud800"` decodes to one): it has no UTF-8 encoding, so it could be neither
stored nor answered. And a bounded length. The API (api/input_checks.py) and
the command line (cli/stored_text.py) both hold what they are given to this
(docs/api.md#limits-on-what-a-request-holds).
"""

from __future__ import annotations

import re
from typing import Any, Final

FORBIDDEN_CHARACTER: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATES: Final = range(0xD800, 0xE000)
# A hostile name is quoted in an answer escaped and cut to this many characters.
_QUOTED_NAME_LENGTH_MAX: Final[int] = 64


def text_fault(value: str, length_max: int) -> dict[str, Any] | None:
    """What is wrong with the text, None if nothing: `reason` (too_long,
    control_character, unpaired_surrogate) and where."""
    if len(value) > length_max:
        return {"reason": "too_long", "length_max": length_max}
    found = FORBIDDEN_CHARACTER.search(value)
    if found is None:
        return None
    code_point = ord(found.group())
    return {
        "reason": "unpaired_surrogate" if code_point in _SURROGATES else "control_character",
        "character": f"U+{code_point:04X}",
        "position": found.start(),
    }


def describe_fault(name: str, fault: dict[str, Any]) -> str:
    if fault["reason"] == "too_long":
        return f"{name} is longer than {fault['length_max']} characters"
    surrogate = fault["reason"] == "unpaired_surrogate"
    what = "an unpaired surrogate" if surrogate else "a control character"
    return f"{name} holds {what} ({fault['character']}) at character {fault['position']}"


def printable(name: str) -> str:
    """A name safe to put in an answer or a log line: forbidden characters
    escaped (an unpaired surrogate cannot even be encoded), long names cut."""
    escaped = FORBIDDEN_CHARACTER.sub(lambda found: f"\\u{ord(found.group()):04x}", name)
    if len(escaped) > _QUOTED_NAME_LENGTH_MAX:
        return escaped[:_QUOTED_NAME_LENGTH_MAX] + "..."
    return escaped
