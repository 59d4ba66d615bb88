"""What the run page shows, read from a run in a fixed number of queries.

Pure builders over plain rows (progress, grouping by MAE kind, endpoint latency rows, the
comparison of two runs) and the few selectors that fetch those rows. Nothing here depends on
how many scenarios or steps a run has: each selector is one query, whatever their number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from certification.models import SUITE_BODY, Run, ScenarioRun, StepResult
from certification.verdicts import sla_label
from evidence.svg_charts import LatencyTarget, latency_histogram_svg, parse_latency_target

S = ScenarioRun.Status
FAILING = frozenset({S.FAILED, S.ERROR, S.UNEVALUATED})
OPEN = frozenset({S.QUEUED, S.RUNNING})
# Scenarios per group shown at once (failing first); the rest come a page at a time.
PAGE_SIZE = 100
# Failing scenarios whose steps come with the page; further failing ones load when opened.
INLINE_FAILING = 20
# MAE order; any other kind of SCENARIO_KINDS (``cross``), or a stored one not known today,
# comes after, by name.
KIND_ORDER = ("main", "alt", "exception")
KIND_LABELS = {"main": "Main", "alt": "Alternate", "exception": "Exception", "cross": "Cross"}
# One character per scenario in the live poll: its status, in scenario order.
STATUS_CODES = {
    S.QUEUED: "q", S.RUNNING: "r", S.PASSED: "p", S.FAILED: "f", S.ERROR: "e",
    S.CANCELLED: "c", S.UNEVALUATED: "u",
}  # fmt: skip
PRECISION_TEXT = (
    "Percentiles are read by nearest rank from a log histogram with 0.1 % buckets: each figure "
    "is within 0.1 % of a real sample of successful requests."
)
PERCENTILES = ("p50", "p90", "p95", "p99", "max")


# ----------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """The header of the run page."""

    status: str  # what the page says: never "queued" while a scenario runs or is done
    total: int
    done: int
    counts: dict[str, int]
    elapsed_s: float | None
    live: bool
    codes: str  # STATUS_CODES of every scenario, by index

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def status_label(self) -> str:
        return S(self.status).label

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def passed(self) -> int:
        return self.count(S.PASSED)

    @property
    def failed(self) -> int:
        return self.count(S.FAILED)

    @property
    def errored(self) -> int:
        return self.count(S.ERROR)

    @property
    def unevaluated(self) -> int:
        return self.count(S.UNEVALUATED)

    @property
    def cancelled(self) -> int:
        return self.count(S.CANCELLED)

    @property
    def running(self) -> int:
        return self.count(S.RUNNING)


def progress_of(
    run: Run, statuses: Sequence[tuple[int, str]], *, now: dt.datetime | None = None
) -> Progress:
    """``statuses`` are (index, status) of every scenario run of ``run``, in index order."""
    counts: dict[str, int] = {}
    for _, status in statuses:
        counts[status] = counts.get(status, 0) + 1
    open_now = any(counts.get(s) for s in OPEN)
    done = sum(n for s, n in counts.items() if s not in OPEN)
    status = run.status
    if status == S.QUEUED and (counts.get(S.RUNNING) or done):
        status = S.RUNNING
    start = run.started_at or run.created_at
    end = run.finished_at if run.is_finished and not open_now else (now or timezone.now())
    elapsed = max((end - start).total_seconds(), 0.0) if start else None
    return Progress(
        status=status,
        total=len(statuses) or run.scenarios_total,
        done=done,
        counts=counts,
        elapsed_s=elapsed,
        # A cancelled run is finished while scenarios already on a worker still complete:
        # keep following it until nothing is queued or running.
        live=not run.is_finished or open_now,
        codes="".join(STATUS_CODES.get(s, "?") for _, s in statuses),
    )


def run_progress(run: Run) -> Progress:
    statuses = list(run.scenario_runs.order_by("index").values_list("index", "status"))
    return progress_of(run, statuses)


# ----------------------------------------------------------------------------- scenarios


@dataclass
class Group:
    kind: str
    label: str
    rows: list[ScenarioRun] = field(default_factory=list)
    total: int = 0
    failing: int = 0

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def kind_rank(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind), "") if kind in KIND_ORDER else (len(KIND_ORDER), kind)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize() or "Other")


def scenario_order(sr: ScenarioRun) -> tuple[int, int]:
    """Failing scenarios first, then by their place in the suite."""
    return (0 if sr.status in FAILING else 1, sr.index)


def group_scenarios(
    scenario_runs: Iterable[ScenarioRun], *, page_size: int | None = None
) -> list[Group]:
    """Scenarios grouped by MAE kind (Main, Alternate, Exception, then any other kind by name),
    each group failing first and cut to ``page_size``."""
    groups: dict[str, Group] = {}
    for sr in scenario_runs:
        kind = sr.scenario.kind
        group = groups.setdefault(kind, Group(kind=kind, label=kind_label(kind)))
        group.rows.append(sr)
        group.total += 1
        group.failing += sr.status in FAILING
    for group in groups.values():
        group.rows.sort(key=scenario_order)
        del group.rows[page_size or PAGE_SIZE :]
    return sorted(groups.values(), key=lambda g: kind_rank(g.kind))


def scenario_runs_listed(run: Run) -> QuerySet[ScenarioRun]:
    """The scenario runs with what their summary line needs (one query, no steps)."""
    return (
        run.scenario_runs.select_related("scenario")
        .only(
            "id",
            "run_id",
            "index",
            "status",
            "attempts",
            "duration_ms",
            "scenario__code",
            "scenario__name",
            "scenario__kind",
        )  # fmt: skip
        .order_by("index")
    )


def attach_steps(scenario_runs: Sequence[ScenarioRun], *, inline: Iterable[int]) -> None:
    """Give the scenario runs with ids in ``inline`` their steps that did not pass (two queries
    for all of them), as ``sr.step_rows``, and ``sr.steps_hidden``, how many passed steps were
    left out (they load with the rest on demand). The others get ``None``: their steps load
    when opened."""
    wanted = set(inline)
    steps: dict[int, list[StepResult]] = {pk: [] for pk in wanted}
    totals: dict[int, int] = {}
    if wanted:
        mine = StepResult.objects.filter(scenario_run_id__in=wanted)
        totals = dict(
            mine.order_by().values_list("scenario_run_id").annotate(n=Count("id"))  # type: ignore[arg-type]
        )
        problems = mine.exclude(status=StepResult.Status.PASSED)
        for step in problems.order_by("scenario_run_id", "step_index", "iteration"):
            steps[step.scenario_run_id].append(step)
    for sr in scenario_runs:
        sr.step_rows = steps.get(sr.pk)  # type: ignore[attr-defined]
        shown = len(sr.step_rows or ())  # type: ignore[attr-defined]
        sr.steps_hidden = totals.get(sr.pk, 0) - shown  # type: ignore[attr-defined]
        sr.failing = sr.status in FAILING  # type: ignore[attr-defined]


def inline_ids(scenario_runs: Iterable[ScenarioRun], *, limit: int = INLINE_FAILING) -> list[int]:
    """The failing scenarios whose steps come with the page (they are shown open)."""
    return [sr.pk for sr in scenario_runs if sr.status in FAILING][:limit]


# ----------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class EndpointLatency:
    name: str
    requests: int
    ok: int
    errors: int
    errors_by_kind: dict[str, int]
    values: dict[str, float | None]
    verdicts: list[dict[str, Any]]
    svg: SafeString | None

    @property
    def percentiles(self) -> list[tuple[str, float | None]]:
        return [(name, self.values.get(name)) for name in PERCENTILES]


def _targets(verdicts: Iterable[Mapping[str, Any]]) -> list[LatencyTarget]:
    targets = []
    for verdict in verdicts:
        if verdict.get("kind") == "latency":
            target = parse_latency_target(str(verdict.get("target", "")))
            if target is not None and target not in targets:
                targets.append(target)
    return targets


def _svg(rollup: Mapping[str, Any], *, name: str, slot: int, targets: list[LatencyTarget]) -> Any:
    histogram = rollup.get("histogram")
    if not histogram or not histogram.get("count"):
        return None
    svg = latency_histogram_svg(
        histogram,
        title=f"{name}: latency of {int(histogram['count']):,} successful requests",
        percentiles={k: rollup.get(k) for k in ("p50", "p95", "p99")},
        targets=targets,
    )
    if svg is None:
        return None
    # Several charts on one page: their title/desc ids must differ.
    svg = (
        svg.replace('"chart-title', f'"chart-title-{slot}')
        .replace('"chart-desc', f'"chart-desc-{slot}')
        .replace("chart-title chart-desc", f"chart-title-{slot} chart-desc-{slot}")
    )
    return mark_safe(svg)  # built by svg_charts, every text in it XML-escaped


def endpoint_latency_rows(run: Run) -> list[EndpointLatency]:
    """One row per endpoint (and flow) the run's probes measured, with its SLA verdicts."""
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for verdict in run.sla_verdicts or []:
        by_endpoint.setdefault(verdict.get("endpoint") or "", []).append(verdict)
    rows = []
    for slot, (name, rollup) in enumerate(sorted((run.latency or {}).items())):
        verdicts = by_endpoint.get(name, [])
        rows.append(
            EndpointLatency(
                name=name,
                requests=int(rollup.get("requests", 0)),
                ok=int(rollup.get("ok", 0)),
                errors=int(rollup.get("errors", 0)),
                errors_by_kind=dict(rollup.get("errors_by_kind") or {}),
                values={k: rollup.get(k) for k in PERCENTILES},
                verdicts=verdicts,
                svg=_svg(rollup, name=name, slot=slot, targets=_targets(verdicts)),
            )
        )
    return rows


