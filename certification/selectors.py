"""Reads for suites and runs, including the JSON and JUnit exports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

from django.utils import timezone

from certification.models import Run, StepResult, Suite, WorkerHeartbeat
from certification.verdicts import FAILING_VERDICTS, NOT_MEASURED, PERCENTILE_METHOD, sla_label
from partners.secret_rules import display_url

WORKER_FRESH_FOR = timedelta(minutes=2)


def workers_alive() -> list[WorkerHeartbeat]:
    """Workers that answered a heartbeat recently."""
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - WORKER_FRESH_FOR))


def suite_latest(name: str) -> Suite | None:
    return Suite.objects.filter(name=name).order_by("-version").first()


def step_as_json(step: StepResult) -> dict[str, Any]:
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
