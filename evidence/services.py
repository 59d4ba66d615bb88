"""Writes to certifications: opening one, the checklist, waivers, sign-off, the partner's
confirmation, suspension and expiry, and the partner's lifecycle status that follows from them.

Each service owns its transaction and writes its audit event inside it. A partner's ``status``
is never set anywhere else: ``partner_status_refresh`` derives it from the certifications.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from certification.models import Run, Suite
from evidence import checklist as checklist_data
from evidence import review as review_reads
from evidence.audit import audit_record
from evidence.models import (
    Certification,
    CertificationRun,
    ChecklistItem,
    Waiver,
)
from partners import access
from partners.models import Partner

MAX_VALIDITY_DAYS = 3 * 365
MAX_WAIVER_DAYS = 366


def _user(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


def _require(by: Any, perm: str, what: str) -> None:
    if not (getattr(by, "is_authenticated", False) and by.has_perm(perm)):
        raise PermissionDenied(f"You may not {what}.")


def _require_open(certification: Certification) -> None:
    if certification.status != Certification.Status.OPEN:
        raise ValidationError(
            f"This certification is {certification.get_status_display().lower()}; "
            "it can no longer be changed."
        )


# -- lifecycle ------------------------------------------------------------------------------


def partner_status_of(partner: Partner, *, now: dt.datetime | None = None) -> str:
    """The lifecycle status the partner's certifications give it.

    Certified (a signed certification in force) wins; then suspended (the latest signed one was
    suspended); then in certification (an open certification with a run of a suite in scope);
    then expired; otherwise onboarding."""
    now = now or timezone.now()
    certifications = list(partner.certifications.all())
    if any(
        c.status == Certification.Status.CERTIFIED and c.valid_until and c.valid_until > now
        for c in certifications
    ):
        return Partner.Status.CERTIFIED
    signed = sorted(
        (c for c in certifications if c.signed_off_at),
        key=lambda c: (c.status_changed_at or c.signed_off_at, c.signed_off_at),
    )
    if signed and signed[-1].status == Certification.Status.SUSPENDED:
        return Partner.Status.SUSPENDED
    for c in certifications:
        if (
            c.status == Certification.Status.OPEN
            and Run.objects.filter(
                partner=partner, suite__name__in=c.suite_names, created_at__gte=c.created_at
            ).exists()
        ):
            return Partner.Status.IN_CERTIFICATION
    if any(c.status == Certification.Status.EXPIRED for c in certifications):
        return Partner.Status.EXPIRED
    if any(c.status == Certification.Status.SUSPENDED for c in certifications):
        return Partner.Status.SUSPENDED
    return Partner.Status.ONBOARDING


def partner_status_refresh(*, partner: Partner, by: Any, reason: str = "") -> str:
    """Set the partner's status from its certifications; audit a change. Returns the status.

    The audit event is written before the partner row is updated: the audit chain's lock is
    then always taken before the partner's row lock, the order every other writer uses, so
    two refreshes cannot deadlock with a run being created."""
    for _ in range(3):
        current = Partner.objects.values_list("status", flat=True).get(pk=partner.pk)
        status = partner_status_of(partner)
        if status == current:
            partner.status = status
            return status
        try:
            with transaction.atomic():
                audit_record(
                    actor=by,
                    action="partner.status",
                    partner=partner,
                    target=partner.external_id,
                    data={"from": current, "to": status, "reason": reason},
                )
                changed = Partner.objects.filter(pk=partner.pk, status=current).update(
                    status=status, updated_at=timezone.now()
                )
                if not changed:
                    raise _StatusMoved
        except _StatusMoved:
            continue  # another writer moved it meanwhile: judge again
        partner.status = status
        return status
    partner.refresh_from_db(fields=["status"])
    return partner.status


class _StatusMoved(Exception):
    pass


def on_run_created(*, run: Run, by: Any) -> None:
    """A run of a suite in an open certification's scope moves the partner into certification."""
    in_scope = any(
        run.suite.name in suite_names
        for suite_names in Certification.objects.filter(
            partner_id=run.partner_id, status=Certification.Status.OPEN
        ).values_list("suite_names", flat=True)
    )
    if in_scope:
        partner_status_refresh(partner=run.partner, by=by, reason=f"run {run.pk} in scope")


