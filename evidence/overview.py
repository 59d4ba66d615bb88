"""The overview: where every partner stands, for QA leads and auditors.

Counts, filters and sorting run in the database over ``Partner`` with ``LatestRun`` (the latest
verdict per suite, kept by ``certification.standing``) and ``Certification``, so the page costs
the same handful of queries for 10 partners or 10,000: one for the counts, one for the page's
total, one for the page, one for its standings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery

from certification.models import LatestRun, Run
from evidence.models import Certification
from partners.models import Partner

PAGE_SIZE = 50
EXPIRING_DAYS = 30
FAILING_RUN = (Run.Status.FAILED, Run.Status.ERROR)

SORTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "partner": ("Partner ID", ("external_id",)),
    "name": ("Name", ("name", "external_id")),
    "status": ("Status", ("status", "external_id")),
    "last_run": ("Last run, newest first", (F("last_run_at").desc(nulls_last=True), "external_id")),
    "valid_until": (
        "Valid until, soonest first",
        (F("valid_until").asc(nulls_last=True), "external_id"),
    ),
}


@dataclass(frozen=True)
class Filters:
    q: str = ""
    status: str = ""
    mode: str = ""
    failing: bool = False
    sla_failing: bool = False
    expiring: bool = False
    sort: str = "partner"


def _failing_run() -> Exists:
    return Exists(LatestRun.objects.filter(partner=OuterRef("pk"), status__in=FAILING_RUN))


def _sla_not_met() -> Exists:
    return Exists(LatestRun.objects.filter(partner=OuterRef("pk"), sla_missed__gt=0))


def _expiring(now: dt.datetime) -> Exists:
    return Exists(
        Certification.objects.filter(
            partner=OuterRef("pk"),
            status=Certification.Status.CERTIFIED,
            valid_until__gt=now,
            valid_until__lte=now + dt.timedelta(days=EXPIRING_DAYS),
        )
    )


def _count(condition: Q | None = None) -> Count:
    return Count("pk", filter=condition)


def overview_counts(partners: QuerySet[Partner], *, now: dt.datetime) -> dict[str, int]:
    """The numbers at the top, over every partner the user sees (not the filtered ones)."""
    return partners.aggregate(
        total=_count(),
        certified=_count(Q(status=Partner.Status.CERTIFIED)),
        in_certification=_count(Q(status=Partner.Status.IN_CERTIFICATION)),
        failing=_count(Q(_failing_run())),
        sla_failing=_count(Q(_sla_not_met())),
        expiring=_count(Q(_expiring(now))),
        suspended=_count(Q(status=Partner.Status.SUSPENDED)),
    )


def overview_partners(
    partners: QuerySet[Partner], filters: Filters, *, now: dt.datetime
) -> QuerySet[Partner]:
    """The partners that match, sorted, each with ``valid_until`` (of its certified
    certification that ends first) and ``last_run_at``."""
    qs = partners.annotate(
        valid_until=Subquery(
            Certification.objects.filter(
                partner=OuterRef("pk"), status=Certification.Status.CERTIFIED
            )
            .order_by("valid_until")
            .values("valid_until")[:1]
        ),
        last_run_at=Subquery(
            LatestRun.objects.filter(partner=OuterRef("pk"))
            .order_by("-finished_at")
            .values("finished_at")[:1]
        ),
    )
    if q := filters.q.strip():
        qs = qs.filter(
            Q(name__icontains=q) | Q(external_id__icontains=q) | Q(contact_email__icontains=q)
        )
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.mode:
        # Modes are a JSON list of fixed names; matching the quoted name in its text works on
        # PostgreSQL and SQLite alike (JSON containment does not exist on SQLite).
        qs = qs.filter(modes__icontains=f'"{filters.mode}"')
    if filters.failing:
        qs = qs.filter(_failing_run())
    if filters.sla_failing:
        qs = qs.filter(_sla_not_met())
    if filters.expiring:
        qs = qs.filter(_expiring(now))
    _, order = SORTS.get(filters.sort, SORTS["partner"])
    return qs.order_by(*order)


def with_standings(partners: QuerySet[Partner]) -> QuerySet[Partner]:
    """Prefetch each partner's SLA targets, its latest run per suite and that run's SLA
    verdicts (two queries)."""
    return partners.prefetch_related(
        "slas",
        Prefetch(
            "latest_runs",
            queryset=LatestRun.objects.select_related("run")
            .only(
                "partner_id",
                "suite_name",
                "status",
                "finished_at",
                "scenarios_passed",
                "scenarios_total",
                "sla_missed",
                "run_id",
                "run__sla_verdicts",
            )
            .order_by("suite_name"),
            to_attr="standings",
        ),
    )


def sla_chips(verdicts: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One chip per SLA verdict: what was promised, where, and how it came out."""
    return [
        {
            "label": f"{v.get('target', v.get('sla', 'SLA'))}"
            + (f" · {v['endpoint']}" if v.get("endpoint") else ""),
            "verdict": str(v.get("verdict", "not measured")),
            "measured": (
                ""
                if v.get("measured") is None
                else f"{v['measured']}{'' if v.get('unit') == '%' else ' '}{v.get('unit', '')}"
            ),
        }
        for v in verdicts or ()
    ]
