"""Server-rendered SVG charts of the learning pages (the quality dashboard, the panel's
results, an evaluation's word counts): the geometry here, the markup in their templates. No
script, no library, no CDN; each page puts the numbers in a table beside each chart (the chart
is an image with a title and a description).

Sizes are in the SVG's own units (a viewBox): the chart scales to its box, a phone included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
LABEL_WIDTH = 190  # left column for the bars' labels
VALUE_WIDTH = 70  # right column for the values
ROW_HEIGHT = 28
BAR_HEIGHT = 18
LABEL_MAX_CHARS = 26
SERIES_COUNT = 4  # styles (colour and dash) before they repeat


def _short(label: str) -> str:
    return label if len(label) <= LABEL_MAX_CHARS else label[: LABEL_MAX_CHARS - 1] + "…"


def percent_text(share: float | None) -> str:
    if share is None:
        return "—"
    return f"{share * 100:.1f}".replace(".", ",").removesuffix(",0") + " %"


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    x: float
    y: float
    width: float
    height: float
    text_y: float

    @property
    def value_x(self) -> float:
        return round(self.x + self.width + 4, 1)


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per row."""

    chart_id: str
    title: str
    desc: str
    height: int
    bars: list[Bar]
    label_x: int = LABEL_WIDTH - 8
    bar_x: int = LABEL_WIDTH
    width: int = WIDTH

    @property
    def axis_end(self) -> int:
        return WIDTH - VALUE_WIDTH


def bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    rows: list[tuple[str, float | None, str]],
    maximum: float | None = None,
) -> BarChart:
    """rows: (label, value, value as text); a None value draws no bar ("—")."""
    values = [value for _, value, _ in rows if value is not None]
    top = maximum if maximum is not None else max(values, default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = []
    for index, (label, value, value_text) in enumerate(rows):
        y = 8 + index * ROW_HEIGHT
        length = 0.0 if value is None else max(0.0, min(1.0, value / top)) * span
        bars.append(
            Bar(
                label=_short(label),
                value_text=value_text,
                x=LABEL_WIDTH,
                y=y,
                width=round(length, 1),
                height=BAR_HEIGHT,
                text_y=y + BAR_HEIGHT - 4,
            )
        )
    return BarChart(
        chart_id=chart_id,
        title=title,
        desc=desc,
        height=16 + len(rows) * ROW_HEIGHT,
        bars=bars,
    )


# --- Lines over time ----------------------------------------------------------------------------

PLOT_LEFT = 48
PLOT_RIGHT = WIDTH - 44  # room for the last month's label, centred on its point
PLOT_TOP = 12
PLOT_BOTTOM = 200
LINE_HEIGHT = 262


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    tooltip: str


@dataclass(frozen=True)
class Series:
    name: str
    style: int  # 0..SERIES_COUNT-1: the CSS class series-N (colour and dash pattern)
    points: list[Point]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x},{p.y}" for p in self.points)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class LineChart:
    """Shares (0 to 100 %) over time, one line per series; a gap where a series has no data."""

    chart_id: str
    title: str
    desc: str
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = LINE_HEIGHT
    left: int = PLOT_LEFT
    right: int = PLOT_RIGHT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM


