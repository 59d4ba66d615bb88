"""Who may see what. Every view reaches partner-owned rows through these functions, so partner
scoping lives here and nowhere else."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

if TYPE_CHECKING:
    from partners.models import Endpoint, Partner

QA_LEAD, AUDITOR, PARTNER_USER = "QA lead", "Auditor", "Partner user"
ROLE_NAMES = (QA_LEAD, AUDITOR, PARTNER_USER)


def member_partner_id(user: Any) -> int | None:
    """The partner a user belongs to, or None. Cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_member_partner_id"):
        from partners.models import Membership

        user._member_partner_id = (
            Membership.objects.filter(user=user).values_list("partner_id", flat=True).first()
        )
    return user._member_partner_id


def sees_all_partners(user: Any) -> bool:
    """QA leads, auditors and superusers see every partner; a member of a partner never does."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if member_partner_id(user) is not None:
        return False
    return user.is_superuser or user.has_perm("partners.view_all_partners")


def scope_queryset(qs: QuerySet, user: Any, *, partner_lookup: str) -> QuerySet:
    if sees_all_partners(user):
        return qs
    partner_id = member_partner_id(user)
    if partner_id is None or not user.is_active:
        return qs.none()
    return qs.filter(**{partner_lookup or "pk": partner_id})


def partners_visible_to(user: Any) -> QuerySet[Partner]:
    from partners.models import Partner

    return Partner.objects.visible_to(user)


def partner_for_user(user: Any, external_id: str) -> Partner:
    """The partner with this external id if the user may see it; 404 otherwise."""
    return get_object_or_404(partners_visible_to(user), external_id=external_id)


def endpoint_for_user(user: Any, partner: Partner, endpoint_id: str | uuid.UUID) -> Endpoint:
    from partners.models import Endpoint

    try:
        endpoint_uuid = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise Http404("No such endpoint") from None
    return get_object_or_404(
        Endpoint.objects.visible_to(user).select_related("partner"),
        partner=partner,
        pk=endpoint_uuid,
    )


def role_of(user: Any) -> str:
    """The label shown in the page header."""
    if not getattr(user, "is_authenticated", False):
        return ""
    if member_partner_id(user) is not None:
        return PARTNER_USER
    if user.is_superuser:
        return "Administrator"
    names = set(user.groups.values_list("name", flat=True))
    for role in (QA_LEAD, AUDITOR):
        if role in names:
            return role
    return "No role"


def can_manage_endpoints(user: Any) -> bool:
    return user.has_perm("partners.change_endpoint")


def can_import_registry(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("partners.import_registry")
