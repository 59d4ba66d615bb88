"""Reads for suites and runs, including the JSON and JUnit exports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

from django.db.models import Count, QuerySet
from django.utils import timezone

from certification.models import (
    SUITE_BODY,
    Run,
    ScenarioRun,
    StepResult,
    Suite,
    WorkerHeartbeat,
)
from certification.verdicts import FAILING_VERDICTS, NOT_MEASURED, PERCENTILE_METHOD, sla_label
from partners.secret_rules import display_url

WORKER_FRESH_FOR = timedelta(minutes=2)


def workers_alive() -> list[WorkerHeartbeat]:
    """Workers that answered a heartbeat recently."""
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - WORKER_FRESH_FOR))


def suite_latest(name: str) -> Suite | None:
    return Suite.objects.filter(name=name).order_by("-version").first()


def step_as_json(step: StepResult) -> dict[str, Any]:
    out = _step_json(step)
    if step.traffic:
        # Only when a step has match groups: earlier results (and their bundles) keep their bytes.
        out["traffic"] = step.traffic
    return out


def _step_json(step: StepResult) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": step.status,
        "iteration": step.iteration,
        "request": step.request,
        "response": step.response,
        "timings": step.timings,
        "assertions": [
            {
                **{k: a.get(k) for k in ("path", "operator", "expected", "actual", "passed")},
                "evaluated": a.get("evaluated", True),
                "message": a.get("message"),
            }
            for a in step.assertions
        ],
        "failure": step.failure,
        "extracted": step.extracted,
        "data": step.data,
        "latency": _latency_public(step.latency),
        "notes": step.notes,
        "startedAt": step.started_at.isoformat() if step.started_at else None,
        "durationMs": round(step.duration_ms, 3),
    }


def _latency_public(latency: dict[str, Any] | None) -> dict[str, Any] | None:
    if not latency:
        return None
    return {k: v for k, v in latency.items() if k != "histogram"}


SLA_FIELDS = ("endpoint", "sla", "kind", "target", "measured", "unit", "samples", "requests",
              "errors", "over_target", "min_samples", "verdict", "rule", "reason")  # fmt: skip


def _sla_public(verdict: dict[str, Any]) -> dict[str, Any]:
    return {k: verdict.get(k) for k in SLA_FIELDS}


def run_as_json(run: Run) -> dict[str, Any]:
    """The documented export: ``{"run": {...}, "scenarios": [{..., "steps": [...]}]}``."""
    scenario_runs = run.scenario_runs.select_related("scenario").prefetch_related("steps")
    return {
        "run": {
            "id": run.pk,
            "status": run.status,
            "partner": run.partner.external_id,
            "suite": run.suite.name,
            "suiteVersion": run.suite.version,
            "createdAt": run.created_at.isoformat(),
            "finishedAt": run.finished_at.isoformat() if run.finished_at else None,
            "endpoints": {name: display_url(e["base_url"]) for name, e in run.endpoints.items()},
            "error": run.error or None,
            "reasons": run.reasons,
            "latency": {
                name: _latency_public(rollup) for name, rollup in (run.latency or {}).items()
            },
            "percentileMethod": PERCENTILE_METHOD,
            "sla": [_sla_public(v) for v in run.sla_verdicts],
        },
        "scenarios": [
            {
                "name": sr.scenario.name,
                "code": sr.scenario.code,
                "kind": sr.scenario.kind,
                "status": sr.status,
                "durationMs": sr.duration_ms,
                "steps": [step_as_json(step) for step in sr.steps.all()],
            }
            for sr in scenario_runs
        ],
    }


def _scenario_problems(scenario: dict[str, Any]) -> list[str]:
    lines = []
    for step in scenario["steps"]:
        if step["status"] in ("failed", "error", "unevaluated"):
            if step["failure"]:
                lines.append(
                    f"{step['name']}: {step['failure']['kind']}: {step['failure']['message']}"
                )
            for a in step["assertions"]:
                if not a["passed"]:
                    lines.append(
                        f"{step['name']}: {a['path']} {a['operator']} {a['expected']!r}: "
                        f"{a['message'] or 'actual ' + repr(a['actual'])}"
                    )
    return lines


def _sla_case_text(verdict: dict[str, Any]) -> str:
    measured = verdict.get("measured")
    shown = "nothing" if measured is None else f"{measured} {verdict.get('unit', '')}".strip()
    text = (
        f"target {verdict['target']}, measured {shown}, samples {verdict.get('samples', 0)} "
        f"of {verdict.get('requests', 0)} requests"
    )
    return text + (f": {verdict['reason']}" if verdict.get("reason") else "")


def run_as_junit(run: Run) -> str:
    """JUnit XML: one testcase per scenario (a failure lists its failing or unevaluated
    checks) and one per SLA verdict (``missed`` and ``insufficient samples`` fail; ``not
    measured`` is skipped)."""
    data = run_as_json(run)
    scenarios = data["scenarios"]
    verdicts = data["run"]["sla"]
    failing = {"failed", "unevaluated"}
    suite_el = ET.Element(
        "testsuite",
        name=f"{run.suite.name} v{run.suite.version} @ {run.partner.external_id}",
        tests=str(len(scenarios) + len(verdicts)),
        failures=str(
            sum(s["status"] in failing for s in scenarios)
            + sum(v["verdict"] in FAILING_VERDICTS for v in verdicts)
        ),
        errors=str(sum(s["status"] == "error" for s in scenarios)),
        skipped=str(
            sum(s["status"] in ("cancelled", "skipped") for s in scenarios)
            + sum(v["verdict"] == NOT_MEASURED for v in verdicts)
        ),
        time=f"{sum((s['durationMs'] or 0) for s in scenarios) / 1000:.3f}",
    )
    for scenario in scenarios:
        label = f"{scenario['code']} {scenario['name']}".strip()
        case = ET.SubElement(
            suite_el,
            "testcase",
            classname=f"{run.suite.name}.{scenario['kind']}",
            name=label,
            time=f"{(scenario['durationMs'] or 0) / 1000:.3f}",
        )
        lines = _scenario_problems(scenario)
        status = scenario["status"]
        if status in failing:
            default = "not evaluated" if status == "unevaluated" else "failed"
            ET.SubElement(
                case, "failure", message=lines[0] if lines else default, type=status
            ).text = "\n".join(lines)
        elif status == "error":
            ET.SubElement(case, "error", message=lines[0] if lines else "error").text = "\n".join(
                lines
            )
        elif status in ("cancelled", "skipped"):
            ET.SubElement(case, "skipped", message=status)
    for verdict in verdicts:
        case = ET.SubElement(
            suite_el,
            "testcase",
            classname=f"{run.suite.name}.sla",
            name=f"SLA {sla_label(verdict)}",
            time="0.000",
        )
        text = _sla_case_text(verdict)
        if verdict["verdict"] in FAILING_VERDICTS:
            ET.SubElement(
                case, "failure", message=f"{verdict['verdict']}: {text}", type="sla"
            ).text = verdict.get("rule") or ""
        elif verdict["verdict"] == NOT_MEASURED:
            ET.SubElement(case, "skipped", message=f"not measured: {text}")
        else:
            ET.SubElement(case, "system-out").text = f"met: {text}"
    ET.indent(suite_el)
    return ET.tostring(ET.ElementTree(suite_el).getroot(), encoding="unicode", xml_declaration=True)


RUN_LIST_PAGE_SIZE = 50
SCENARIO_COUNTS = ("passed", "failed", "error", "unevaluated", "cancelled")


def runs_filtered(runs: QuerySet[Run], filters: Mapping[str, Any]) -> QuerySet[Run]:
    """``runs`` narrowed by the runs list's cleaned filters (partner id, suite name, status,
    UTC dates inclusive)."""
    if filters.get("partner"):
        runs = runs.filter(partner__external_id=filters["partner"].strip())
    if filters.get("suite"):
        runs = runs.filter(suite__name=filters["suite"].strip())
    if filters.get("status"):
        runs = runs.filter(status=filters["status"])
    if filters.get("date_from"):
        start = dt.datetime.combine(filters["date_from"], dt.time(), dt.UTC)
        runs = runs.filter(created_at__gte=start)
    if filters.get("date_to"):
        end = dt.datetime.combine(filters["date_to"] + dt.timedelta(days=1), dt.time(), dt.UTC)
        runs = runs.filter(created_at__lt=end)
    return runs


def run_list_rows(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs as the runs list shows them: partner and suite joined, the latency roll-ups
    (histograms) left in the database. Scenario counts come from :func:`scenario_counts_attach`
    on the rows of one page."""
    return runs.select_related("partner", "suite").defer(
        "latency", "endpoints", *(f"suite__{name}" for name in SUITE_BODY)
    )


