"""The partner page's charts, built by pure functions from finished runs.

Each chart is a Plotly figure (``{"data": [...], "layout": {...}}``, drawn by
``static/js/charts.js`` with the Plotly bundle in ``static/vendor``) together with its text
alternative and a table of the same figures, which the page shows when the chart cannot be
drawn and on request. Nothing here touches the database: :func:`run_point` reads one run's
stored roll-ups, the chart functions read a list of those points.

What is drawn (docs/dashboard.md):

- **Latency per endpoint**: p50, p95 and p99 of the successful probe samples of each run,
  the endpoint's latency SLA targets as dashed lines (a step where a target changed), and the
  verdicts that are not ``met``: ``missed`` as a red cross at the measured percentile (on the
  target line when nothing succeeded), ``insufficient samples`` as an open grey circle.
- **Pass rate**: scenarios passed of all scenarios of each run, one line per suite.
- **Error rate**: failed probe requests (no response, or a status not expected) of all probe
  requests, per endpoint.

Cancelled runs are left out: they measured part of a suite. A run whose probes did not reach
an endpoint has no point on its chart (a gap, never a zero).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certification.verdicts import INSUFFICIENT, MET, MISSED
from evidence.svg_charts import format_ms, parse_latency_target

PERCENTILES = ("p50", "p95", "p99")
_COLOURS = {"p50": "#4b6584", "p95": "#0f766e", "p99": "#7c3aed"}
_TARGET = "#c2410c"
_MISSED = "#b91c1c"
_INSUFFICIENT = "#6b7280"
_PALETTE = ("#0f766e", "#4b6584", "#7c3aed", "#b45309", "#be185d", "#15803d", "#1d4ed8")
_FONT = {"family": "DejaVu Sans, system-ui, sans-serif", "size": 12, "color": "#1f2937"}


@dataclass(frozen=True)
class EndpointPoint:
    """One endpoint's probe figures in one run."""

    requests: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None

    def value(self, name: str) -> float | None:
        return getattr(self, name)


@dataclass(frozen=True)
class RunPoint:
    """What the charts need of one finished run."""

    run_id: int
    suite: str
    status: str
    finished_at: dt.datetime
    passed: int
    total: int
    endpoints: Mapping[str, EndpointPoint]
    verdicts: Sequence[Mapping[str, Any]] = ()

    @property
    def at(self) -> str:
        """The x value: UTC ISO 8601 to the second, which Plotly reads as a date."""
        return _fmt(self.finished_at)

    @property
    def label(self) -> str:
        return f"run #{self.run_id} ({self.suite}, {self.status})"


