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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certification.verdicts import INSUFFICIENT, MET, MISSED, NOT_MEASURED, is_flow
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
    # Scenarios the engine ran to an outcome (not those a run-level error closed unrun).
    ran: int = 0

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
    ran: int | None = None,
) -> RunPoint:
    """A run's point from its stored roll-ups (``Run.latency``, ``Run.sla_verdicts``).
    ``ran``: scenarios that ran to an outcome (default: all of ``total``)."""
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
        ran=total if ran is None else ran,
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


def _pct(part: int, whole: int) -> str:
    """``part`` of ``whole`` in percent, with as many decimals as it takes never to read 0 %
    when some did, nor 100 % when not all did (1 of 3,000 is 0.03 %, 1,999 of 2,000 99.95 %)."""
    if part <= 0:
        return "0 %"
    if part >= whole:
        return "100 %"
    value = 100 * part / whole
    text = f"{value:.1f}"
    for digits in range(1, 8):
        text = f"{value:.{digits}f}"
        if 0 < float(text) < 100:
            break
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"


def _plain(text: Any) -> str:
    """Text for a Plotly label: Plotly reads a subset of HTML (links, styles) in names and hover
    text, so angle brackets and ampersands in partner-given names are sent as entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(at: dt.datetime) -> str:
    """The page's time format, UTC ISO 8601 to the second (``2026-12-02T10:39:11Z``)."""
    return at.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


_OUTCOME_ORDER = (MISSED, INSUFFICIENT, NOT_MEASURED, MET)


def _outcomes_text(outcomes: list[str]) -> str:
    """``"1 missed, 1 insufficient samples, 2 met (of 4 latency verdicts)."``"""
    counts = Counter(outcomes)
    order = [*_OUTCOME_ORDER, *sorted(set(counts) - set(_OUTCOME_ORDER))]
    parts = [f"{counts[o]} {o}" for o in order if counts[o]]
    if MISSED not in counts:
        parts.insert(0, "0 missed")
    return f"{', '.join(parts)} (of {len(outcomes)} latency verdicts)."


@dataclass(frozen=True)
class _Target:
    sla: str  # the SLA's name: "p95", "p95-orders"
    label: str  # "p95 ≤ 300 ms"
    threshold_ms: float


def _latency_verdicts(point: RunPoint, endpoint: str) -> list[tuple[Mapping[str, Any], _Target]]:
    found = []
    for verdict in point.verdicts:
        if verdict.get("kind") != "latency" or verdict.get("endpoint") != endpoint:
            continue
        target = parse_latency_target(str(verdict.get("target", "")))
        if target is not None:
            sla = str(verdict.get("sla") or target.short)
            found.append((verdict, _Target(sla, target.label, target.threshold_ms)))
    return found