def scenario_counts_attach(runs: Sequence[Run]) -> Sequence[Run]:
    """Set ``n_passed``, ``n_failed``, ``n_error``, ``n_unevaluated`` and ``n_cancelled`` on
    each run, from one aggregate query over the scenarios of just these runs (grouping every
    run's scenarios before the page is cut costs a scan of them all)."""
    counts: dict[int, dict[str, int]] = {run.pk: {} for run in runs}
    if counts:
        grouped = (
            ScenarioRun.objects.filter(run_id__in=list(counts), status__in=SCENARIO_COUNTS)
            .values_list("run_id", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for run_id, status, n in grouped:
            counts[run_id][status] = n
    for run in runs:
        for status in SCENARIO_COUNTS:
            setattr(run, f"n_{status}", counts[run.pk].get(status, 0))
    return runs


def run_duration_s(run: Run, *, now: dt.datetime | None = None) -> float | None:
    """Seconds from start (or creation) to finish; for a running run, so far."""
    start = run.started_at or run.created_at
    end = run.finished_at or (None if run.is_finished else (now or timezone.now()))
    if end is None or run.status == Run.Status.QUEUED:
        return None
    return max(0.0, (end - start).total_seconds())


def sla_summary(verdicts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """``[("missed", 1), ("met", 3)]``: how many SLA verdicts of each kind, failing ones first."""
    order = ("missed", "insufficient samples", "not measured", "met")
    counts = dict.fromkeys(order, 0)
    for verdict in verdicts:
        counts[verdict.get("verdict", "not measured")] = (
            counts.get(verdict.get("verdict", "not measured"), 0) + 1
        )
    return [(verdict, n) for verdict, n in counts.items() if n]