@dataclass
class Chart:
    """A figure, what it shows in words, and the same numbers as a table."""

    id: str
    title: str
    summary: str
    figure: dict[str, Any]
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    @property
    def figure_id(self) -> str:
        """The id of the page element that carries the figure's JSON."""
        return f"{self.id}-figure"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _ms(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def run_point(
    *,
    run_id: int,
    suite: str,
    status: str,
    finished_at: dt.datetime,
    passed: int,
    total: int,
    latency: Mapping[str, Any] | None,
    verdicts: Sequence[Mapping[str, Any]] | None,
) -> RunPoint:
    """A run's point from its stored roll-ups (``Run.latency``, ``Run.sla_verdicts``)."""
    endpoints = {
        str(name): EndpointPoint(
            requests=_int(rollup.get("requests")),
            errors=_int(rollup.get("errors")),
            p50=_ms(rollup.get("p50")),
            p95=_ms(rollup.get("p95")),
            p99=_ms(rollup.get("p99")),
        )
        for name, rollup in (latency or {}).items()
        if isinstance(rollup, Mapping)
    }
    return RunPoint(
        run_id=run_id,
        suite=suite,
        status=status,
        finished_at=finished_at,
        passed=passed,
        total=total,
        endpoints=endpoints,
        verdicts=tuple(v for v in verdicts or () if isinstance(v, Mapping)),
    )


# Runs close together (or a single run) still get a readable time axis: at least this much
# on either side of them, rather than ticks a millisecond apart.
MIN_TIME_PAD = dt.timedelta(minutes=30)


def _fmt(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _layout(
    runs: Sequence[RunPoint], *, y_title: str, y_range: list[float] | None = None
) -> dict[str, Any]:
    """The shared layout: a UTC time axis padded around ``runs``, no title (the page's
    caption is the title), the legend under the plot."""
    yaxis: dict[str, Any] = {"title": {"text": y_title}, "rangemode": "tozero", "zeroline": False}
    if y_range is not None:
        yaxis["range"] = y_range
    first, last = min(p.finished_at for p in runs), max(p.finished_at for p in runs)
    pad = max((last - first) * 0.05, MIN_TIME_PAD)
    return {
        "font": _FONT,
        "xaxis": {
            "title": {"text": "run finished (UTC)"},
            "type": "date",
            "range": [_fmt(first - pad), _fmt(last + pad)],
        },
        "yaxis": yaxis,
        "legend": {"orientation": "h", "y": -0.3},
        "margin": {"l": 56, "r": 16, "t": 12, "b": 56},
        "hovermode": "closest",
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
    }


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "x"


def _ordered(points: Iterable[RunPoint]) -> list[RunPoint]:
    return sorted((p for p in points if p.status != "cancelled"), key=lambda p: p.finished_at)


def _pct(value: float) -> str:
    return f"{value:.1f} %".replace(".0 %", " %")


@dataclass(frozen=True)
class _Target:
    name: str  # "p95"
    label: str  # "p95 ≤ 300 ms"
    threshold_ms: float


def _latency_verdicts(point: RunPoint, endpoint: str) -> list[tuple[Mapping[str, Any], _Target]]:
    found = []
    for verdict in point.verdicts:
        if verdict.get("kind") != "latency" or verdict.get("endpoint") != endpoint:
            continue
        target = parse_latency_target(str(verdict.get("target", "")))
        if target is not None:
            found.append((verdict, _Target(target.short, target.label, target.threshold_ms)))
    return found


def latency_chart(points: Iterable[RunPoint], endpoint: str, *, slot: int = 0) -> Chart | None:
    """p50/p95/p99 of ``endpoint`` over the runs, its targets and breaches; ``None`` when no
    run probed it."""
    runs = [p for p in _ordered(points) if endpoint in p.endpoints]
    if not runs:
        return None
    traces: list[dict[str, Any]] = []
    for name in PERCENTILES:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": [p.at for p in runs],
                "y": [p.endpoints[endpoint].value(name) for p in runs],
                "text": [p.label for p in runs],
                "hovertemplate": f"{name} %{{y:.1f}} ms<br>%{{text}}<br>%{{x}} UTC<extra></extra>",
                "line": {"color": _COLOURS[name], "width": 2},
                "marker": {"size": 5},
                "connectgaps": False,
            }
        )
    # Targets as they were evaluated in each run: one dashed line per target label kind.
    target_lines: dict[str, dict[str, list[Any]]] = {}
    missed: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    insufficient: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    table_targets: dict[int, list[str]] = {}
    breaches = 0
    for point in runs:
        for verdict, target in _latency_verdicts(point, endpoint):
            line = target_lines.setdefault(target.name, {"x": [], "y": [], "text": []})
            line["x"].append(point.at)
            line["y"].append(target.threshold_ms)
            line["text"].append(target.label)
            outcome = str(verdict.get("verdict", ""))
            measured = _ms(verdict.get("measured"))
            table_targets.setdefault(point.run_id, []).append(f"{target.label}: {outcome}")
            where = measured if measured is not None else target.threshold_ms
            why = str(verdict.get("reason") or "")
            text = f"{target.label} {outcome} in {point.label}" + (f": {why}" if why else "")
            if outcome == MISSED:
                breaches += 1
                missed["x"].append(point.at)
                missed["y"].append(where)
                missed["text"].append(text)
            elif outcome == INSUFFICIENT:
                insufficient["x"].append(point.at)
                insufficient["y"].append(where)
                insufficient["text"].append(text)
    layout = _layout(runs, y_title="ms")
    start, end = layout["xaxis"]["range"]
    for name, line in sorted(target_lines.items()):
        # Drawn across the whole axis: from its left edge at the first run's target to the
        # right edge at the last run's, stepping where a run was judged on another target.
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"target {name}",
                "x": [start, *line["x"], end],
                "y": [line["y"][0], *line["y"], line["y"][-1]],
                "text": [line["text"][0], *line["text"], line["text"][-1]],
                "hovertemplate": "target %{text}<extra></extra>",
                "line": {"color": _TARGET, "width": 2, "dash": "dash", "shape": "hv"},
            }
        )
    if missed["x"]:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "SLA missed",
                **missed,
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {"symbol": "x", "size": 12, "color": _MISSED, "line": {"width": 2}},
            }
        )
    if insufficient["x"]:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "insufficient samples",
                **insufficient,
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {"symbol": "circle-open", "size": 11, "color": _INSUFFICIENT},
            }
        )
    title = f"{endpoint}: latency of successful probe requests"
    checked = sum(len(v) for v in table_targets.values())
    if not target_lines:
        verdict_text = "No latency SLA was evaluated for this endpoint."
    elif breaches:
        verdict_text = f"{breaches} of {checked} latency verdicts missed."
    else:
        met = sum(1 for ts in table_targets.values() for t in ts if t.endswith(f": {MET}"))
        verdict_text = f"{met} of {checked} latency verdicts met, none missed."
    summary = (
        f"p50, p95 and p99 in milliseconds of {len(runs)} run{'s' if len(runs) != 1 else ''} "
        f"from {runs[0].at} to {runs[-1].at} UTC. {verdict_text}"
    )
    rows = [
        [
            f"#{p.run_id}",
            p.at,
            p.suite,
            *(format_ms(p.endpoints[endpoint].value(n)) for n in PERCENTILES),
            "; ".join(table_targets.get(p.run_id, [])) or "—",
        ]
        for p in runs
    ]
    return Chart(
        id=f"chart-latency-{slot}-{_slug(endpoint)}",
        title=title,
        summary=summary,
        figure={"data": traces, "layout": layout},
        columns=["Run", "Finished (UTC)", "Suite", "p50", "p95", "p99", "SLA verdicts"],
        rows=rows,
    )


