"""Every result code has its HTTP status, and the API's docs say the same.

`interface/api/errors.py` maps each `ResultCode` to a status in one place;
docs/api.md lists every code with its status in the table of its section
`## Error codes`. A code added without a status, or documented with another
status than the one the API answers, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

from domain.result_codes import ResultCode
from interface.api.errors import status_for

API_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION_HEADING: Final = "## Error codes"
TABLE_HEADER: Final = "| code | HTTP status | meaning |"
# Each row's code is also its anchor, which every error body's `doc_url` names.
ROW: Final = re.compile(
    r'\| <a id="(?P<anchor>[a-z0-9_]+)"></a>`(?P<code>[a-z0-9_]+)` \| (?P<status>\d{3}) \| '
    r"(?P<meaning>.+) \|"
)
# A refusal that says nothing about the request: a dependency did not answer,
# and the same request may succeed later. The only codes outside 2xx and 4xx.
DEPENDENCY_UNAVAILABLE: Final = frozenset(
    {ResultCode.PAYOUT_UNAVAILABLE, ResultCode.BROKER_UNAVAILABLE}
)
SERVICE_UNAVAILABLE_STATUS: Final = 503


def documented_statuses() -> dict[str, int]:
    """Each code of the error table, with the status written beside it."""
    lines = API_DOC.read_text(encoding="utf-8").splitlines()
    assert SECTION_HEADING in lines, f"{API_DOC.name} has no section {SECTION_HEADING!r}"
    section: list[str] = []
    for line in lines[lines.index(SECTION_HEADING) + 1 :]:
        if line.startswith("# ") or line.startswith("## "):
            break
        section.append(line.strip())
    assert TABLE_HEADER in section, f"{SECTION_HEADING} holds no table {TABLE_HEADER!r}"
    statuses: dict[str, int] = {}
    for line in section[section.index(TABLE_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        row = ROW.fullmatch(line)
        assert row is not None, f"a row of the error table is not `code` | status | meaning: {line}"
        assert row["anchor"] == row["code"], f"{row['code']}'s row has the anchor {row['anchor']}"
        assert row["code"] not in statuses, f"{row['code']} is documented twice"
        statuses[row["code"]] = int(row["status"])
    return statuses


@pytest.mark.parametrize("code", list(ResultCode), ids=str)
def test_every_result_code_answers_a_success_or_a_refusal_never_a_server_error(
    code: ResultCode,
) -> None:
    status = status_for(code)
    if code.succeeded:
        assert 200 <= status < 300
    elif code in DEPENDENCY_UNAVAILABLE:
        assert status == SERVICE_UNAVAILABLE_STATUS
    else:
        assert 400 <= status < 500


def test_every_result_code_is_in_the_error_table_with_the_status_the_api_answers() -> None:
    documented = documented_statuses()
    missing = [code.value for code in ResultCode if code.value not in documented]
    assert missing == [], f"{API_DOC.name} {SECTION_HEADING} lacks {missing}"
    differing = {
        code.value: (documented[code.value], status_for(code))
        for code in ResultCode
        if documented[code.value] != status_for(code)
    }
    assert differing == {}, "documented status, status answered"
