"""Who may see which runs and suites. Views reach runs (and, through them, their scenarios and
steps) and suites only through these functions.

Runs belong to partners, so their scoping is not decided here: ``Run.objects.visible_to`` goes
through ``partners.access.scope_queryset``, the one scoping rule for partner-owned rows. These
helpers live in ``certification`` so that ``partners`` need not import it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from certification.models import SUITE_BODY, Run, Suite
from partners.access import member_partner_id, sees_all_partners

# Certifications in these statuses assign nothing. A withdrawn one was closed unsigned. A
# superseded one was signed off again (``certification_sign_off``): its successor, of the same
# partner and scope, is certified, suspended, expired or superseded in turn, never withdrawn, so
# the scope's current suites are the successor's. Counting superseded ones too would give the
# same answer unless the successor dropped a suite from the scope, and then the suite must go.
NOT_ASSIGNING = ("withdrawn", "superseded")


def runs_visible_to(user: Any) -> QuerySet[Run]:
    return Run.objects.visible_to(user)


def run_for_user(user: Any, run_id: int | str) -> Run:
    """The run if the user may see it; 404 otherwise."""
    try:
        pk = int(run_id)
    except (TypeError, ValueError):
        raise Http404("No such run") from None
    return get_object_or_404(
        runs_visible_to(user)
        .select_related("partner", "suite", "created_by")
        .defer(*(f"suite__{name}" for name in SUITE_BODY)),
        pk=pk,
    )


def can_start_runs(user: Any) -> bool:
    return user.has_perm("certification.add_run")


def can_upload_suites(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("certification.add_suite")


def can_schedule(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("certification.add_recertificationschedule")


def suite_names_assigned(partner_id: int) -> set[str]:
    """The suites assigned to a partner: the names in the scope of its certifications, open,
    certified, suspended or expired (see ``NOT_ASSIGNING``). The one assignment rule."""
    from evidence.models import Certification

    scopes = (
        Certification.objects.filter(partner_id=partner_id)
        .exclude(status__in=NOT_ASSIGNING)
        .values_list("suite_names", flat=True)
    )
    return {name for names in scopes for name in names}


def latest_versions(suites: QuerySet[Suite]) -> QuerySet[Suite]:
    """Of ``suites``, only the latest stored version of each name."""
    newest = Suite.objects.filter(name=OuterRef("name")).order_by("-version").values("version")
    return suites.filter(version=Subquery(newest[:1]))


def suites_visible_to(user: Any) -> QuerySet[Suite]:
    """Every version of the suites the user may see: all of them for users who see every
    partner (QA leads, auditors); for a partner's user, those assigned to that partner; none
    for anyone else."""
    if sees_all_partners(user):
        return Suite.objects.all()
    partner_id = member_partner_id(user)
    if partner_id is None or not user.is_active:
        return Suite.objects.none()
    return Suite.objects.filter(name__in=suite_names_assigned(partner_id))


def suite_for_user(user: Any, suite_id: int | str) -> Suite:
    """The suite version if the user may see it; 404 otherwise, as for an unknown suite."""
    return get_object_or_404(suites_visible_to(user), pk=suite_id)


def suites_runnable_for(user: Any, partner: Any) -> QuerySet[Suite]:
    """The latest versions the user may choose from to run against ``partner``: what they see,
    and for a partner's user only against their own partner."""
    if not sees_all_partners(user) and member_partner_id(user) != partner.pk:
        return Suite.objects.none()
    return latest_versions(suites_visible_to(user)).defer(*SUITE_BODY).order_by("name")
