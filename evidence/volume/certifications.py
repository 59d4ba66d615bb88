"""Generated certifications in every status, and the partner status that follows from them.

Each partner gets a story, chosen by its number in turn (partners 1 to 3 cover every status
between them): a certification superseded by a newer sign-off of the same scope; an expired one
and an open one; a suspended one and a withdrawn one; one certified and expiring within 30
days; only an open one; only a certified one; only an expired one; or none (still
onboarding). At most one certification per scope is open, as the database requires.

A certification is written open first, with its checklist and pinned runs (the database refuses
both once it is signed), then moved to its final state. Pinned runs are not locked
(``Run.locked_at`` stays empty) so seeded runs stay writable for later tools. The partner's
status is then derived by ``evidence.services.partner_status_of``, the rule every service uses.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evidence import checklist as checklist_data
from evidence.models import Certification, CertificationRun, ChecklistItem
from evidence.services import partner_status_of
from partners import access
from partners.models import Partner

STORIES = (
    "superseded", "expired_and_open", "suspended_and_withdrawn", "expiring", "open",
    "certified", "superseded", "expired", "onboarding", "open",
)  # fmt: skip
S = Certification.Status


@dataclass(frozen=True)
class RunRef:
    pk: int
    created_at: dt.datetime
    status: str


@dataclass
class _Plan:
    scope: str
    status: str
    created_at: dt.datetime
    signed_at: dt.datetime | None = None
    validity_days: int = 365
    reason: str = ""
    changed_at: dt.datetime | None = None


def story_for(number: int) -> str:
    return STORIES[(number - 1) % len(STORIES)]


def _plans(story: str, *, now: dt.datetime, last_run_at: dt.datetime | None, rng: random.Random):
    days = dt.timedelta(days=1)
    opened = min(now - days, (last_run_at or now) - dt.timedelta(hours=1))
    if story == "superseded":
        newer = now - rng.randint(10, 40) * days
        return [
            _Plan("orders-v1", S.SUPERSEDED, now - 175 * days, now - 170 * days,
                  reason=f"superseded by the sign-off of {newer:%Y-%m-%d %H:%M} UTC",
                  changed_at=newer),
            _Plan("orders-v1", S.CERTIFIED, newer - 5 * days, newer, changed_at=newer),
        ]  # fmt: skip
    if story == "expired_and_open":
        signed = now - 160 * days
        until = signed + 90 * days
        return [
            _Plan("orders-v1", S.EXPIRED, signed - 5 * days, signed, validity_days=90,
                  reason=f"validity ended on {until:%Y-%m-%d}", changed_at=until),
            _Plan("orders-v2", S.OPEN, opened - 2 * days),
        ]  # fmt: skip
    if story == "suspended_and_withdrawn":
        suspended = now - rng.randint(3, 20) * days
        return [
            _Plan("orders-v0", S.WITHDRAWN, now - 130 * days,
                  reason="scope replaced by orders-v1", changed_at=now - 120 * days),
            _Plan("orders-v1", S.SUSPENDED, now - 70 * days, now - 60 * days,
                  reason="p95 over target in production (incident review pending)",
                  changed_at=suspended),
        ]  # fmt: skip
    if story == "expiring":
        signed = now - (90 - rng.randint(3, 25)) * days
        return [_Plan("orders-v1", S.CERTIFIED, signed - 3 * days, signed, 90, changed_at=signed)]
    if story == "expired":
        signed = now - 200 * days
        until = signed + 180 * days
        return [
            _Plan("orders-v1", S.EXPIRED, signed - 5 * days, signed, validity_days=180,
                  reason=f"validity ended on {until:%Y-%m-%d}", changed_at=until),
        ]  # fmt: skip
    if story == "open":
        return [_Plan("orders-v1", S.OPEN, opened - 2 * days)]
    if story == "certified":
        signed = now - rng.randint(20, 60) * days
        return [_Plan("orders-v1", S.CERTIFIED, signed - 4 * days, signed, changed_at=signed)]
    return []


def certifications_create(
    *,
    rng: random.Random,
    partner: Partner,
    number: int,
    suite_name: str,
    runs: Sequence[RunRef],
    signer: Any,
    now: dt.datetime,
) -> list[Certification]:
    """The partner's certifications by its story (call inside a transaction)."""
    plans = _plans(story_for(number), now=now, last_run_at=max((r.created_at for r in runs),
                   default=None), rng=rng)  # fmt: skip
    role = access.role_of(signer)
    made = []
    for plan in plans:
        certification = Certification.objects.create(
            partner=partner,
            scope=plan.scope,
            title=f"Orders API certification ({plan.scope})",
            suite_names=[suite_name],
            validity_days=plan.validity_days,
            created_by=signer,
            created_at=plan.created_at,
        )
        signed = plan.signed_at is not None
        decided_at = (plan.signed_at or now) - dt.timedelta(hours=2)
        ChecklistItem.objects.bulk_create(
            ChecklistItem(
                certification=certification, key=entry.key, position=i, label=entry.label,
                **({"state": ChecklistItem.State.MET, "changed_by": signer,
                    "changed_at": decided_at} if signed or (plan.status == S.OPEN and i < 3)
                   else {}),
            )
            for i, entry in enumerate(checklist_data.QUICK_GATE)
        )  # fmt: skip
        if signed:
            before = [r for r in runs if r.created_at < plan.signed_at]
            pinned = max(before, key=lambda r: r.created_at, default=None)
            if pinned is not None:
                CertificationRun.objects.create(
                    certification=certification, run_id=pinned.pk, suite_name=suite_name
                )
            Certification.objects.filter(pk=certification.pk).update(
                status=plan.status,
                status_reason=plan.reason,
                status_changed_at=plan.changed_at,
                status_changed_by=signer,
                signed_off_by=signer,
                signed_off_role=role,
                signed_off_at=plan.signed_at,
                signoff_note="Seeded volume data.",
                valid_until=plan.signed_at + dt.timedelta(days=plan.validity_days),
            )
        elif plan.status != S.OPEN:
            Certification.objects.filter(pk=certification.pk).update(
                status=plan.status,
                status_reason=plan.reason,
                status_changed_at=plan.changed_at,
                status_changed_by=signer,
            )
        made.append(certification)
    return made


def partner_status_set(partner: Partner, *, now: dt.datetime) -> str:
    """Store the status the partner's certifications give it (no audit event: seed data)."""
    status = partner_status_of(partner, now=now)
    if status != partner.status:
        Partner.objects.filter(pk=partner.pk).update(status=status)
        partner.status = status
    return status
