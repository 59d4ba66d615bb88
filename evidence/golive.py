"""The go-live answer: is a partner certified for a scope right now? Read only from the
current certification state (never from runs), for the JSON endpoint and the SVG badge."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from django.utils import timezone

from evidence import review as review_reads
from evidence.models import Certification, Waiver
from evidence.times import iso_utc as _iso
from partners.models import Partner


def current_certification(partner: Partner, scope: str) -> Certification | None:
    """The signed certification of the scope that decides its state (the latest signed one),
    or, when none was ever signed, the open one."""
    signed = (
        Certification.objects.filter(partner=partner, scope=scope, signed_off_at__isnull=False)
        .exclude(status=Certification.Status.SUPERSEDED)
        .order_by("-signed_off_at")
        .first()
    )
    if signed is not None:
        return signed
    return (
        Certification.objects.filter(partner=partner, scope=scope, status="open")
        .order_by("-created_at")
        .first()
    )


def go_live_answer(
    partner: Partner, scope: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    now = now or timezone.now()
    certification = current_certification(partner, scope)
    answer: dict[str, Any] = {
        "partner": partner.external_id,
        "scope": scope,
        "certified": False,
        "status": "not certified",
        "title": None,
        "since": None,
        "until": None,
        "waiversInForce": [],
        "bundleSha256": None,
        "certification": None,
        "checkedAt": _iso(now),
    }
    if certification is None:
        answer["reason"] = "no certification of this scope"
        return answer
    certified = (
        certification.status == Certification.Status.CERTIFIED
        and certification.valid_until is not None
        and certification.valid_until > now
    )
    on = now.astimezone(dt.UTC).date()
    answer.update(
        certified=certified,
        status="expired"
        if certification.status == Certification.Status.CERTIFIED and not certified
        else certification.status,
        title=certification.title,
        since=_iso(certification.signed_off_at),
        until=_iso(certification.valid_until),
        certification=str(certification.pk),
        bundleSha256=certification.bundle_sha256 or None,
        partnerConfirmed=certification.partner_confirmed_at is not None,
        waiversInForce=[
            {"kind": w.item_kind, "item": w.item_label, "endsOn": w.ends_on.isoformat()}
            for w in certification.waivers.filter(status=Waiver.Status.APPROVED).order_by(
                "ends_on", "item_key"
            )
            if review_reads.waiver_in_force(w, on=on)
        ],
    )
    if not certified:
        answer["reason"] = _public_reason(certification)
    return answer


def _public_reason(certification: Certification) -> str:
    """Why the scope is not certified, as far as the public may know: expiry reasons are the
    product's own words; a suspension's or withdrawal's reason stays in the product."""
    status = certification.status
    if status == Certification.Status.EXPIRED or (status == Certification.Status.CERTIFIED):
        return certification.status_reason or "the validity has ended"
    return {
        Certification.Status.OPEN: "in certification, not signed off yet",
        Certification.Status.SUSPENDED: "suspended by a QA lead",
        Certification.Status.WITHDRAWN: "withdrawn before sign-off",
    }.get(status, status)


def unknown_answer(partner_id: str, scope: str) -> dict[str, Any]:
    """The answer for a partner id nobody registered: not certified, same shape."""
    return {
        "partner": partner_id,
        "scope": scope,
        "certified": False,
        "status": "not certified",
        "title": None,
        "since": None,
        "until": None,
        "waiversInForce": [],
        "bundleSha256": None,
        "certification": None,
        "checkedAt": _iso(timezone.now()),
        "reason": "no such partner",
    }


_COLOURS = {
    "certified": "#1a7f37",
    "open": "#6e7781",
    "not certified": "#6e7781",
    "expired": "#9a6700",
    "suspended": "#cf222e",
    "withdrawn": "#6e7781",
}


def badge_svg(answer: dict[str, Any]) -> str:
    """A flat two-part badge: "certdash | certified until 2027-12-01"."""
    if answer["certified"]:
        right = f"certified until {answer['until'][:10]}"
        colour = _COLOURS["certified"]
    else:
        status = answer["status"]
        right = {"open": "in certification"}.get(status, status)
        colour = _COLOURS.get(status, "#6e7781")
    left = f"{answer['scope']}"
    char_w = 6.5
    left_w = int(len(left) * char_w + 12)
    right_w = int(len(right) * char_w + 12)
    width = left_w + right_w
    label = escape(f"{answer['partner']} {answer['scope']}: {right}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<rect width="{left_w}" height="20" fill="#555"/>'
        f'<rect x="{left_w}" width="{right_w}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="6" y="14">{escape(left)}</text>'
        f'<text x="{left_w + 6}" y="14">{escape(right)}</text></g></svg>'
    )
