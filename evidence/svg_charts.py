"""Latency charts for the certificate, as standalone SVG documents drawn without a browser.

Pure functions: the same input gives the same SVG text, byte for byte (numbers are written with
a fixed precision, nothing depends on the clock, locale or hash order), which keeps the PDF they
end up in deterministic. Every piece of text (endpoint names come from the partner registry) is
XML-escaped, and the SVG references nothing outside itself, so it can be embedded as a
``data:`` URL that the PDF renderer draws without fetching anything.

Two charts per (run, endpoint):

- :func:`latency_histogram_svg`: the distribution of successful samples, the run's log
  histogram (``certification.engine.histogram``) merged into about :data:`DISPLAY_BINS` display
  bins on a linear or logarithmic millisecond axis, with p50/p95/p99 markers and each latency
  SLA target drawn as a labelled line (an arrow at the edge when the target is far outside the
  data).
- :func:`percentile_bars_svg`: p50/p90/p95/p99/max as bars, each target marked on the bar of
  its percentile.

Both return ``None`` when there is nothing to draw (no successful sample); the caller says so
in words instead. Each SVG carries a ``<title>`` and a ``<desc>`` summarising it in text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from certification.engine.histogram import Histogram

DISPLAY_BINS = 36
WIDTH, HEIGHT = 680, 250
# A target within this factor of the data range widens the axis to show it; further away it is
# drawn as an arrow at the edge, so that one far-off target cannot squash the data to a line.
TARGET_REACH = 3.0
# A data range narrower than this ratio (one sample, everything in one bucket) is widened
# around its centre to +-20 %, so the bars have a readable axis.
MIN_SPAN_RATIO = 1.05
# At or above this max/min ratio the axis is logarithmic.
LOG_SPAN_RATIO = 8.0

_FONT = 'font-family="DejaVu Sans, sans-serif"'
_BAR = "#4b6584"  # neutral slate: the charts state values, the verdict table judges them
_MARKER = "#1f2937"
_TARGET = "#c2410c"
_GRID = "#d1d5db"

_TARGET_RE = re.compile(
    r"^\s*p(?P<pct>\d{1,2}(?:\.\d+)?)\s*(?P<op>≤|<=|<)\s*(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>ms|s)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LatencyTarget:
    """A latency SLA target: ``percentile`` (95.0) at most ``threshold_ms`` (below it when
    ``strict``)."""

    percentile: float
    threshold_ms: float
    strict: bool
    label: str

    @property
    def short(self) -> str:
        return f"p{_num(self.percentile)}"


def parse_latency_target(text: str) -> LatencyTarget | None:
    """``"p95 ≤ 300 ms on orders"`` -> ``LatencyTarget(95, 300, False, "p95 ≤ 300 ms")``.

    Reads the text ``partners.sla.describe`` writes (and the registry grammar, ``p99<0.8s``);
    ``None`` for anything else, so that a target that cannot be read is left off the chart
    rather than drawn in the wrong place.
    """
    match = _TARGET_RE.match(text or "")
    if match is None:
        return None
    pct = float(match["pct"])
    threshold = float(match["num"].replace(",", ".")) * (1000 if match["unit"] == "s" else 1)
    if not 0 < pct < 100 or threshold <= 0:
        return None
    below = "<" if match["op"] == "<" else "≤"
    label = f"p{_num(pct)} {below} {_num(threshold)} ms"
    return LatencyTarget(pct, threshold, match["op"] == "<", label)


@dataclass(frozen=True)
class Bin:
    """One display bin: samples in [low_ms, high_ms)."""

    low_ms: float
    high_ms: float
    count: int


@dataclass(frozen=True)
class Axis:
    """A millisecond axis from ``low`` to ``high``, logarithmic or linear."""

    low: float
    high: float
    log: bool

    def fraction(self, value: float) -> float:
        """Where ``value`` falls, 0 at ``low`` and 1 at ``high`` (unclamped)."""
        if self.log:
            value = max(value, 1e-9)
            return (math.log(value) - math.log(self.low)) / (
                math.log(self.high) - math.log(self.low)
            )
        return (value - self.low) / (self.high - self.low)

    def value(self, fraction: float) -> float:
        if self.log:
            return math.exp(
                math.log(self.low) + fraction * (math.log(self.high) - math.log(self.low))
            )
        return self.low + fraction * (self.high - self.low)

    def ticks(self) -> list[float]:
        """Round values inside the axis for labels: 1-2-5 steps on a log axis."""
        if self.log:
            ticks = []
            exponent = math.floor(math.log10(self.low))
            while 10**exponent <= self.high * 1.0001:
                for mantissa in (1, 2, 5):
                    tick = mantissa * 10**exponent
                    if self.low <= tick <= self.high:
                        ticks.append(tick)
                exponent += 1
            if len(ticks) > 9:  # a very wide range: powers of ten only
                ticks = [t for t in ticks if _is_power_of_ten(t)]
            return ticks
        return _nice_ticks(self.low, self.high)


def _is_power_of_ten(value: float) -> bool:
    exponent = math.log10(value)
    return abs(exponent - round(exponent)) < 1e-9


def _nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    tick = first
    while tick <= high + step * 1e-9:
        ticks.append(round(tick, 9))
        tick += step
    return ticks


def _samples_range(histogram: Histogram) -> tuple[float, float]:
    """The smallest and largest sample: the recorded min/max, else the bucket edges."""
    indexes = sorted(histogram.counts)
    low_edge = 0.001 * math.exp(indexes[0] * math.log1p(0.001))
    high_edge = 0.001 * math.exp((indexes[-1] + 1) * math.log1p(0.001))
    low = histogram.min if math.isfinite(histogram.min) and histogram.min > 0 else low_edge
    high = histogram.max if histogram.max > 0 else high_edge
    return min(low, high), max(low, high)


def _bucket_mid(index: int) -> float:
    return 0.001 * math.exp((index + 0.5) * math.log1p(0.001))


def display_bins(
    histogram: Mapping[str, Any], *, bins: int = DISPLAY_BINS, extra: Sequence[float] = ()
) -> tuple[Axis, list[Bin]] | None:
    """The axis to draw ``histogram`` (``Histogram.to_dict`` form) on, and its samples merged
    into ``bins`` equal-width bins (in axis units) over the data range. ``extra`` values
    (targets) widen the axis when within :data:`TARGET_REACH` of the data. ``None`` when the
    histogram holds no sample."""
    parsed = Histogram.from_dict(dict(histogram))
    if not parsed.count or not parsed.counts:
        return None
    data_low, data_high = _samples_range(parsed)
    if data_high / data_low < MIN_SPAN_RATIO:
        centre = (data_low + data_high) / 2
        data_low, data_high = centre * 0.8, centre * 1.2
    low, high = data_low, data_high
    for value in extra:
        if low / TARGET_REACH <= value <= high * TARGET_REACH:
            low, high = min(low, value), max(high, value)
    log = high / low >= LOG_SPAN_RATIO
    if log:
        axis = Axis(low / 1.15, high * 1.15, True)
    else:
        pad = (high - low) * 0.06
        axis = Axis(max(low - pad, 0.0), high + pad, False)
    data_axis = Axis(data_low, data_high, log)
    counts = [0] * bins
    for index, n in parsed.counts.items():
        where = data_axis.fraction(min(max(_bucket_mid(index), data_low), data_high))
        counts[min(max(int(where * bins), 0), bins - 1)] += n
    edges = [data_axis.value(i / bins) for i in range(bins + 1)]
    return axis, [Bin(edges[i], edges[i + 1], counts[i]) for i in range(bins)]


# ----------------------------------------------------------------------------- drawing


def _num(value: float) -> str:
    """A number as a person reads it: 300, 12.5, 0.532, 1,234."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}" if value == round(value) else f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.1f}".removesuffix(".0")
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_ms(value: float | None) -> str:
    """``"165 ms"``, ``"0.532 ms"``; an em dash for no value."""
    return "—" if value is None else f"{_num(value)} ms"