def line_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    x_labels: list[str],
    series: list[tuple[str, list[float | None]]],
) -> LineChart:
    count = len(x_labels)
    span = PLOT_RIGHT - PLOT_LEFT

    def x_of(index: int) -> float:
        return round(PLOT_LEFT + (span / 2 if count == 1 else span * index / (count - 1)), 1)

    def y_of(share: float) -> float:
        return round(PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * max(0.0, min(1.0, share)), 1)

    drawn = []
    for number, (name, values) in enumerate(series):
        points = [
            Point(x_of(i), y_of(v), f"{name}, {x_labels[i]} : {percent_text(v)}")
            for i, v in enumerate(values)
            if v is not None
        ]
        drawn.append(Series(name=name, style=number % SERIES_COUNT, points=points))
    # At most 8 month labels under the axis, evenly spread.
    step = max(1, -(-count // 8))
    x_ticks = [Tick(x_of(i), x_labels[i]) for i in range(0, count, step)]
    y_ticks = [Tick(y_of(share), percent_text(share)) for share in (0, 0.25, 0.5, 0.75, 1)]
    return LineChart(
        chart_id=chart_id,
        title=title,
        desc=desc,
        series=drawn,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
    )


# --- Win rates with their intervals (the panel's results) ---------------------------------------


@dataclass(frozen=True)
class IntervalRow:
    label: str
    value_text: str
    y: float  # the row's centre line
    low_x: float
    high_x: float
    rate_x: float


@dataclass(frozen=True)
class IntervalChart:
    """One row per pair: a dot at the rate, a line over its interval, 50 % marked."""

    chart_id: str
    title: str
    desc: str
    height: int
    rows: list[IntervalRow]
    ticks: list[Tick]
    middle_x: float
    label_x: int = LABEL_WIDTH - 8
    left: int = LABEL_WIDTH
    right: int = WIDTH - VALUE_WIDTH
    width: int = WIDTH

    @property
    def axis_y(self) -> int:
        return self.height - 24


def interval_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    rows: list[tuple[str, float, float, float, str]],
) -> IntervalChart:
    """rows: (label, rate, low, high, rate as text), shares from 0 to 1."""
    span = WIDTH - VALUE_WIDTH - LABEL_WIDTH

    def x_of(share: float) -> float:
        return round(LABEL_WIDTH + span * max(0.0, min(1.0, share)), 1)

    drawn = [
        IntervalRow(
            label=_short(label),
            value_text=text,
            y=8 + index * ROW_HEIGHT + BAR_HEIGHT / 2,
            low_x=x_of(low),
            high_x=x_of(high),
            rate_x=x_of(rate),
        )
        for index, (label, rate, low, high, text) in enumerate(rows)
    ]
    height = 16 + len(rows) * ROW_HEIGHT + 24
    return IntervalChart(
        chart_id=chart_id,
        title=title,
        desc=desc,
        height=height,
        rows=drawn,
        ticks=[Tick(x_of(share), percent_text(share)) for share in (0, 0.25, 0.5, 0.75, 1)],
        middle_x=x_of(0.5),
    )


# --- Grouped vertical bars (an evaluation's word counts) ---------------------------------------

GROUP_BAR_WIDTH = 12
GROUP_GAP = 14
GROUP_PLOT_HEIGHT = 120
GROUP_TOP = 10
GROUP_LABEL_SPACE = 34


def grouped_bar_chart(*, series: Sequence[tuple[str, str]], buckets: dict[str, list[dict]]) -> dict:
    """One group of bars per bucket label, one bar per series (key, name) in each.

    buckets: series key -> [{"label", "count"}...], every series with the same labels in the
    same order. Returns the geometry and the table of counts the template draws beside it.
    """
    labels = [bucket["label"] for bucket in buckets[series[0][0]]]
    highest = max([b["count"] for key, _ in series for b in buckets[key]] or [0])
    group_width = len(series) * GROUP_BAR_WIDTH + GROUP_GAP
    bars, groups, table = [], [], []
    for index, label in enumerate(labels):
        x0 = GROUP_GAP // 2 + index * group_width
        counts = {}
        for position, (key, name) in enumerate(series):
            count = buckets[key][index]["count"]
            counts[key] = count
            height = round(GROUP_PLOT_HEIGHT * count / highest) if highest else 0
            bars.append(
                {
                    "x": x0 + position * GROUP_BAR_WIDTH,
                    "y": GROUP_TOP + GROUP_PLOT_HEIGHT - height,
                    "width": GROUP_BAR_WIDTH - 1,
                    "height": height,
                    "series": key,
                    "title": f"{name}, {label} mots : {count}",
                }
            )
        groups.append({"x": x0 + len(series) * GROUP_BAR_WIDTH / 2, "label": label})
        table.append({"label": label, **counts})
    return {
        "width": len(labels) * group_width + GROUP_GAP,
        "height": GROUP_TOP + GROUP_PLOT_HEIGHT + GROUP_LABEL_SPACE,
        "axis_y": GROUP_TOP + GROUP_PLOT_HEIGHT,
        "label_y": GROUP_TOP + GROUP_PLOT_HEIGHT + 16,
        "bars": bars,
        "groups": groups,
        "table": table,
        "series": [{"key": key, "name": name} for key, name in series],
    }