# -- opening and the checklist ---------------------------------------------------------------


@transaction.atomic
def certification_open(
    *,
    partner: Partner,
    scope: str,
    title: str,
    suite_names: Iterable[str],
    by: Any,
    sla_names: Iterable[str] = (),
    validity_days: int = 365,
    now: dt.datetime | None = None,
) -> Certification:
    """Open a certification of ``scope`` for the partner, with the quick-gate checklist."""
    _require(by, "evidence.add_certification", "open certifications")
    suites = list(dict.fromkeys(s.strip() for s in suite_names if s.strip()))
    slas = list(dict.fromkeys(s.strip() for s in sla_names if s.strip()))
    errors: dict[str, list[str]] = {}
    if not suites:
        errors.setdefault("suite_names", []).append("Choose at least one suite.")
    known = set(Suite.objects.filter(name__in=suites).values_list("name", flat=True))
    if missing := [s for s in suites if s not in known]:
        errors.setdefault("suite_names", []).append(f"No suite named {', '.join(missing)}.")
    partner_slas = set(partner.slas.values_list("name", flat=True))
    if unknown := [s for s in slas if s not in partner_slas]:
        errors.setdefault("sla_names", []).append(
            f"{partner.external_id} has no SLA named {', '.join(unknown)} "
            f"(its SLAs: {', '.join(sorted(partner_slas)) or 'none'})."
        )
    if not 1 <= validity_days <= MAX_VALIDITY_DAYS:
        errors.setdefault("validity_days", []).append(
            f"Validity must be between 1 and {MAX_VALIDITY_DAYS} days."
        )
    certification = Certification(
        partner=partner,
        scope=scope,
        title=title.strip(),
        suite_names=suites,
        sla_names=slas,
        validity_days=validity_days,
        created_by=_user(by),
        created_at=now or timezone.now(),
    )
    try:
        certification.full_clean(
            exclude=["partner", "created_by", "status_changed_by", "suite_names", "sla_names"]
        )
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    if Certification.objects.filter(
        partner=partner, scope=scope, status=Certification.Status.OPEN
    ).exists():
        raise ValidationError(
            {"scope": [f"{partner.external_id} already has an open certification of {scope}."]}
        )
    try:
        with transaction.atomic():
            certification.save(force_insert=True)
    except IntegrityError:
        raise ValidationError(
            {"scope": [f"{partner.external_id} already has an open certification of {scope}."]}
        ) from None
    ChecklistItem.objects.bulk_create(
        ChecklistItem(certification=certification, key=e.key, position=i, label=e.label)
        for i, e in enumerate(checklist_data.QUICK_GATE)
    )
    audit_record(
        actor=by,
        action="certification.open",
        partner=partner,
        target=f"{partner.external_id}/{scope}",
        data={"title": certification.title, "suites": suites, "slas": slas,
              "validity_days": validity_days},
    )  # fmt: skip
    transaction.on_commit(lambda: partner_status_refresh(partner=partner, by=by))
    return certification


@transaction.atomic
def checklist_set(*, item: ChecklistItem, state: str, note: str, by: Any) -> ChecklistItem:
    _require(by, "evidence.change_checklistitem", "change the review checklist")
    certification = Certification.objects.select_for_update().get(pk=item.certification_id)
    _require_open(certification)
    if state not in ChecklistItem.State.values:
        raise ValidationError({"state": [f"Unknown state {state!r}."]})
    if state == ChecklistItem.State.NOT_APPLICABLE and not note.strip():
        raise ValidationError({"note": ["Say why this item does not apply."]})
    before = item.state
    item.state = state
    item.note = note.strip()
    item.changed_by = _user(by) if state != ChecklistItem.State.OPEN else None
    item.changed_at = timezone.now() if state != ChecklistItem.State.OPEN else None
    item.save(update_fields=["state", "note", "changed_by", "changed_at"])
    audit_record(
        actor=by,
        action="checklist.set",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}: {item.key}",
        data={"from": before, "to": state, "note": item.note},
    )
    return item


