"""Gathering what an evidence bundle holds from the database, once, into a ``BundleSource``.

Everything here is a function of stored rows only (no clock, no randomness), so the same
certification or run always gives the same bundle, byte for byte. The one time stamped into the
files is the sign-off time for a signed certification, otherwise the latest change to what the
bundle shows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

from certification.models import Run, ScenarioRun, StepResult
from certification.selectors import step_as_json
from certification.verdicts import PERCENTILE_METHOD, sla_label
from evidence import review as review_reads
from evidence.bundle_source import FORMAT, BundleSource
from evidence.models import Certification, Waiver
from evidence.times import iso_utc as _iso
from partners.secret_rules import display_url

PRODUCT = "Certdash"
PRODUCT_VERSION = "0.1.0"
FAILING_STEP_STATUSES = ("failed", "error", "unevaluated")
STEP_BATCH = 500


def _person(user: Any) -> dict[str, str] | None:
    if user is None:
        return None
    return {"name": user.get_full_name() or user.get_username(), "username": user.get_username()}


def _suite_entries(runs: list[Run]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    suites: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    seen: set[int] = set()
    for run in runs:
        suite = run.suite
        if suite.pk in seen:
            continue
        seen.add(suite.pk)
        folder = f"suite/{suite.name}-v{suite.version}"
        listed = []
        for name in sorted(suite.sources):
            data = suite.sources[name].encode()
            path = f"{folder}/{name}"
            files[path] = data
            listed.append({"path": path, "sha256": hashlib.sha256(data).hexdigest()})
        suites.append(
            {
                "name": suite.name,
                "version": suite.version,
                "contentHash": suite.content_hash,
                "entry": suite.entry,
                "files": listed,
            }
        )
    return suites, files


def _counts(values: list[str], keys: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    counts["total"] = len(values)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _waiver_ref(waiver: Waiver | None) -> dict[str, Any] | None:
    if waiver is None:
        return None
    return {
        "id": str(waiver.pk),
        "reason": waiver.reason,
        "endsOn": _iso(waiver.ends_on),
        "approvedBy": _person(waiver.decided_by),
    }


def _runs_part(
    runs: list[Run],
    waivers_by_item: dict[tuple[str, str], Waiver],
    suite_of: dict[int, str],
    sla_in_scope: Any = None,
) -> dict[str, Any]:
    """The runs, scenarios, SLA verdicts, endpoints and latency of the evidence runs."""
    out: dict[str, list[dict[str, Any]]] = {
        "runs": [], "scenarios": [], "sla": [], "endpoints": [], "latency": [],
    }  # fmt: skip
    failures: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        suite_name = suite_of.get(run.pk, run.suite.name)
        scenario_runs = list(
            ScenarioRun.objects.filter(run=run).select_related("scenario").order_by("index")
        )
        step_statuses = list(
            StepResult.objects.filter(scenario_run__run=run).values_list(
                "scenario_run_id", "status"
            )
        )
        by_scenario: dict[int, list[str]] = {}
        for scenario_run_id, status in step_statuses:
            by_scenario.setdefault(scenario_run_id, []).append(status)
        out["runs"].append(
            {
                "id": run.pk,
                "suite": run.suite.name,
                "suiteVersion": run.suite.version,
                "status": run.status,
                "trigger": run.trigger,
                "createdAt": _iso(run.created_at),
                "startedAt": _iso(run.started_at),
                "finishedAt": _iso(run.finished_at),
                "createdBy": run.created_by.get_username() if run.created_by else None,
                "scenarios": _counts(
                    [sr.status for sr in scenario_runs],
                    ("passed", "failed", "error", "unevaluated", "cancelled"),
                ),
                "steps": _counts(
                    [status for _, status in step_statuses],
                    ("passed", "failed", "error", "skipped", "unevaluated"),
                ),
                "reasons": list(run.reasons or []),
                "error": run.error or None,
            }
        )
        for sr in scenario_runs:
            statuses = by_scenario.get(sr.pk, [])
            key = review_reads.scenario_key(suite_name, sr)
            out["scenarios"].append(
                {
                    "run": run.pk,
                    "index": sr.index,
                    "code": sr.scenario.code,
                    "name": sr.scenario.name,
                    "kind": sr.scenario.kind,
                    "status": sr.status,
                    "steps": len(statuses),
                    "passedSteps": statuses.count("passed"),
                    "durationMs": None if sr.duration_ms is None else round(sr.duration_ms, 3),
                    "waiver": _waiver_ref(waivers_by_item.get(("scenario", key))),
                }
            )
        index_of = {sr.pk: sr.index for sr in scenario_runs}
        failing = StepResult.objects.filter(
            scenario_run__run=run, status__in=FAILING_STEP_STATUSES
        ).order_by("scenario_run__index", "step_index", "iteration")
        for step in failing:  # one query for the run, not one per failing scenario
            key = f"{run.pk}/{index_of[step.scenario_run_id]}"
            failures.setdefault(key, []).append(step_as_json(step))
        for verdict in run.sla_verdicts:
            if sla_in_scope is not None and not sla_in_scope(verdict):
                continue  # a certification shows the SLAs it certifies, no others
            key = review_reads.sla_key(suite_name, verdict)
            out["sla"].append(
                {
                    "run": run.pk,
                    "label": sla_label(verdict),
                    **{
                        k: verdict.get(k)
                        for k in (
                            "endpoint",
                            "sla",
                            "kind",
                            "target",
                            "measured",
                            "unit",
                            "samples",
                            "requests",
                            "errors",
                            "over_target",
                            "min_samples",
                            "verdict",
                            "rule",
                            "reason",
                        )
                    },  # fmt: skip
                    "waiver": _waiver_ref(waivers_by_item.get(("sla", key))),
                }
            )
        for name, endpoint in sorted(run.endpoints.items()):
            out["endpoints"].append(
                {
                    "run": run.pk,
                    "name": name,
                    "baseUrl": display_url(endpoint.get("base_url", "")),
                    "authKind": endpoint.get("auth_kind", "none"),
                    "kind": endpoint.get("kind", "http"),
                }
            )
        for name, rollup in sorted((run.latency or {}).items()):
            out["latency"].append({"run": run.pk, "endpoint": name, **rollup})
    return {"parts": out, "failures": failures}


def _step_iterator(run_ids: list[int]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    for run_id in run_ids:
        steps = (
            StepResult.objects.filter(scenario_run__run_id=run_id)
            .select_related("scenario_run")
            .order_by("scenario_run__index", "step_index", "iteration")
        )
        for step in steps.iterator(chunk_size=STEP_BATCH):
            yield run_id, step.scenario_run.index, step_as_json(step)


def _traffic_iterator(run_ids: list[int]) -> Iterator[dict[str, Any]]:
    from certification.traffic import record_dict
    from certification.traffic_models import CapturedRequest

    for run_id in run_ids:
        rows = CapturedRequest.objects.filter(run_id=run_id).order_by("received_at", "id")
        for row in rows.iterator(chunk_size=STEP_BATCH):
            record = record_dict(row)
            # The stored (masked, capped) text, not the parsed form: what was recorded.
            record["request"]["body"] = row.request_body
            record["request"]["bodyTruncated"] = row.request_truncated
            record["response"]["body"] = row.response_body
            yield {"run": run_id, **record}


def _base(kind: str, ident: str, partner: Any, fixed_time: dt.datetime) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": kind,
        "id": ident,
        "generatedAt": _iso(fixed_time),
        "partner": {"id": partner.external_id, "name": partner.name},
        "environment": {
            "name": "partner sandbox",
            "product": PRODUCT,
            "productVersion": PRODUCT_VERSION,
        },
        "percentileMethod": PERCENTILE_METHOD,
    }


def source_for_run(run: Run) -> BundleSource:
    """The bundle of a single finished run."""
    run = Run.objects.select_related("partner", "suite", "created_by").get(pk=run.pk)
    fixed_time = run.finished_at or run.created_at
    suites, files = _suite_entries([run])
    gathered = _runs_part([run], {}, {})
    summary = _base("run", f"run-{run.pk}", run.partner, fixed_time)
    verdict_reasons = list(run.reasons or []) or ([run.error] if run.error else [])
    headline = {
        "passed": "RUN PASSED",
        "failed": "RUN FAILED",
        "error": "RUN ENDED WITH AN ERROR",
        "cancelled": "RUN CANCELLED",
    }.get(run.status, f"RUN {run.status.upper()}")
    summary.update(
        certification=None,
        verdict={"result": run.status, "headline": headline, "reasons": verdict_reasons},
        suites=suites,
        **gathered["parts"],
        waivers=[],
        checklist=[],
        certifiedBy=None,
        partnerConfirmation=None,
    )
    return BundleSource(
        kind="run",
        summary=summary,
        suite_files=files,
        run_ids=[run.pk],
        fixed_time=fixed_time,
        failures=gathered["failures"],
        iter_steps=lambda: _step_iterator([run.pk]),
        iter_traffic=lambda: _traffic_iterator([run.pk]),
    )


def certification_fixed_time(certification: Certification, runs: list[Run]) -> dt.datetime:
    if certification.signed_off_at:
        return certification.signed_off_at
    times = [certification.created_at]
    times += [r.finished_at for r in runs if r.finished_at]
    times += [i.changed_at for i in certification.checklist.all() if i.changed_at]
    for waiver in certification.waivers.all():
        times += [t for t in (waiver.requested_at, waiver.decided_at) if t]
    return max(times)


def source_for_certification(certification: Certification) -> BundleSource:
    """The bundle of a certification: its evidence runs, verdicts, checklist, waivers and
    sign-off. Before sign-off it shows the certification as it stands (NOT SIGNED OFF)."""
    certification = Certification.objects.select_related(
        "partner", "signed_off_by", "partner_confirmed_by"
    ).get(pk=certification.pk)
    # A signed certification is shown as it was signed: waivers judged on the sign-off day.
    on = certification.signed_off_at.astimezone(dt.UTC).date() if certification.is_signed else None
    review = review_reads.certification_review(certification, on=on)
    runs = [run for run in review.runs.values() if run is not None]
    suite_of = {run.pk: name for name, run in review.runs.items() if run is not None}
    waivers = list(certification.waivers.select_related("requested_by", "decided_by"))
    in_force = {
        (item.kind, item.key): item.waiver for item in review.items if item.waiver is not None
    }
    fixed_time = certification_fixed_time(certification, runs)
    suites, files = _suite_entries(runs)
    gathered = _runs_part(
        runs, in_force, suite_of, lambda v: review_reads.sla_in_scope(certification, v)
    )
    summary = _base("certification", str(certification.pk), certification.partner, fixed_time)
    status = certification.status
    waived = review.waived
    if status == Certification.Status.CERTIFIED:
        headline = f"CERTIFIED until {certification.valid_until:%Y-%m-%d}"
        if waived:
            headline += f" with {len(waived)} waiver{'s' if len(waived) > 1 else ''}"
        result = "certified"
    elif certification.is_signed:
        headline = f"{certification.get_status_display().upper()} (signed off " + (
            f"{certification.signed_off_at:%Y-%m-%d})"
        )
        result = status
    else:
        headline = "NOT SIGNED OFF"
        result = "not certified"
    reasons = [f"{item.label}: {item.detail}" for item in review.blockers]
    reasons += [
        f"waived until {item.waiver.ends_on.isoformat()}: {item.label} ({item.detail})"
        for item in waived
        if item.waiver is not None
    ]
    if certification.status_reason:
        reasons.insert(0, certification.status_reason)
    checklist_rows = []
    by_item = {item.key: item for item in review.items if item.kind == "checklist"}
    for checklist_item in certification.checklist.select_related("changed_by"):
        item = by_item.get(checklist_item.key)
        checklist_rows.append(
            {
                "key": checklist_item.key,
                "label": checklist_item.label,
                "state": checklist_item.state,
                "note": checklist_item.note,
                "by": _person(checklist_item.changed_by),
                "at": _iso(checklist_item.changed_at),
                "waiver": _waiver_ref(item.waiver if item else None),
                "scenarios": [
                    {
                        "run": sr.run_id,
                        "index": sr.index,
                        "code": sr.scenario.code,
                        "name": sr.scenario.name,
                        "status": sr.status,
                    }
                    for sr in (item.linked if item else [])
                ],
            }
        )
    summary.update(
        certification={
            "id": str(certification.pk),
            "scope": certification.scope,
            "title": certification.title,
            "status": status,
            "statusReason": certification.status_reason or None,
            "suitesInScope": certification.suite_names,
            "slasInScope": certification.sla_names or "all",
            "openedAt": _iso(certification.created_at),
            "signedOffAt": _iso(certification.signed_off_at),
            "validUntil": _iso(certification.valid_until),
            "validityDays": certification.validity_days,
        },
        verdict={"result": result, "headline": headline, "reasons": reasons},
        suites=suites,
        **gathered["parts"],
        waivers=[
            {
                "id": str(w.pk),
                "itemKind": w.item_kind,
                "itemKey": w.item_key,
                "itemLabel": w.item_label,
                "reason": w.reason,
                "endsOn": _iso(w.ends_on),
                "status": w.status,
                "inForce": review_reads.waiver_in_force(w, on=fixed_time.date()),
                "requestedBy": _person(w.requested_by),
                "requestedAt": _iso(w.requested_at),
                "approvedBy": _person(w.decided_by) if w.status != "rejected" else None,
                "approvedAt": _iso(w.decided_at) if w.status != "rejected" else None,
                "decisionNote": w.decision_note or None,
            }
            for w in waivers
        ],
        checklist=checklist_rows,
        certifiedBy=(
            {
                **(_person(certification.signed_off_by) or {}),
                "role": certification.signed_off_role,
                "at": _iso(certification.signed_off_at),
                "note": certification.signoff_note,
            }
            if certification.is_signed
            else None
        ),
        partnerConfirmation=(
            {
                **(_person(certification.partner_confirmed_by) or {}),
                "at": _iso(certification.partner_confirmed_at),
            }
            if certification.partner_confirmed_at
            and certification.partner_confirmed_at <= fixed_time
            else None
        ),
    )
    run_ids = [run.pk for run in runs]
    return BundleSource(
        kind="certification",
        summary=summary,
        suite_files=files,
        run_ids=run_ids,
        fixed_time=fixed_time,
        failures=gathered["failures"],
        iter_steps=lambda: _step_iterator(run_ids),
        iter_traffic=lambda: _traffic_iterator(run_ids),
    )