def _target_trace(
    sla: str, runs: Sequence[RunPoint], judged: Mapping[int, _Target], edges: tuple[str, str]
) -> dict[str, Any]:
    """One SLA's target as a dashed step line over the runs judged on it, broken across runs
    that were not, and reaching an edge of the axis only from a first or last run judged."""
    xs: list[Any] = []
    ys: list[float | None] = []
    texts: list[str] = []
    for point in runs:
        target = judged.get(point.run_id)
        xs.append(point.at)
        ys.append(target.threshold_ms if target else None)
        texts.append(_plain(f"{sla}: {target.label}") if target else "")
    if ys[0] is not None:
        xs, ys, texts = [edges[0], *xs], [ys[0], *ys], [texts[0], *texts]
    if ys[-1] is not None:
        xs, ys, texts = [*xs, edges[1]], [*ys, ys[-1]], [*texts, texts[-1]]
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": _plain(f"target {sla}"),
        "x": xs,
        "y": ys,
        "text": texts,
        "hovertemplate": "target %{text}<extra></extra>",
        "line": {"color": _TARGET, "width": 2, "dash": "dash", "shape": "hv"},
        # A run judged alone between runs that were not still shows its target.
        "marker": {"symbol": "line-ew-open", "size": 14, "color": _TARGET},
        "connectgaps": False,
    }


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
                "text": [_plain(p.label) for p in runs],
                "hovertemplate": f"{name} %{{y:.4~g}} ms<br>%{{text}}<br>%{{x}} UTC<extra></extra>",
                "line": {"color": _COLOURS[name], "width": 2},
                "marker": {"size": 5},
                "connectgaps": False,
            }
        )
    # Each SLA's target as it was evaluated in each run: SLA name -> run id -> target.
    judged: dict[str, dict[int, _Target]] = {}
    missed: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    insufficient: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    table_targets: dict[int, list[str]] = {}
    outcomes: list[str] = []
    for point in runs:
        for verdict, target in _latency_verdicts(point, endpoint):
            judged.setdefault(target.sla, {})[point.run_id] = target
            outcome = str(verdict.get("verdict", "")) or NOT_MEASURED
            outcomes.append(outcome)
            measured = _ms(verdict.get("measured"))
            table_targets.setdefault(point.run_id, []).append(
                f"{target.sla} ({target.label}): {outcome}"
            )
            where = measured if measured is not None else target.threshold_ms
            why = str(verdict.get("reason") or "")
            text = _plain(
                f"{target.sla} ({target.label}) {outcome} in {point.label}"
                + (f": {why}" if why else "")
            )
            marks = {MISSED: missed, INSUFFICIENT: insufficient}.get(outcome)
            if marks is not None:
                marks["x"].append(point.at)
                marks["y"].append(where)
                marks["text"].append(text)
    layout = _layout(runs, y_title="ms")
    edges = tuple(layout["xaxis"]["range"])
    for sla, by_run in sorted(judged.items()):
        traces.append(_target_trace(sla, runs, by_run, edges))  # type: ignore[arg-type]
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
    if not outcomes:
        verdict_text = "No latency SLA was evaluated for this endpoint."
    else:
        verdict_text = _outcomes_text(outcomes)
    summary = (
        f"p50, p95 and p99 in milliseconds of {len(runs)} run{'s' if len(runs) != 1 else ''} "
        f"from {_iso(runs[0].finished_at)} to {_iso(runs[-1].finished_at)}. {verdict_text}"
    )
    rows = [
        [
            f"#{p.run_id}",
            p.finished_at,
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
    that ran scenarios. A run that ran none (a run-level error before any scenario ran, such as
    a suite that no longer parses) has no point: it measured nothing about the partner."""
    runs = [p for p in _ordered(points) if p.total > 0 and p.ran > 0]
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
                "name": _plain(suite),
                "x": [p.at for p in mine],
                "y": [round(100 * p.passed / p.total, 3) for p in mine],
                "text": [
                    _plain(
                        f"{_pct(p.passed, p.total)}: {p.passed} of {p.total} scenarios "
                        f"passed, {p.label}"
                    )
                    for p in mine
                ],  # fmt: skip
                "hovertemplate": "%{text}<br>%{x} UTC<extra></extra>",
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
        [f"#{p.run_id}", p.finished_at, p.suite, p.status, f"{p.passed}/{p.total}",
         _pct(p.passed, p.total)]
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


def _probed(point: RunPoint) -> list[tuple[str, EndpointPoint]]:
    """The endpoints a run's probes sent requests to, by name. Flows are left out: a flow's
    requests are already counted under the endpoints they went to."""
    return [(n, e) for n, e in sorted(point.endpoints.items()) if e.requests and not is_flow(n)]


def error_rate_chart(points: Iterable[RunPoint]) -> Chart | None:
    """Failed probe requests of all probe requests per run, one line per endpoint; ``None``
    when no run sent probe requests."""
    runs = [p for p in _ordered(points) if _probed(p)]
    if not runs:
        return None
    names = sorted({n for p in runs for n, _ in _probed(p)})
    traces = []
    highest = 0.0
    for i, name in enumerate(names):
        mine = [(p, p.endpoints[name]) for p in runs if name in dict(_probed(p))]
        rates = [100 * e.errors / e.requests for _, e in mine]
        highest = max([highest, *rates])
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _plain(name),
                "x": [p.at for p, _ in mine],
                "y": [round(r, 4) for r in rates],
                "text": [
                    _plain(
                        f"{_pct(e.errors, e.requests)}: {e.errors} of {e.requests} "
                        f"requests failed, {p.label}"
                    )
                    for p, e in mine
                ],  # fmt: skip
                "hovertemplate": "%{text}<br>%{x} UTC<extra></extra>",
                "line": {"color": _PALETTE[i % len(_PALETTE)], "width": 2},
                "marker": {"size": 6},
            }
        )
    title = "Error rate: failed probe requests per run"
    worst_name, worst_point, worst = max(
        ((n, p, e) for p in runs for n, e in _probed(p)),
        key=lambda item: item[2].errors / item[2].requests,
    )
    summary = (
        f"Share of probe requests that failed (no response, or an unexpected status), per "
        f"endpoint, in {len(runs)} run{'s' if len(runs) != 1 else ''}. "
        + (
            f"Highest: {_pct(worst.errors, worst.requests)} on {worst_name} in {worst_point.label}."
            if worst.errors
            else "No probe request failed."
        )
    )
    rows = [
        [f"#{p.run_id}", p.finished_at, p.suite, name, f"{e.errors}/{e.requests}",
         _pct(e.errors, e.requests)]
        for p in runs
        for name, e in _probed(p)
    ]  # fmt: skip
    # Headroom above the highest rate (a flat 0 % line would sit on the axis, a 100 % point
    # on the top edge).
    top = max(5.0, min(105.0, highest * 1.2))
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