def _f(value: float) -> str:
    """Coordinates with a fixed precision, so the same chart is the same text."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _text(
    x: float, y: float, content: str, *, size: int = 9, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(content)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return (
        f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{colour}"{extra}/>'
    )


def _document(title: str, desc: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        f"{_FONT}>"
        f'<title id="chart-title">{escape(title)}</title>'
        f'<desc id="chart-desc">{escape(desc)}</desc>'
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>'
        + "".join(body)
        + "</svg>"
    )


class _Rows:
    """Label rows above the plot: a label goes to the first row where it does not overlap."""

    def __init__(self, top: float, rows: int = 3, gap: float = 11) -> None:
        self.ends = [-math.inf] * rows
        self.top, self.gap = top, gap

    def place(self, x: float, text: str) -> tuple[float, float, str]:
        width = 5.4 * len(text) + 6
        anchor = "start"
        left = x + 3
        if left + width > WIDTH - 8:  # near the right edge: write it leftwards of the line
            anchor, left = "end", x - 3
            start = left - width
        else:
            start = left
        for row, end in enumerate(self.ends):
            if start > end:
                self.ends[row] = start + width
                return left, self.top + row * self.gap, anchor
        return left, self.top + (len(self.ends) - 1) * self.gap, anchor


def latency_histogram_svg(
    histogram: Mapping[str, Any],
    *,
    title: str,
    percentiles: Mapping[str, float | None],
    targets: Sequence[LatencyTarget] = (),
) -> str | None:
    """The latency distribution of one endpoint as an SVG document; ``None`` with no sample.

    ``percentiles`` maps labels (``"p50"``) to values in ms, drawn as dashed markers;
    ``targets`` are drawn as solid labelled lines ("target p95 ≤ 300 ms"), or as an arrow at
    the edge of the plot when far outside the data.
    """
    shown = display_bins(histogram, extra=[t.threshold_ms for t in targets])
    if shown is None:
        return None
    axis, bins = shown
    count = int(histogram.get("count") or sum(b.count for b in bins))
    left, right, top, bottom = 58.0, WIDTH - 18.0, 62.0, HEIGHT - 42.0
    plot_w, plot_h = right - left, bottom - top

    def x_of(value: float) -> float:
        return left + axis.fraction(value) * plot_w

    # The y axis runs to the first round number at or above the tallest bar.
    peak = max(b.count for b in bins) or 1
    y_ticks = [t for t in _nice_ticks(0, peak, count=4) if t == int(t)]
    if y_ticks[-1] < peak:
        y_ticks.append(y_ticks[-1] + (y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else peak))
    peak = y_ticks[-1]
    body = [_text(left, 16, title, size=11, font_weight="bold")]
    # Grid and y axis (samples per bin).
    for tick in y_ticks:
        y = bottom - tick / peak * plot_h
        body.append(_line(left, y, right, y, _GRID, stroke_width="0.6"))
        body.append(_text(left - 5, y + 3, _num(tick), size=8, anchor="end"))
    body.append(
        _text(14, top + plot_h / 2, "samples per bin", size=8, anchor="middle",
              transform=f"rotate(-90 14 {_f(top + plot_h / 2)})")
    )  # fmt: skip
    # Bars.
    for b in bins:
        if not b.count:
            continue
        x1, x2 = x_of(b.low_ms), x_of(b.high_ms)
        height = max(b.count / peak * plot_h, 0.8)
        body.append(
            f'<rect x="{_f(x1)}" y="{_f(bottom - height)}" width="{_f(max(x2 - x1 - 0.6, 0.8))}" '
            f'height="{_f(height)}" fill="{_BAR}"/>'
        )
    # X axis.
    body.append(_line(left, bottom, right, bottom, _MARKER, stroke_width="0.8"))
    for tick in axis.ticks():
        x = x_of(tick)
        body.append(_line(x, bottom, x, bottom + 4, _MARKER, stroke_width="0.8"))
        body.append(_text(x, bottom + 14, _num(tick), size=8, anchor="middle"))
    scale = "log scale" if axis.log else "linear scale"
    body.append(
        _text(left + plot_w / 2, HEIGHT - 8, f"latency of successful requests, ms ({scale})",
              size=8, anchor="middle")
    )  # fmt: skip
    # Markers and targets, labels in rows above the plot.
    rows = _Rows(top - 30)
    marks = [(v, name, False) for name, v in percentiles.items() if v is not None]
    marks += [(t.threshold_ms, f"target {t.label}", True) for t in targets]
    for value, label, is_target in sorted(marks, key=lambda m: (m[0], m[1])):
        colour = _TARGET if is_target else _MARKER
        fraction = axis.fraction(value)
        if is_target and not 0 <= fraction <= 1:
            edge = right if fraction > 1 else left
            arrow = "→" if fraction > 1 else "←"
            text = f"{label} {arrow} off scale" if fraction > 1 else f"{arrow} {label} off scale"
            lx, ly, anchor = rows.place(edge, text)
            body.append(_text(lx, ly, text, size=8, anchor=anchor, fill=colour))
            continue
        x = x_of(min(max(value, axis.low), axis.high))
        lx, ly, anchor = rows.place(x, label)
        dash = {} if is_target else {"stroke_dasharray": "3 2"}
        body.append(_line(x, ly + 2, x, bottom, colour, stroke_width="1.2", **dash))
        body.append(_text(lx, ly, label, size=8, anchor=anchor, fill=colour))
    marks_text = ", ".join(f"{k} {format_ms(v)}" for k, v in percentiles.items() if v is not None)
    targets_text = "; ".join(f"target {t.label}" for t in targets) or "no latency target"
    low = bins[0].low_ms
    high = bins[-1].high_ms
    desc = (
        f"Histogram of {count:,} successful samples from {format_ms(low)} to "
        f"{format_ms(high)} in {len(bins)} bins ({scale}); {marks_text}; {targets_text}."
    )
    return _document(title, desc, body)


PERCENTILE_ROWS = ("p50", "p90", "p95", "p99", "max")


def percentile_bars_svg(
    values: Mapping[str, float | None],
    *,
    title: str,
    targets: Sequence[LatencyTarget] = (),
) -> str | None:
    """p50/p90/p95/p99/max of one endpoint as horizontal bars, each target marked on its
    percentile's bar (or across all bars when no bar has that percentile); ``None`` when no
    value is known."""
    rows = [(name, values.get(name)) for name in PERCENTILE_ROWS if values.get(name) is not None]
    if not rows:
        return None
    row_h = 20.0
    # Bars on the left, target labels in a column of their own on the right.
    left, right, top = 60.0, WIDTH - 210.0, 30.0
    label_x = right + 52
    height = int(top + row_h * len(rows) + 40)
    bottom = top + row_h * len(rows)
    data_max = max(v for _, v in rows if v is not None) or 1.0
    reach = [t.threshold_ms for t in targets if t.threshold_ms <= data_max * TARGET_REACH]
    axis = Axis(0.0, max([data_max, *reach]) * 1.08, False)

    def x_of(value: float) -> float:
        return left + min(axis.fraction(value), 1.0) * (right - left)

    body = [_text(left, 16, title, size=11, font_weight="bold")]
    for tick in axis.ticks():
        x = x_of(tick)
        body.append(_line(x, top - 2, x, bottom, _GRID, stroke_width="0.6"))
        body.append(_text(x, bottom + 12, _num(tick), size=8, anchor="middle"))
    body.append(
        _text((left + right) / 2, bottom + 28, "latency, ms (linear scale)", size=8,
              anchor="middle")
    )  # fmt: skip
    row_of = {name: i for i, (name, _) in enumerate(rows)}
    for i, (name, value) in enumerate(rows):
        assert value is not None
        y = top + i * row_h
        body.append(_text(left - 6, y + row_h / 2 + 3, name, size=9, anchor="end"))
        body.append(
            f'<rect x="{_f(left)}" y="{_f(y + 4)}" width="{_f(max(x_of(value) - left, 0.8))}" '
            f'height="{_f(row_h - 8)}" fill="{_BAR}"/>'
        )
        body.append(_text(x_of(value) + 4, y + row_h / 2 + 3, format_ms(value), size=8))
    for target in targets:
        row = row_of.get(target.short)
        y1, y2 = (top, bottom) if row is None else (top + row * row_h, top + (row + 1) * row_h)
        label = f"target {target.label}"
        if target.threshold_ms > axis.high:
            body.append(_text(label_x, (y1 + y2) / 2 + 3, f"{label} → off scale", size=7,
                              fill=_TARGET))  # fmt: skip
            continue
        x = x_of(target.threshold_ms)
        body.append(_line(x, y1 + 1, x, y2 - 1, _TARGET, stroke_width="2"))
        body.append(_text(label_x, (y1 + y2) / 2 + 3, label, size=8, fill=_TARGET))
    values_text = ", ".join(f"{name} {format_ms(v)}" for name, v in rows)
    targets_text = "; ".join(f"target {t.label}" for t in targets) or "no latency target"
    desc = f"Latency percentiles of successful requests: {values_text}; {targets_text}."
    return _document(title, desc, body, height=height)
