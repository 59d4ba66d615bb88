"""What certification shows on a partner's page: its suites in scope with where each stands,
its run history with scenario counts, and the points the charts are drawn from.

Reads only; a constant number of queries whatever the partner's history (the charts read the
latest ``CHART_RUNS`` finished runs, the history the latest ``HISTORY_RUNS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from certification import selectors
from certification.access import (
    NOT_ASSIGNING,
    latest_versions,
    runs_visible_to,
)
from certification.charts import Chart, RunPoint, partner_charts, run_point
from certification.models import LatestRun, Run, Suite

CHART_RUNS = 30
HISTORY_RUNS = 20


def partner_runs_history(user: Any, partner: Any) -> tuple[list[Run], bool]:
    """The partner's latest ``HISTORY_RUNS`` runs the user may see, newest first, with
    scenario counts, and whether there are more."""
    runs = list(
        selectors.run_list_rows(runs_visible_to(user).filter(partner=partner)).order_by(
            "-created_at", "-id"
        )[: HISTORY_RUNS + 1]
    )
    return list(selectors.scenario_counts_attach(runs[:HISTORY_RUNS])), len(runs) > HISTORY_RUNS


def chart_runs(user: Any, partner: Any) -> QuerySet[Run]:
    """The finished, not cancelled runs the charts draw: the latest ``CHART_RUNS``."""
    return (
        runs_visible_to(user)
        .filter(
            partner=partner, status__in=[Run.Status.PASSED, Run.Status.FAILED, Run.Status.ERROR]
        )
        .exclude(finished_at=None)
        .select_related("suite")
        .only(
            "pk",
            "status",
            "finished_at",
            "latency",
            "sla_verdicts",
            "scenarios_total",
            "error",
            "suite__name",
            "partner_id",
        )
        .order_by("-finished_at", "-id")[:CHART_RUNS]
    )


def chart_points(user: Any, partner: Any) -> list[RunPoint]:
    runs = list(selectors.scenario_counts_attach(list(chart_runs(user, partner))))
    points = []
    for run in runs:
        outcomes = {s: getattr(run, f"n_{s}") for s in selectors.SCENARIO_COUNTS}
        # A run-level error (``run_fail``) closes the scenarios it had not run as errors: those
        # did not run. Without one, an errored scenario ran and errored.
        ran = outcomes["passed"] + outcomes["failed"] + outcomes["unevaluated"]
        if not run.error:
            ran += outcomes["error"]
        points.append(
            run_point(
                run_id=run.pk,
                suite=run.suite.name,
                status=run.status,
                finished_at=run.finished_at,
                passed=outcomes["passed"],
                total=max(sum(outcomes.values()), run.scenarios_total),
                latency=run.latency,
                verdicts=run.sla_verdicts,
                ran=ran,
            )
        )
    return points


def charts_for(user: Any, partner: Any) -> tuple[list[Chart], int]:
    """The partner page's charts, and how many runs they were drawn from."""
    points = chart_points(user, partner)
    return partner_charts(points), len(points)


_STANDING_FIELDS = ("suite_name", "status", "finished_at", "scenarios_passed", "scenarios_total",
                    "run_id", "partner_id")  # fmt: skip


@dataclass
class SuiteInScope:
    """A suite assigned to the partner, the certifications that assign it, and its standing."""

    name: str
    certifications: list[Any] = field(default_factory=list)
    latest_version: int | None = None
    standing: LatestRun | None = None
    sla: list[tuple[str, int]] = field(default_factory=list)


def suites_in_scope(partner: Any) -> list[SuiteInScope]:
    """The suites assigned to the partner, by name: those in the scope of its certifications
    that assign (the rule of ``access.suite_names_assigned``, read here with the
    certifications that name them)."""
    from evidence.models import Certification  # evidence builds on certification

    rows: dict[str, SuiteInScope] = {}
    for cert in (
        Certification.objects.filter(partner=partner)
        .exclude(status__in=NOT_ASSIGNING)
        .only("pk", "title", "status", "suite_names", "scope")
        .order_by("-created_at")
    ):
        for name in cert.suite_names:
            rows.setdefault(name, SuiteInScope(name=name)).certifications.append(cert)
    if not rows:
        return []
    rows = dict(sorted(rows.items()))
    names = list(rows)
    for name, version in latest_versions(Suite.objects.filter(name__in=names)).values_list(
        "name", "version"
    ):
        rows[name].latest_version = version
    standings = (
        LatestRun.objects.filter(partner=partner, suite_name__in=names)
        .select_related("run")
        .only(*_STANDING_FIELDS, "run__sla_verdicts", "run__partner_id", "run__suite_id")
    )
    for standing in standings:
        rows[standing.suite_name].standing = standing
        rows[standing.suite_name].sla = selectors.sla_summary(standing.run.sla_verdicts)
    return list(rows.values())
