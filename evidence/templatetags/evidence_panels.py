"""Certification and evidence panels for pages of other apps.

``{% partner_certifications partner %}`` on the partner page and ``{% run_evidence run %}`` on
the run page, so that ``partners`` and ``certification`` show them without importing
``evidence``."""

from __future__ import annotations

from typing import Any

from django import template

from evidence import access

register = template.Library()

# The partner page lists the newest certifications, current and past; the rest are a link away.
PARTNER_CERTIFICATIONS = 20


@register.inclusion_tag("evidence/_partner_certifications.html", takes_context=True)
def partner_certifications(context: template.Context, partner: Any) -> dict[str, Any]:
    user = context["request"].user
    certifications = list(
        access.certifications_visible_to(user)
        .filter(partner=partner)
        .order_by("-created_at")[: PARTNER_CERTIFICATIONS + 1]
    )
    return {
        "partner": partner,
        "certifications": certifications[:PARTNER_CERTIFICATIONS],
        "more": len(certifications) > PARTNER_CERTIFICATIONS,
        "can_open": access.can_open(user),
    }


@register.inclusion_tag("evidence/_run_evidence.html", takes_context=True)
def run_evidence(context: template.Context, run: Any) -> dict[str, Any]:
    user = context["request"].user
    return {
        "run": run,
        "bundle": run.bundles.order_by("-requested_at").first(),
        "can_build": access.can_build_bundles(user) and run.is_finished,
        "csrf_token": context.get("csrf_token"),
        "request": context["request"],
    }