# -- waivers ----------------------------------------------------------------------------------


@transaction.atomic
def waiver_request(
    *,
    certification: Certification,
    item_kind: str,
    item_key: str,
    reason: str,
    ends_on: dt.date,
    by: Any,
) -> Waiver:
    """Ask to waive one failing item until ``ends_on`` (inclusive)."""
    _require(by, "evidence.add_waiver", "request waivers")
    certification = Certification.objects.select_for_update().get(pk=certification.pk)
    _require_open(certification)
    review = review_reads.certification_review(certification)
    item = review.item(item_kind, item_key)
    if item is None:
        raise ValidationError({"item": ["There is no such item in this certification."]})
    if item.state != review_reads.FAILING:
        raise ValidationError({"item": [f"{item.label} is not failing; nothing to waive."]})
    if item.kind == Waiver.ItemKind.SUITE:
        raise ValidationError(
            {"item": [f"{item.label} has no evidence to waive ({item.detail}): run the suite, "
                      "or open a certification without it in scope."]}
        )  # fmt: skip
    if item.pending_waiver is not None:
        raise ValidationError({"item": [f"A waiver for {item.label} is already waiting."]})
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for the waiver."]})
    today = review_reads.today()
    if ends_on < today:
        raise ValidationError({"ends_on": ["The end date is in the past."]})
    if ends_on > today + dt.timedelta(days=MAX_WAIVER_DAYS):
        raise ValidationError({"ends_on": [f"A waiver lasts at most {MAX_WAIVER_DAYS} days."]})
    waiver = Waiver.objects.create(
        certification=certification,
        item_kind=item_kind,
        item_key=item_key,
        item_label=item.label[:300],
        reason=reason.strip(),
        ends_on=ends_on,
        requested_by=by,
        requested_at=timezone.now(),
    )
    audit_record(
        actor=by,
        action="waiver.request",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}: {item.label}",
        data={"item_kind": item_kind, "item_key": item_key, "reason": waiver.reason,
              "ends_on": ends_on.isoformat()},
    )  # fmt: skip
    return waiver


@transaction.atomic
def waiver_decide(*, waiver: Waiver, approve: bool, by: Any, note: str = "") -> Waiver:
    """Approve or reject a requested waiver. The approver must not be the requester."""
    _require(by, "evidence.approve_waiver", "approve waivers")
    certification = Certification.objects.select_for_update().get(pk=waiver.certification_id)
    _require_open(certification)
    waiver = Waiver.objects.select_for_update().get(pk=waiver.pk)
    if waiver.status != Waiver.Status.REQUESTED:
        raise ValidationError(f"This waiver is already {waiver.get_status_display().lower()}.")
    if waiver.requested_by_id == by.pk:
        raise ValidationError("A waiver needs an approver other than the person who requested it.")
    if approve and waiver.ends_on < review_reads.today():
        raise ValidationError(
            f"This waiver ended on {waiver.ends_on.isoformat()}; reject it and request a new one."
        )
    waiver.status = Waiver.Status.APPROVED if approve else Waiver.Status.REJECTED
    waiver.decided_by = by
    waiver.decided_at = timezone.now()
    waiver.decision_note = note.strip()
    waiver.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        actor=by,
        action="waiver.approve" if approve else "waiver.reject",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}: {waiver.item_label}",
        data={"item_kind": waiver.item_kind, "item_key": waiver.item_key,
              "ends_on": waiver.ends_on.isoformat(), "note": waiver.decision_note},
    )  # fmt: skip
    return waiver


# -- sign-off, confirmation, suspension, expiry -------------------------------------------------


