"""The certificate's latency charts: valid, self-describing SVG that shows the samples and the
targets truthfully at the edges (no sample, one sample, one bucket, far-off targets)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from certification.engine.histogram import Histogram
from evidence import svg_charts
from evidence.svg_charts import (
    DISPLAY_BINS,
    LatencyTarget,
    display_bins,
    latency_histogram_svg,
    parse_latency_target,
    percentile_bars_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
P95_300 = LatencyTarget(95.0, 300.0, False, "p95 ≤ 300 ms")


def _histogram(values: list[float]) -> dict[str, Any]:
    histogram = Histogram()
    histogram.record_many(values)
    return histogram.to_dict()


def _spread() -> dict[str, Any]:
    return _histogram([20 + (i % 97) * 3.1 for i in range(2000)])


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def _bars(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("fill") != "#ffffff"]


def _chart(histogram: dict[str, Any], targets: list[LatencyTarget] | None = None) -> str:
    parsed = Histogram.from_dict(histogram)
    svg = latency_histogram_svg(
        histogram,
        title="Latency · orders-api",
        percentiles={f"p{p}": parsed.percentile(p) for p in (50, 95, 99)},
        targets=targets if targets is not None else [P95_300],
    )
    assert svg is not None
    return svg


def test_histogram_chart_is_svg_with_a_title_and_a_description() -> None:
    root = ET.fromstring(_chart(_spread()))

    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text == "Latency · orders-api"
    assert "2,000 successful samples" in root.find(f"{SVG}desc").text


def test_histogram_chart_labels_the_target_line() -> None:
    svg = _chart(_spread())

    assert "target p95 ≤ 300 ms" in _texts(svg)
    assert "target p95 ≤ 300 ms" in ET.fromstring(svg).find(f"{SVG}desc").text


def test_histogram_chart_marks_p50_p95_p99() -> None:
    texts = _texts(_chart(_spread()))

    assert {"p50", "p95", "p99"} <= set(texts)


def test_no_samples_gives_no_chart() -> None:
    empty = Histogram().to_dict()

    assert latency_histogram_svg(empty, title="x", percentiles={}, targets=[P95_300]) is None
    assert percentile_bars_svg({"p50": None, "p95": None}, title="x") is None


def test_one_sample_draws_one_bar_on_a_readable_axis() -> None:
    svg = _chart(_histogram([80.0]), targets=[])

    assert len(_bars(svg)) == 1
    ticks = [t for t in _texts(svg) if re.fullmatch(r"[\d,.]+", t)]
    assert len(ticks) >= 3  # the y axis 0 and 1, and at least one x tick


def test_samples_all_in_one_bucket_are_one_bar_with_their_count() -> None:
    svg = _chart(_histogram([42.0] * 500), targets=[])

    assert len(_bars(svg)) == 1
    assert "500 successful samples" in ET.fromstring(svg).find(f"{SVG}desc").text
    y_ticks = [int(t.replace(",", "")) for t in _texts(svg) if re.fullmatch(r"[\d,]+", t)]
    assert max(y_ticks) >= 500


def test_display_bins_keep_every_sample() -> None:
    histogram = _spread()

    shown = display_bins(histogram)

    assert shown is not None
    axis, bins = shown
    assert len(bins) == DISPLAY_BINS
    assert sum(b.count for b in bins) == 2000
    assert axis.low <= bins[0].low_ms and bins[-1].high_ms <= axis.high


def test_wide_range_uses_a_log_axis_and_narrow_range_a_linear_one() -> None:
    wide = display_bins(_histogram([1.0, 10.0, 100.0, 1000.0]))
    narrow = display_bins(_histogram([100.0, 110.0, 120.0]))

    assert wide is not None and wide[0].log
    assert narrow is not None and not narrow[0].log


def test_far_target_is_shown_off_scale_without_squashing_the_data() -> None:
    far = LatencyTarget(95.0, 60_000.0, False, "p95 ≤ 60,000 ms")
    svg = _chart(_spread(), targets=[far])

    assert "target p95 ≤ 60,000 ms → off scale" in _texts(svg)
    xs = [float(r.get("x")) for r in _bars(svg)]
    assert max(xs) - min(xs) > svg_charts.WIDTH / 2  # the data still spans the plot


def test_target_near_the_data_widens_the_axis_to_show_it() -> None:
    shown = display_bins(_histogram([50.0, 60.0, 70.0]), extra=[150.0])

    assert shown is not None
    assert shown[0].high >= 150.0


def test_partner_text_in_a_chart_is_escaped() -> None:
    title = 'api <script>alert(1)</script> & "x"'
    svg = latency_histogram_svg(_spread(), title=title, percentiles={}, targets=[])

    assert svg is not None
    root = ET.fromstring(svg)  # would raise on unescaped markup
    assert root.find(f"{SVG}title").text == title
    assert not list(root.iter(f"{SVG}script"))


def test_percentile_bars_mark_the_target_on_its_percentile() -> None:
    values = {"p50": 80.0, "p90": 140.0, "p95": 165.0, "p99": 224.0, "max": 390.0}
    svg = percentile_bars_svg(values, title="Percentiles", targets=[P95_300])

    assert svg is not None
    texts = _texts(svg)
    assert {"p50", "p90", "p95", "p99", "max"} <= set(texts)
    assert "target p95 ≤ 300 ms" in texts
    assert "165 ms" in texts


def test_charts_are_the_same_text_for_the_same_input() -> None:
    assert _chart(_spread()) == _chart(_spread())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p95 ≤ 300 ms", (95.0, 300.0, False)),
        ("p95 ≤ 300 ms on orders-api", (95.0, 300.0, False)),
        ("p99 < 800 ms on flow checkout", (99.0, 800.0, True)),
        ("p99.9 <= 1200 ms", (99.9, 1200.0, False)),
        ("p99<0.8s", (99.0, 800.0, True)),
    ],
)
def test_latency_targets_are_read_from_their_description(
    text: str, expected: tuple[float, float, bool]
) -> None:
    target = parse_latency_target(text)

    assert target is not None
    assert (target.percentile, target.threshold_ms, target.strict) == expected


@pytest.mark.parametrize("text", ["uptime ≥ 99.9%", "file daily 02:00–03:00 UTC", "", "p95"])
def test_text_that_is_no_latency_target_gives_none(text: str) -> None:
    assert parse_latency_target(text) is None