def verdict_rows(run: Run) -> list[dict[str, Any]]:
    return [{**v, "label": sla_label(v)} for v in run.sla_verdicts or []]


# ----------------------------------------------------------------------------- comparison


def previous_run(run: Run, runs: QuerySet[Run]) -> Run | None:
    """The last finished, not cancelled run of the same partner and suite name started before
    ``run``, among ``runs`` (those the user may see). A cancelled run is no verdict, here as on
    the overview (``certification.standing``) and in the evidence review."""
    return (
        runs.filter(
            partner_id=run.partner_id,
            suite__name=run.suite.name,
            status__in=Run.FINISHED,
            created_at__lte=run.created_at,
        )
        .exclude(status=Run.Status.CANCELLED)
        .exclude(pk=run.pk)
        .exclude(created_at=run.created_at, pk__gt=run.pk)
        .select_related("partner", "suite")
        .defer(*(f"suite__{name}" for name in SUITE_BODY))
        .order_by("-created_at", "-id")
        .first()
    )


def _key(code: str, name: str) -> str:
    return f"code:{code}" if code else f"name:{name}"


@dataclass(frozen=True)
class ScenarioChange:
    code: str
    name: str
    before: str | None  # None: not in that run
    after: str | None

    @property
    def before_label(self) -> str:
        return S(self.before).label if self.before else ""

    @property
    def after_label(self) -> str:
        return S(self.after).label if self.after else ""