@transaction.atomic
def certification_sign_off(
    *, certification: Certification, by: Any, note: str = "", now: dt.datetime | None = None
) -> Certification:
    """Sign off: only when every item of the review is ``ok`` or waived. Pins and locks the
    evidence runs, starts the validity period, supersedes the scope's previous certification,
    and queues the evidence bundle."""
    _require(by, "evidence.sign_off_certification", "sign off certifications")
    now = now or timezone.now()
    certification = Certification.objects.select_for_update().get(pk=certification.pk)
    _require_open(certification)
    review = review_reads.certification_review(certification)
    if running := [
        name for name, run in review.runs.items() if run is not None and not run.is_finished
    ]:
        raise ValidationError(f"Runs of {', '.join(running)} are still running.")
    if review.blockers or not review.ready:
        shown = "; ".join(f"{i.label}: {i.detail}" for i in review.blockers[:10])
        more = len(review.blockers) - 10
        raise ValidationError(
            f"Sign-off needs every in-scope scenario passed, every in-scope SLA met and every "
            f"checklist item decided, or a waiver in force for it. Not yet: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
        )
    for suite_name, run in review.runs.items():
        assert run is not None  # review.ready
        CertificationRun.objects.create(certification=certification, run=run, suite_name=suite_name)
        Run.objects.filter(pk=run.pk, locked_at__isnull=True).update(locked_at=now)
    for previous in Certification.objects.select_for_update().filter(
        partner=certification.partner,
        scope=certification.scope,
        status__in=[
            Certification.Status.CERTIFIED,
            Certification.Status.SUSPENDED,
            Certification.Status.EXPIRED,
        ],
    ):
        was = previous.get_status_display().lower()
        reason = f"superseded by the sign-off of {now:%Y-%m-%d %H:%M} UTC"
        if previous.status_reason:
            reason += f" (was {was}: {previous.status_reason})"
        previous.status = Certification.Status.SUPERSEDED
        previous.status_reason = reason
        previous.status_changed_at = now
        previous.status_changed_by = by
        previous.save(update_fields=Certification.MUTABLE_AFTER_SIGNOFF[:4])
        audit_record(
            actor=by,
            action="certification.supersede",
            partner=previous.partner,
            target=f"{previous.partner.external_id}/{previous.scope}",
            data={"was": was, "by_certification": str(certification.pk)},
        )
    certification.status = Certification.Status.CERTIFIED
    certification.signed_off_by = by
    certification.signed_off_role = access.role_of(by)
    certification.signed_off_at = now
    certification.signoff_note = note.strip()
    certification.valid_until = signed_validity(certification, review, now=now)
    certification.status_changed_at = now
    certification.status_changed_by = by
    certification.save()
    audit_record(
        actor=by,
        action="certification.sign_off",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}",
        data={
            "valid_until": certification.valid_until.isoformat(),
            "runs": {name: run.pk for name, run in review.runs.items() if run},
            "waivers": [str(i.waiver.pk) for i in review.waived if i.waiver],
            "note": certification.signoff_note,
        },
    )
    partner_status_refresh(partner=certification.partner, by=by, reason="sign-off")
    from evidence import bundles

    bundles.bundle_request(certification=certification, by=by)
    return certification


def signed_validity(
    certification: Certification, review: review_reads.Review, *, now: dt.datetime
) -> dt.datetime:
    """Until when a sign-off now holds: the validity period, cut short by the first waiver
    to end (a waiver is in force through its end date, so the certification until the end of
    that day, UTC)."""
    until = now + dt.timedelta(days=certification.validity_days)
    for item in review.waived:
        if item.waiver is not None:
            end = dt.datetime.combine(item.waiver.ends_on + dt.timedelta(days=1), dt.time(), dt.UTC)
            until = min(until, end)
    return until


@transaction.atomic
def certification_confirm(*, certification: Certification, by: Any) -> Certification:
    """The partner's counter-signature: a user of that partner confirms the certification."""
    _require(by, "evidence.confirm_certification", "confirm certifications for the partner")
    if access.member_partner_id(by) != certification.partner_id:
        raise PermissionDenied("Only a user of this partner can confirm its certification.")
    certification = Certification.objects.select_for_update().get(pk=certification.pk)
    if certification.status not in (Certification.Status.OPEN, Certification.Status.CERTIFIED):
        raise ValidationError("Only an open certification or one in force can be confirmed.")
    if certification.partner_confirmed_at:
        raise ValidationError("This certification is already confirmed.")
    certification.partner_confirmed_by = by
    certification.partner_confirmed_at = timezone.now()
    certification.save(update_fields=["partner_confirmed_by", "partner_confirmed_at"])
    audit_record(
        actor=by,
        action="certification.confirm",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}",
    )
    return certification


