"""Where each partner stands per suite: the latest finished, not cancelled run (``LatestRun``).

Written in the same transaction as the run's verdict, so the overview never disagrees with the
run page; ``latest_runs_rebuild`` recomputes it from the runs (migration, bulk seeding, repair).
A cancelled run is no verdict and leaves the standing as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Count, Q

from certification.models import LatestRun, Run, ScenarioRun
from certification.verdicts import MET

_SCENARIO_COUNTS = {
    "passed": Count("pk", filter=Q(status=ScenarioRun.Status.PASSED)),
    "total": Count("pk"),
}


def _sla_not_met(verdicts: Iterable[dict[str, Any]]) -> int:
    """SLA verdicts that are not ``met``: missed, and those not proven either way."""
    return sum(1 for v in verdicts or () if v.get("verdict") != MET)


def latest_run_record(run: Run) -> None:
    """Make ``run`` its partner's latest for its suite, unless it is cancelled, unfinished, or
    a later finished run is already recorded."""
    if not run.is_finished or run.status == Run.Status.CANCELLED or run.finished_at is None:
        return
    counts = run.scenario_runs.aggregate(**_SCENARIO_COUNTS)
    values = {
        "run": run,
        "status": run.status,
        "finished_at": run.finished_at,
        "scenarios_passed": counts["passed"],
        "scenarios_total": counts["total"] or run.scenarios_total,
        "sla_missed": _sla_not_met(run.sla_verdicts),
    }
    with transaction.atomic():
        current = (
            LatestRun.objects.select_for_update()
            .filter(partner_id=run.partner_id, suite_name=run.suite.name)
            .first()
        )
        if current is None:
            LatestRun.objects.create(partner_id=run.partner_id, suite_name=run.suite.name, **values)
        elif (current.run.created_at, current.run_id) <= (run.created_at, run.pk):
            for field, value in values.items():
                setattr(current, field, value)
            current.save()


def latest_runs_rebuild(partner_ids: Iterable[int] | None = None) -> int:
    """Recompute the standings of the given partners (all when None) from their runs; returns
    how many were written."""
    runs = Run.objects.exclude(
        status__in=[Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.CANCELLED]
    )
    if partner_ids is not None:
        partner_ids = list(partner_ids)
        runs = runs.filter(partner_id__in=partner_ids)
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    rows = runs.order_by("created_at", "id").values(
        "id",
        "partner_id",
        "suite__name",
        "status",
        "finished_at",
        "sla_verdicts",
        "scenarios_total",
    )
    for row in rows.iterator(chunk_size=2000):
        latest[(row["partner_id"], row["suite__name"])] = row
    counts = {
        row["run_id"]: row
        for row in ScenarioRun.objects.filter(run_id__in=[row["id"] for row in latest.values()])
        .values("run_id")
        .annotate(**_SCENARIO_COUNTS)
    }
    objects = [
        LatestRun(
            partner_id=partner_id,
            suite_name=suite_name,
            run_id=row["id"],
            status=row["status"],
            finished_at=row["finished_at"],
            scenarios_passed=counts.get(row["id"], {}).get("passed", 0),
            scenarios_total=counts.get(row["id"], {}).get("total") or row["scenarios_total"],
            sla_missed=_sla_not_met(row["sla_verdicts"]),
        )
        for (partner_id, suite_name), row in latest.items()
    ]
    with transaction.atomic():
        stale = LatestRun.objects.all()
        if partner_ids is not None:
            stale = stale.filter(partner_id__in=partner_ids)
        stale.delete()
        LatestRun.objects.bulk_create(objects, batch_size=1000)
    return len(objects)