@dataclass(frozen=True)
class LatencyDelta:
    endpoint: str
    before: dict[str, float | None]
    after: dict[str, float | None]

    def rows(self) -> list[tuple[str, float | None, float | None, float | None]]:
        out = []
        for name in ("p50", "p95", "p99"):
            old, new = self.before.get(name), self.after.get(name)
            diff = round(new - old, 3) if old is not None and new is not None else None
            out.append((name, old, new, diff))
        return out


@dataclass
class Comparison:
    newly_failing: list[ScenarioChange] = field(default_factory=list)
    fixed: list[ScenarioChange] = field(default_factory=list)
    still_failing: list[ScenarioChange] = field(default_factory=list)
    unchanged: int = 0
    latency: list[LatencyDelta] = field(default_factory=list)


def _outcomes(run: Run) -> dict[str, tuple[str, str, str]]:
    rows = run.scenario_runs.order_by("index").values_list(
        "scenario__code", "scenario__name", "status"
    )
    return {_key(code, name): (code, name, status) for code, name, status in rows}


def compare_outcomes(
    before: Mapping[str, tuple[str, str, str]], after: Mapping[str, tuple[str, str, str]]
) -> Comparison:
    """Scenarios matched by code, else name. Failing is failed, error or not evaluated; a
    scenario new in the later run that fails is newly failing."""
    result = Comparison()
    for key, (code, name, status) in after.items():
        old = before.get(key)
        old_status = old[2] if old else None
        change = ScenarioChange(code=code, name=name, before=old_status, after=status)
        if status in FAILING:
            target = result.still_failing if old_status in FAILING else result.newly_failing
            target.append(change)
        elif old_status in FAILING and status == S.PASSED:
            result.fixed.append(change)
        else:
            result.unchanged += 1
    return result


def compare_latency(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[LatencyDelta]:
    names = sorted(set(before) | set(after))
    pick = ("p50", "p95", "p99")
    return [
        LatencyDelta(
            endpoint=name,
            before={k: (before.get(name) or {}).get(k) for k in pick},
            after={k: (after.get(name) or {}).get(k) for k in pick},
        )
        for name in names
    ]


def run_comparison(*, run: Run, other: Run) -> Comparison:
    """What changed from ``other`` (the earlier run) to ``run``."""
    result = compare_outcomes(_outcomes(other), _outcomes(run))
    result.latency = compare_latency(other.latency or {}, run.latency or {})
    return result