@transaction.atomic
def certification_suspend(*, certification: Certification, by: Any, reason: str) -> Certification:
    _require(by, "evidence.suspend_certification", "suspend certifications")
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for the suspension."]})
    certification = Certification.objects.select_for_update().get(pk=certification.pk)
    if certification.status != Certification.Status.CERTIFIED:
        raise ValidationError("Only a certification in force can be suspended.")
    _set_status(certification, Certification.Status.SUSPENDED, reason.strip(), by=by)
    audit_record(
        actor=by,
        action="certification.suspend",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}",
        data={"reason": reason.strip()},
    )
    partner_status_refresh(partner=certification.partner, by=by, reason="suspended")
    return certification


@transaction.atomic
def certification_withdraw(*, certification: Certification, by: Any, reason: str) -> Certification:
    """Close an open certification without signing it off."""
    _require(by, "evidence.add_certification", "withdraw certifications")
    certification = Certification.objects.select_for_update().get(pk=certification.pk)
    _require_open(certification)
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for withdrawing it."]})
    _set_status(certification, Certification.Status.WITHDRAWN, reason.strip(), by=by)
    audit_record(
        actor=by,
        action="certification.withdraw",
        partner=certification.partner,
        target=f"{certification.partner.external_id}/{certification.scope}",
        data={"reason": reason.strip()},
    )
    partner_status_refresh(partner=certification.partner, by=by, reason="withdrawn")
    return certification


def _set_status(certification: Certification, status: str, reason: str, *, by: Any) -> None:
    certification.status = status
    certification.status_reason = reason
    certification.status_changed_at = timezone.now()
    certification.status_changed_by = _user(by)
    certification.save(
        update_fields=["status", "status_reason", "status_changed_at", "status_changed_by"]
    )


def certifications_expire(*, now: dt.datetime | None = None) -> list[Certification]:
    """Beat's daily work: waivers past their end date expire (the item is open again), and a
    certification in force expires when its validity ends or a waiver it was signed with ends.
    Returns the certifications that expired."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    expired: list[Certification] = []
    for waiver in Waiver.objects.filter(status=Waiver.Status.APPROVED, ends_on__lt=today):
        with transaction.atomic():
            # The certification first, as every other writer of its parts locks it.
            Certification.objects.select_for_update().get(pk=waiver.certification_id)
            locked = Waiver.objects.select_for_update().get(pk=waiver.pk)
            if locked.status != Waiver.Status.APPROVED:
                continue
            locked.status = Waiver.Status.EXPIRED
            locked.save(update_fields=["status"])
            certification = locked.certification
            audit_record(
                actor="beat: expire certifications",
                action="waiver.expire",
                partner=certification.partner,
                target=f"{certification.partner.external_id}/{certification.scope}: "
                f"{locked.item_label}",
                data={"ends_on": locked.ends_on.isoformat()},
            )
            if certification.status == Certification.Status.CERTIFIED:
                _expire(
                    certification,
                    f"the waiver for {locked.item_label} ended on {locked.ends_on.isoformat()}",
                )
                expired.append(certification)
    for certification in Certification.objects.filter(
        status=Certification.Status.CERTIFIED, valid_until__lte=now
    ).select_related("partner"):
        with transaction.atomic():
            _expire(certification, f"validity ended on {certification.valid_until:%Y-%m-%d}")
            expired.append(certification)
    return expired


def _expire(certification: Certification, reason: str) -> None:
    locked = Certification.objects.select_for_update().get(pk=certification.pk)
    if locked.status != Certification.Status.CERTIFIED:
        return
    _set_status(locked, Certification.Status.EXPIRED, reason, by=None)
    audit_record(
        actor="beat: expire certifications",
        action="certification.expire",
        partner=locked.partner,
        target=f"{locked.partner.external_id}/{locked.scope}",
        data={"reason": reason},
    )
    partner_status_refresh(partner=locked.partner, by="beat: expire certifications", reason=reason)
    certification.status = locked.status