def latency_charts(points: Iterable[RunPoint]) -> list[Chart]:
    """One latency chart per endpoint (and flow) any of the runs probed, by name."""
    points = list(points)
    names = sorted({name for p in _ordered(points) for name in p.endpoints})
    charts = [latency_chart(points, name, slot=slot) for slot, name in enumerate(names)]
    return [c for c in charts if c is not None]


def pass_rate_chart(points: Iterable[RunPoint]) -> Chart | None:
    """Scenarios passed of all scenarios, per run, one line per suite; ``None`` without runs
    that ran scenarios."""
    runs = [p for p in _ordered(points) if p.total > 0]
    if not runs:
        return None
    suites = sorted({p.suite for p in runs})
    traces = []
    for i, suite in enumerate(suites):
        mine = [p for p in runs if p.suite == suite]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": suite,
                "x": [p.at for p in mine],
                "y": [round(100 * p.passed / p.total, 2) for p in mine],
                "text": [f"{p.passed} of {p.total} scenarios passed, {p.label}" for p in mine],
                "hovertemplate": "%{y:.1f} %<br>%{text}<br>%{x} UTC<extra></extra>",
                "line": {"color": _PALETTE[i % len(_PALETTE)], "width": 2},
                "marker": {
                    "size": 8,
                    "symbol": ["circle" if p.status == "passed" else "x" for p in mine],
                },
            }
        )
    passed_runs = sum(1 for p in runs if p.status == "passed")
    title = "Pass rate: scenarios passed per run"
    summary = (
        f"Share of scenarios passed in {len(runs)} run{'s' if len(runs) != 1 else ''} of "
        f"{len(suites)} suite{'s' if len(suites) != 1 else ''}; {passed_runs} of the runs "
        "passed as a whole (a cross marks a run that did not)."
    )
    rows = [
        [f"#{p.run_id}", p.at, p.suite, p.status, f"{p.passed}/{p.total}",
         _pct(100 * p.passed / p.total)]
        for p in runs
    ]  # fmt: skip
    return Chart(
        id="chart-pass-rate",
        title=title,
        summary=summary,
        figure={"data": traces, "layout": _layout(runs, y_title="%", y_range=[0, 105])},
        columns=["Run", "Finished (UTC)", "Suite", "Run verdict", "Scenarios passed", "Rate"],
        rows=rows,
    )


