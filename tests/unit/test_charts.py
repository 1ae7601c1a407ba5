"""Performance charts (interface/api/charts.py): PNG and SVG bytes from daily values."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from domain.performance import DailyValue, combine_series
from interface.api.charts import (
    DEFAULT_HEIGHT_PX,
    DEFAULT_WIDTH_PX,
    MAX_POINTS_PER_SERIES,
    MAX_SERIES,
    MAX_SIDE_PX,
    MIN_SIDE_PX,
    equity_chart,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
START = date(2024, 1, 1)


def wavy(days: int, base: int, step: int, start: date = START) -> list[DailyValue]:
    return [
        DailyValue(start + timedelta(days=at), base + step * at * (-1) ** at) for at in range(days)
    ]


PARENT = wavy(120, 10_000_000, 1_500)
CHILD = wavy(60, 2_000_000, 700, start=START + timedelta(days=60))
SERIES = {
    "Gen account": PARENT,
    "Rev child": CHILD,
    "Subtree": combine_series([PARENT, CHILD]),
}


def png_size(image: bytes) -> tuple[int, int]:
    # The IHDR chunk comes first: length, b"IHDR", width, height (big-endian).
    assert image[12:16] == b"IHDR"
    width, height = struct.unpack(">II", image[16:24])
    return width, height


def svg_texts(image: bytes) -> str:
    root = ET.fromstring(image)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join("".join(element.itertext()) for element in root.iter())


def test_a_png_has_the_signature_and_the_default_size() -> None:
    image = equity_chart(SERIES, "Subtree performance", "png")
    assert image.startswith(PNG_SIGNATURE)
    assert png_size(image) == (DEFAULT_WIDTH_PX, DEFAULT_HEIGHT_PX)


@pytest.mark.parametrize(("width", "height"), [(800, 400), (MIN_SIDE_PX, MIN_SIDE_PX), (640, 480)])
@pytest.mark.parametrize("drawdown", [True, False])
def test_a_png_has_the_requested_size(width: int, height: int, drawdown: bool) -> None:
    image = equity_chart(
        {"account": PARENT}, "Account", "png", drawdown=drawdown, width_px=width, height_px=height
    )
    assert image.startswith(PNG_SIGNATURE)
    assert png_size(image) == (width, height)


def test_an_svg_parses_and_holds_the_title_and_each_label() -> None:
    title = "Performance of subtree <Gen> & $children$"
    series = {**SERIES, "_hidden? no: shown": PARENT[:10], "1.5 $ account": CHILD[:1]}
    text = svg_texts(equity_chart(series, title, "svg"))
    assert title in text
    for label in series:
        assert label in text
    assert "Value (USD)" in text
    assert "Drawdown" in text


def test_an_svg_is_deterministic() -> None:
    first = equity_chart(SERIES, "Subtree", "svg")
    second = equity_chart(SERIES, "Subtree", "svg")
    assert first == second
    assert equity_chart(SERIES, "Other", "svg") != first


def test_a_chart_in_another_currency_labels_it() -> None:
    values = [DailyValue(START + timedelta(days=at), 1_000_000 + at) for at in range(5)]
    text = svg_texts(equity_chart({"yen": values}, "JPY", "svg", currency="JPY"))
    assert "Value (JPY)" in text


@pytest.mark.parametrize("image_format", ["jpeg", "pdf", "PNG", "", "svgz"])
def test_a_bad_format_is_refused(image_format: str) -> None:
    with pytest.raises(ValueError, match="image format"):
        equity_chart(SERIES, "x", image_format)  # type: ignore[arg-type]


def test_the_limits_are_enforced() -> None:
    one_day = [DailyValue(START, 1)]
    with pytest.raises(ValueError, match="at least one series"):
        equity_chart({}, "x", "png")
    with pytest.raises(ValueError, match="at most"):
        equity_chart({f"s{at}": one_day for at in range(MAX_SERIES + 1)}, "x", "png")
    with pytest.raises(ValueError, match="points"):
        equity_chart({"long": wavy(MAX_POINTS_PER_SERIES + 1, 1_000, 1)}, "x", "png")
    with pytest.raises(ValueError, match="no values"):
        equity_chart({"empty": []}, "x", "png")
    with pytest.raises(ValueError, match="width_px"):
        equity_chart({"a": one_day}, "x", "png", width_px=MAX_SIDE_PX + 1)
    with pytest.raises(ValueError, match="height_px"):
        equity_chart({"a": one_day}, "x", "png", height_px=MIN_SIDE_PX - 1)
    with pytest.raises(ValueError, match="currency"):
        equity_chart({"a": one_day}, "x", "png", currency="XXX")
    with pytest.raises(ValueError, match="labels"):
        equity_chart({"": one_day}, "x", "png")
    with pytest.raises(ValueError, match="title"):
        equity_chart({"a": one_day}, "x" * 1_000, "png")


def test_a_series_with_a_gap_is_refused() -> None:
    gap = [DailyValue(START, 1), DailyValue(START + timedelta(days=2), 2)]
    with pytest.raises(ValueError, match="consecutive"):
        equity_chart({"gap": gap}, "x", "svg")


def test_the_longest_series_allowed_is_drawn() -> None:
    image = equity_chart({"two years": wavy(MAX_POINTS_PER_SERIES, 50_000_000, 10_000)}, "x", "png")
    assert image.startswith(PNG_SIGNATURE)
