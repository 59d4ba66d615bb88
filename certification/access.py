"""Who may see which runs. Views reach runs (and, through them, their scenarios and steps) only
through these functions.

Runs belong to partners, so their scoping is not decided here: ``Run.objects.visible_to`` goes
through ``partners.access.scope_queryset``, the one scoping rule for partner-owned rows. These
helpers live in ``certification`` so that ``partners`` need not import it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from certification.models import Run
from partners.access import sees_all_partners


def runs_visible_to(user: Any) -> QuerySet[Run]:
    return Run.objects.visible_to(user)


def run_for_user(user: Any, run_id: int | str) -> Run:
    """The run if the user may see it; 404 otherwise."""
    try:
        pk = int(run_id)
    except (TypeError, ValueError):
        raise Http404("No such run") from None
    return get_object_or_404(
        runs_visible_to(user).select_related("partner", "suite", "created_by"), pk=pk
    )


def can_start_runs(user: Any) -> bool:
    return user.has_perm("certification.add_run")


def can_upload_suites(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("certification.add_suite")


def can_schedule(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("certification.add_recertificationschedule")