def error_rate_chart(points: Iterable[RunPoint]) -> Chart | None:
    """Failed probe requests of all probe requests per run, one line per endpoint; ``None``
    when no run sent probe requests."""
    runs = [p for p in _ordered(points) if any(e.requests for e in p.endpoints.values())]
    if not runs:
        return None
    names = sorted({n for p in runs for n, e in p.endpoints.items() if e.requests})
    traces = []
    highest = 0.0
    for i, name in enumerate(names):
        mine = [p for p in runs if p.endpoints.get(name) and p.endpoints[name].requests]
        rates = [100 * p.endpoints[name].errors / p.endpoints[name].requests for p in mine]
        highest = max([highest, *rates])
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": [p.at for p in mine],
                "y": [round(r, 3) for r in rates],
                "text": [
                    f"{p.endpoints[name].errors} of {p.endpoints[name].requests} requests "
                    f"failed, {p.label}"
                    for p in mine
                ],
                "hovertemplate": "%{y:.2f} %<br>%{text}<br>%{x} UTC<extra></extra>",
                "line": {"color": _PALETTE[i % len(_PALETTE)], "width": 2},
                "marker": {"size": 6},
            }
        )
    title = "Error rate: failed probe requests per run"
    worst = max(
        ((n, p) for p in runs for n, e in p.endpoints.items() if e.requests),
        key=lambda item: item[1].endpoints[item[0]].errors / item[1].endpoints[item[0]].requests,
    )
    worst_e = worst[1].endpoints[worst[0]]
    summary = (
        f"Share of probe requests that failed (no response, or an unexpected status), per "
        f"endpoint, in {len(runs)} run{'s' if len(runs) != 1 else ''}. "
        + (
            f"Highest: {_pct(100 * worst_e.errors / worst_e.requests)} on {worst[0]} in "
            f"{worst[1].label}."
            if worst_e.errors
            else "No probe request failed."
        )
    )
    rows = [
        [f"#{p.run_id}", p.at, p.suite, name, f"{e.errors}/{e.requests}",
         _pct(100 * e.errors / e.requests)]
        for p in runs
        for name, e in sorted(p.endpoints.items())
        if e.requests
    ]  # fmt: skip
    # A flat 0 % line would sit on the axis: keep some headroom above the highest rate.
    top = max(5.0, min(100.0, highest * 1.2))
    return Chart(
        id="chart-error-rate",
        title=title,
        summary=summary,
        figure={"data": traces, "layout": _layout(runs, y_title="%", y_range=[0, top])},
        columns=["Run", "Finished (UTC)", "Suite", "Endpoint", "Failed requests", "Rate"],
        rows=rows,
    )


def partner_charts(points: Iterable[RunPoint]) -> list[Chart]:
    """Every chart of the partner page, in page order."""
    points = list(points)
    charts = latency_charts(points)
    for chart in (pass_rate_chart(points), error_rate_chart(points)):
        if chart is not None:
            charts.append(chart)
    return charts
