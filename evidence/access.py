"""Who may see and do what with certifications and bundles. Scoping goes through
``partners.access`` (``PartnerScopedQuerySet.visible_to``), the one rule for partner rows."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from evidence.models import Certification, EvidenceBundle
from partners.access import member_partner_id, sees_all_partners


def certifications_visible_to(user: Any) -> QuerySet[Certification]:
    return Certification.objects.visible_to(user)


def uuid_or_404(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404(f"No such {what}") from None


def certification_for_user(user: Any, certification_id: Any) -> Certification:
    return get_object_or_404(
        certifications_visible_to(user).select_related("partner"),
        pk=uuid_or_404(certification_id, "certification"),
    )


def bundle_for_user(user: Any, bundle_id: Any) -> EvidenceBundle:
    return get_object_or_404(
        EvidenceBundle.objects.visible_to(user).select_related("certification__partner", "run"),
        pk=uuid_or_404(bundle_id, "bundle"),
    )


def can_open(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("evidence.add_certification")


def can_review(user: Any) -> bool:
    """Checklist and waiver requests."""
    return sees_all_partners(user) and user.has_perm("evidence.change_checklistitem")


def can_request_waiver(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("evidence.add_waiver")


def can_approve_waiver(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("evidence.approve_waiver")


def can_sign_off(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("evidence.sign_off_certification")


def can_suspend(user: Any) -> bool:
    return sees_all_partners(user) and user.has_perm("evidence.suspend_certification")


def can_confirm(user: Any, certification: Certification) -> bool:
    return member_partner_id(user) == certification.partner_id and user.has_perm(
        "evidence.confirm_certification"
    )


def can_build_bundles(user: Any) -> bool:
    return user.has_perm("evidence.add_evidencebundle")
