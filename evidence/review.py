"""Reading a certification: its evidence runs, and what stands between it and sign-off.

A certification's evidence is, per suite in scope, the latest finished run of that suite (any
version) against the partner since the certification was opened; cancelled runs never count.
At sign-off those runs are pinned (``CertificationRun``) and locked, and from then on the
pinned runs are the evidence.

The review lists every item the sign-off rule looks at: each scenario of each evidence run,
each in-scope SLA verdict of those runs, each checklist item, and each suite without a finished
run. An item is ``ok`` (passed / met / not applicable), or ``failing``; a failing item with a
waiver in force (approved, ``ends_on`` today or later) is ``waived``. Sign-off needs every item
``ok`` or ``waived``. Nothing that was not evaluated is ``ok``: an unevaluated scenario, an SLA
``not measured`` or with ``insufficient samples``, a suite never run, and a checklist item still
open are all failing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from certification.models import Run, ScenarioRun
from certification.verdicts import MET, sla_label
from evidence import checklist as checklist_data
from evidence.models import Certification, ChecklistItem, Waiver

OK, FAILING, WAIVED = "ok", "failing", "waived"


@dataclass
class ReviewItem:
    kind: str  # Waiver.ItemKind value
    key: str
    label: str
    state: str  # OK, FAILING or WAIVED
    detail: str = ""
    run: Run | None = None
    waiver: Waiver | None = None
    pending_waiver: Waiver | None = None
    scenario_run: ScenarioRun | None = None
    verdict: dict[str, Any] | None = None
    checklist_item: ChecklistItem | None = None
    linked: list[ScenarioRun] = field(default_factory=list)


@dataclass
class Review:
    certification: Certification
    runs: dict[str, Run | None]
    items: list[ReviewItem]

    @property
    def blockers(self) -> list[ReviewItem]:
        return [item for item in self.items if item.state == FAILING]

    @property
    def waived(self) -> list[ReviewItem]:
        return [item for item in self.items if item.state == WAIVED]

    @property
    def ready(self) -> bool:
        return all(run is not None for run in self.runs.values()) and not self.blockers

    def item(self, kind: str, key: str) -> ReviewItem | None:
        return next((i for i in self.items if i.kind == kind and i.key == key), None)


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def waiver_in_force(waiver: Waiver, *, on: dt.date | None = None) -> bool:
    return waiver.status == Waiver.Status.APPROVED and waiver.ends_on >= (on or today())


def evidence_runs(certification: Certification) -> dict[str, Run | None]:
    """Suite name -> the run that is its evidence (None when there is none yet)."""
    if certification.is_signed:
        pinned = {
            link.suite_name: link.run
            for link in certification.evidence_runs.select_related("run__suite", "run__partner")
        }
        return {name: pinned.get(name) for name in certification.suite_names}
    found: dict[str, Run | None] = {}
    for name in certification.suite_names:
        found[name] = (
            Run.objects.filter(
                partner=certification.partner,
                suite__name=name,
                created_at__gte=certification.created_at,
                status__in=[s for s in Run.FINISHED if s != Run.Status.CANCELLED],
            )
            .select_related("suite", "partner")
            .order_by("-finished_at", "-id")
            .first()
        )
    return found


def sla_in_scope_name(name: str, verdict: dict[str, Any]) -> bool:
    """Whether a verdict judges the SLA called ``name`` (``p95``, or ``p95@orders`` scoped)."""
    if name == verdict.get("sla"):
        return True
    return bool(verdict.get("endpoint")) and name == f"{verdict.get('sla')}@{verdict['endpoint']}"


def sla_in_scope(certification: Certification, verdict: dict[str, Any]) -> bool:
    if not certification.sla_names:
        return True
    return any(sla_in_scope_name(name, verdict) for name in certification.sla_names)


def scenario_key(suite_name: str, scenario_run: ScenarioRun) -> str:
    scenario = scenario_run.scenario
    return f"{suite_name}/{scenario.code or scenario.name}"[:300]


def sla_key(suite_name: str, verdict: dict[str, Any]) -> str:
    return f"{suite_name}/{verdict.get('sla')}@{verdict.get('endpoint') or '-'}"[:300]


def _scenario_runs(run: Run) -> QuerySet[ScenarioRun]:
    return run.scenario_runs.select_related("scenario").order_by("index")


def certification_review(certification: Certification, *, on: dt.date | None = None) -> Review:
    """Every item of the sign-off rule with its state (see the module docstring)."""
    on = on or today()
    waivers: dict[tuple[str, str], list[Waiver]] = {}
    for waiver in certification.waivers.select_related("requested_by", "decided_by"):
        waivers.setdefault((waiver.item_kind, waiver.item_key), []).append(waiver)

    def judged(item: ReviewItem, passed: bool) -> ReviewItem:
        live = waivers.get((item.kind, item.key), [])
        item.pending_waiver = next((w for w in live if w.status == Waiver.Status.REQUESTED), None)
        if passed:
            item.state = OK
        else:
            item.waiver = next((w for w in live if waiver_in_force(w, on=on)), None)
            item.state = WAIVED if item.waiver else FAILING
        return item

    runs = evidence_runs(certification)
    items: list[ReviewItem] = []
    all_scenarios: list[ScenarioRun] = []
    for suite_name, run in runs.items():
        if run is None:
            items.append(
                judged(
                    ReviewItem(
                        kind=Waiver.ItemKind.SUITE,
                        key=suite_name,
                        label=f"Suite {suite_name}",
                        state=FAILING,
                        detail="no finished run of this suite since the certification opened",
                    ),
                    False,
                )
            )
            continue
        for scenario_run in _scenario_runs(run):
            all_scenarios.append(scenario_run)
            scenario = scenario_run.scenario
            items.append(
                judged(
                    ReviewItem(
                        kind=Waiver.ItemKind.SCENARIO,
                        key=scenario_key(suite_name, scenario_run),
                        label=f"{scenario.code} {scenario.name}".strip(),
                        state=FAILING,
                        detail=scenario_run.get_status_display(),
                        run=run,
                        scenario_run=scenario_run,
                    ),
                    scenario_run.status == ScenarioRun.Status.PASSED,
                )
            )
        if run.error and not run.scenario_runs.exists():
            items.append(
                judged(
                    ReviewItem(
                        kind=Waiver.ItemKind.SUITE,
                        key=suite_name,
                        label=f"Suite {suite_name}",
                        state=FAILING,
                        detail=f"run {run.pk} ended with an error",
                        run=run,
                    ),
                    False,
                )
            )
        for verdict in run.sla_verdicts:
            if not sla_in_scope(certification, verdict):
                continue
            verdict_text = verdict["verdict"] + (
                f" ({verdict['reason']})" if verdict.get("reason") else ""
            )
            items.append(
                judged(
                    ReviewItem(
                        kind=Waiver.ItemKind.SLA,
                        key=sla_key(suite_name, verdict),
                        label=f"SLA {sla_label(verdict)}",
                        state=FAILING,
                        detail=verdict_text,
                        run=run,
                        verdict=verdict,
                    ),
                    verdict["verdict"] == MET,
                )
            )
    seen = [item.verdict for item in items if item.verdict is not None]
    for name in certification.sla_names:
        if not any(sla_in_scope_name(name, verdict) for verdict in seen):
            items.append(
                judged(
                    ReviewItem(
                        kind=Waiver.ItemKind.SLA,
                        key=f"-/{name}"[:300],
                        label=f"SLA {name}",
                        state=FAILING,
                        detail="not measured: no evidence run has a verdict for it",
                    ),
                    False,
                )
            )
    for checklist_item in certification.checklist.select_related("changed_by"):
        entry = checklist_data.BY_KEY.get(checklist_item.key)
        linked = (
            [sr for sr in all_scenarios if entry.matches(f"{sr.scenario.code} {sr.scenario.name}")]
            if entry
            else []
        )
        items.append(
            judged(
                ReviewItem(
                    kind=Waiver.ItemKind.CHECKLIST,
                    key=checklist_item.key,
                    label=checklist_item.label,
                    state=FAILING,
                    detail=checklist_item.get_state_display(),
                    checklist_item=checklist_item,
                    linked=linked,
                ),
                checklist_item.state != ChecklistItem.State.OPEN,
            )
        )
    return Review(certification=certification, runs=runs, items=items)
