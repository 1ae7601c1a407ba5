"""Performance charts as PNG or SVG bytes, per account and per subtree
(docs/rules.md#performance-figures).

`equity_chart` draws one equity curve per labelled series of daily values
(major units of the currency, dates on the x axis) and, below it, each
series' drawdown from its time-weighted peak (domain/performance.py: flows
are not performance, so a withdrawal is no drawdown). A subtree is one more
series: `domain.performance.combine_series` of its accounts.

matplotlib without pyplot: every call builds its own `matplotlib.figure.Figure`
on an Agg canvas and drops it, so requests share no figure state. The SVG
output is deterministic (same input, same bytes): a fixed `svg.hashsalt` for
the element ids, no creation date in the metadata, and text kept as SVG text
(`svg.fonttype` "none") rather than glyph paths, so titles and labels can be
read and searched in the file. Those two settings are rcParams, which are
process-global; they are applied with `rc_context` under a lock, so two
charts rendering at once cannot undo each other's settings.

Titles and labels are shown literally: matplotlib's mathtext ("$...$") is
off for them, and a label starting with "_" is not hidden from the legend.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from domain.money import CURRENCY_EXPONENTS
from domain.performance import HISTORY_KEPT_DAYS, DailyValue, check_series, drawdowns

ImageFormat = Literal["png", "svg"]
IMAGE_FORMATS: Final[tuple[str, ...]] = ("png", "svg")

# Limits on what one chart draws: its cost grows with both.
MAX_SERIES: Final[int] = 12
# A series covers at most the history kept (HISTORY_KEPT_DAYS days).
MAX_POINTS_PER_SERIES: Final[int] = HISTORY_KEPT_DAYS
MAX_TITLE_LENGTH: Final[int] = 200
MAX_LABEL_LENGTH: Final[int] = 100

# Pixel size: the figure is width_px / DPI by height_px / DPI inches.
DPI: Final[int] = 100
DEFAULT_WIDTH_PX: Final[int] = 1000
DEFAULT_HEIGHT_PX: Final[int] = 600
MIN_SIDE_PX: Final[int] = 200
MAX_SIDE_PX: Final[int] = 4000

# Fixed salt for the SVG element ids: the same chart gives the same bytes.
SVG_HASH_SALT: Final[str] = "ledger-performance-chart"
_RENDER_LOCK: Final = threading.Lock()


def _check_request(
    series: Mapping[str, Sequence[DailyValue]],
    title: str,
    image_format: str,
    width_px: int,
    height_px: int,
    currency: str,
) -> None:
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r}: use one of {', '.join(IMAGE_FORMATS)}")
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {currency!r}")
    if not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH:
        raise ValueError(f"the title must be a string of at most {MAX_TITLE_LENGTH} characters")
    for name, side in (("width_px", width_px), ("height_px", height_px)):
        if not isinstance(side, int) or isinstance(side, bool):
            raise TypeError(f"{name} must be an int")
        if not MIN_SIDE_PX <= side <= MAX_SIDE_PX:
            raise ValueError(f"{name} must be within {MIN_SIDE_PX}..{MAX_SIDE_PX}, not {side}")
    if not series:
        raise ValueError("a chart needs at least one series")
    if len(series) > MAX_SERIES:
        raise ValueError(f"at most {MAX_SERIES} series per chart, not {len(series)}")
    for label, values in series.items():
        if not isinstance(label, str) or not label or len(label) > MAX_LABEL_LENGTH:
            raise ValueError(
                f"series labels must be non-empty strings of at most {MAX_LABEL_LENGTH} characters"
            )
        if not values:
            raise ValueError(f"series {label!r} has no values")
        if len(values) > MAX_POINTS_PER_SERIES:
            raise ValueError(
                f"series {label!r} has {len(values)} points; at most {MAX_POINTS_PER_SERIES}"
            )
        check_series(values)


def _format_date_axis(axes: Axes) -> None:
    # matplotlib.dates is untyped in matplotlib's own annotations.
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def equity_chart(
    series: Mapping[str, Sequence[DailyValue]],
    title: str,
    image_format: ImageFormat,
    *,
    drawdown: bool = True,
    currency: str = "USD",
    width_px: int = DEFAULT_WIDTH_PX,
    height_px: int = DEFAULT_HEIGHT_PX,
) -> bytes:
    """An equity chart (and drawdown panel) of labelled series, as PNG or SVG bytes.

    Values are minor units of `currency`, drawn in major units. Raises
    ValueError for an unknown format or currency, a size outside
    MIN_SIDE_PX..MAX_SIDE_PX, no series, more than MAX_SERIES, an empty
    series, one longer than MAX_POINTS_PER_SERIES or one that is not on
    consecutive days.
    """
    _check_request(series, title, image_format, width_px, height_px, currency)
    minor_per_major = 10 ** CURRENCY_EXPONENTS[currency]

    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if drawdown:
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 1))
        equity_axes = figure.add_subplot(grid[0])
        drawdown_axes: Axes | None = figure.add_subplot(grid[1], sharex=equity_axes)
    else:
        equity_axes = figure.add_subplot()
        drawdown_axes = None

    handles: list[Line2D] = []
    for values in series.values():
        days = date2num([value.day for value in values])  # type: ignore[no-untyped-call]
        marker = "o" if len(values) == 1 else None
        (line,) = equity_axes.plot(
            days,
            [value.value_minor / minor_per_major for value in values],
            linewidth=1.2,
            marker=marker,
        )
        handles.append(line)
        if drawdown_axes is not None:
            drawdown_axes.plot(
                days,
                [-fall for _, fall in drawdowns(values)],
                linewidth=1.0,
                marker=marker,
                color=line.get_color(),
            )

    equity_axes.set_title(title, parse_math=False)
    equity_axes.set_ylabel(f"Value ({currency})")
    equity_axes.ticklabel_format(axis="y", style="plain", useOffset=False)
    equity_axes.grid(visible=True, alpha=0.3)
    # Explicit handles and labels: a label starting with "_" is still shown.
    legend = equity_axes.legend(handles, list(series), loc="upper left", fontsize="small")
    for text in legend.get_texts():
        text.set_parse_math(False)
    if drawdown_axes is not None:
        drawdown_axes.set_ylabel("Drawdown")
        drawdown_axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        drawdown_axes.grid(visible=True, alpha=0.3)
        equity_axes.tick_params(labelbottom=False)
        _format_date_axis(drawdown_axes)
    else:
        _format_date_axis(equity_axes)

    buffer = io.BytesIO()
    metadata: dict[str, str | None] = {"Date": None} if image_format == "svg" else {}
    with (
        _RENDER_LOCK,
        matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT, "svg.fonttype": "none"}),
    ):
        figure.savefig(buffer, format=image_format, dpi=DPI, metadata=metadata)
    return buffer.getvalue()
