"""Certifications: a partner, a scope (suites and SLAs), the runs that are its evidence, the
review checklist, waivers, the sign-off and its validity; and the evidence bundles built for
certifications and runs, with the keys that signed them.

Statuses move only through ``evidence.services``; after sign-off the certification's content,
its checklist, waivers and pinned runs are immutable (model and queryset guards here, database
triggers in migration 0004).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from certification.models import ImmutableRecordError
from partners.models import Partner, PartnerScopedQuerySet

__all__ = ["ImmutableRecordError"]

SCOPE_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_\-.]{0,59}$",
    "Use lower-case letters, digits, '.', '_' and '-' (e.g. orders-api-v1), at most 60 characters.",
)


class CertificationQuerySet(PartnerScopedQuerySet):
    def update(self, **kwargs: Any) -> int:
        frozen = [k for k in kwargs if k not in Certification.MUTABLE_AFTER_SIGNOFF]
        if frozen and self.filter(signed_off_at__isnull=False).exists():
            raise ImmutableRecordError(
                f"cannot change {', '.join(frozen)} of a signed-off certification"
            )
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(signed_off_at__isnull=False).exists():
            raise ImmutableRecordError("cannot delete a signed-off certification")
        return super().delete()


class Certification(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "In certification"
        CERTIFIED = "certified", "Certified"
        EXPIRED = "expired", "Expired"
        SUSPENDED = "suspended", "Suspended"
        SUPERSEDED = "superseded", "Superseded"
        WITHDRAWN = "withdrawn", "Withdrawn"

    # What a signed certification may still change: its lifecycle, and the partner's
    # counter-signature. Everything else is frozen at sign-off.
    MUTABLE_AFTER_SIGNOFF = (
        "status",
        "status_reason",
        "status_changed_at",
        "status_changed_by",
        "partner_confirmed_by",
        "partner_confirmed_at",
        "bundle_sha256",
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="certifications")
    scope = models.CharField(max_length=60, validators=[SCOPE_VALIDATOR])
    title = models.CharField(max_length=200)
    suite_names = models.JSONField(default=list, help_text="The suites in scope, by name.")
    sla_names = models.JSONField(
        default=list, help_text="The partner's SLAs in scope, by name; empty: all of them."
    )
    validity_days = models.PositiveIntegerField(default=365)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_role = models.CharField(max_length=40, blank=True)
    signed_off_at = models.DateTimeField(null=True, blank=True)
    signoff_note = models.TextField(blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    partner_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    partner_confirmed_at = models.DateTimeField(null=True, blank=True)
    bundle_sha256 = models.CharField(max_length=64, blank=True)

    objects = CertificationQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "scope", "-created_at"]
        permissions = [
            ("sign_off_certification", "Can sign off a certification"),
            ("suspend_certification", "Can suspend a certification"),
            ("confirm_certification", "Can confirm a certification for the partner"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "scope"],
                condition=Q(status="open"),
                name="certification_one_open_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(signed_off_by__isnull=True, signed_off_at__isnull=True)
                | Q(signed_off_by__isnull=False, signed_off_at__isnull=False),
                name="certification_signoff_paired",
            ),
            models.CheckConstraint(
                condition=Q(partner_confirmed_by__isnull=True, partner_confirmed_at__isnull=True)
                | Q(partner_confirmed_by__isnull=False, partner_confirmed_at__isnull=False),
                name="certification_confirmation_paired",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "withdrawn"])
                | Q(signed_off_at__isnull=False, valid_until__isnull=False),
                name="certification_certified_is_signed",
            ),
            models.CheckConstraint(
                condition=~Q(status="suspended") | ~Q(status_reason=""),
                name="certification_suspension_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner.external_id} {self.title}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            old = type(self).objects.filter(pk=self.pk).first()
            if old is not None and old.signed_off_at is not None:
                changed = frozen_fields_changed(self, old, self.MUTABLE_AFTER_SIGNOFF)
                if old.bundle_sha256 and self.bundle_sha256 != old.bundle_sha256:
                    changed.append("bundle_sha256")
                if changed:
                    raise ImmutableRecordError(
                        f"cannot change {', '.join(changed)} of a signed-off certification"
                    )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if type(self).objects.filter(pk=self.pk, signed_off_at__isnull=False).exists():
            raise ImmutableRecordError("cannot delete a signed-off certification")
        return super().delete(*args, **kwargs)

    @property
    def is_signed(self) -> bool:
        return self.signed_off_at is not None


class FrozenWithCertificationQuerySet(models.QuerySet):
    """Rows of a signed-off certification cannot be changed or deleted in bulk."""

    def update(self, **kwargs: Any) -> int:
        allowed = getattr(self.model, "MUTABLE_AFTER_SIGNOFF", ())
        if (
            set(kwargs) - set(allowed)
            and self.filter(certification__signed_off_at__isnull=False).exists()
        ):
            raise ImmutableRecordError(
                f"cannot change {self.model._meta.verbose_name_plural} of a signed-off "
                "certification"
            )
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(certification__signed_off_at__isnull=False).exists():
            raise ImmutableRecordError(
                f"cannot delete {self.model._meta.verbose_name_plural} of a signed-off "
                "certification"
            )
        return super().delete()


class FrozenWithCertificationModel(models.Model):
    """``save()`` and ``delete()`` refuse once the certification is signed off, except a change
    limited to ``MUTABLE_AFTER_SIGNOFF`` fields (checked against the database row)."""

    MUTABLE_AFTER_SIGNOFF: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._signed():
            old = None if self._state.adding else type(self).objects.filter(pk=self.pk).first()
            if old is None or frozen_fields_changed(self, old, self.MUTABLE_AFTER_SIGNOFF):
                raise ImmutableRecordError(
                    f"cannot change the {self._meta.verbose_name} of a signed-off certification"
                )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self._signed():
            raise ImmutableRecordError(
                f"cannot delete the {self._meta.verbose_name} of a signed-off certification"
            )
        return super().delete(*args, **kwargs)

    def _signed(self) -> bool:
        return Certification.objects.filter(
            pk=self.certification_id, signed_off_at__isnull=False
        ).exists()


class CertificationRun(FrozenWithCertificationModel):
    """A run pinned as evidence of a certification at sign-off."""

    certification = models.ForeignKey(
        Certification, on_delete=models.PROTECT, related_name="evidence_runs"
    )
    run = models.ForeignKey(
        "certification.Run", on_delete=models.PROTECT, related_name="certification_links"
    )
    suite_name = models.CharField(max_length=200)

    objects = FrozenWithCertificationQuerySet.as_manager()

    class Meta:
        ordering = ["certification", "suite_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["certification", "run"], name="certification_run_unique"
            ),
            models.UniqueConstraint(
                fields=["certification", "suite_name"], name="certification_run_one_per_suite"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.certification} <- run {self.run_id}"


class ChecklistItem(FrozenWithCertificationModel):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        MET = "met", "Met"
        NOT_APPLICABLE = "not_applicable", "Not applicable"

    certification = models.ForeignKey(
        Certification, on_delete=models.PROTECT, related_name="checklist"
    )
    key = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=300)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    note = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    objects = FrozenWithCertificationQuerySet.as_manager()

    class Meta:
        ordering = ["certification", "position"]
        constraints = [
            models.UniqueConstraint(fields=["certification", "key"], name="checklist_unique_key"),
            models.CheckConstraint(
                condition=Q(state="open") | Q(changed_at__isnull=False),
                name="checklist_decided_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.state}"


class Waiver(FrozenWithCertificationModel):
    """An accepted exception for one failing item of a certification, until ``ends_on``.

    After sign-off only its expiry (``approved`` -> ``expired``) may still be written."""

    MUTABLE_AFTER_SIGNOFF = ("status",)

    class ItemKind(models.TextChoices):
        SCENARIO = "scenario", "Scenario"
        SLA = "sla", "SLA verdict"
        CHECKLIST = "checklist", "Checklist item"
        SUITE = "suite", "Suite without evidence"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    certification = models.ForeignKey(
        Certification, on_delete=models.PROTECT, related_name="waivers"
    )
    item_kind = models.CharField(max_length=20, choices=ItemKind.choices)
    item_key = models.CharField(max_length=300)
    item_label = models.CharField(max_length=300)
    reason = models.TextField()
    ends_on = models.DateField(help_text="The last day the waiver is in force.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    objects = FrozenWithCertificationQuerySet.as_manager()

    class Meta:
        ordering = ["certification", "item_kind", "item_key", "-requested_at"]
        permissions = [("approve_waiver", "Can approve or reject a waiver")]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="waiver_has_reason"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="waiver_approver_not_requester",
            ),
            models.CheckConstraint(
                condition=Q(status="requested", decided_by__isnull=True, decided_at__isnull=True)
                | (~Q(status="requested") & Q(decided_by__isnull=False, decided_at__isnull=False)),
                name="waiver_decision_paired",
            ),
            models.UniqueConstraint(
                fields=["certification", "item_kind", "item_key"],
                condition=Q(status__in=["requested", "approved"]),
                name="waiver_one_live_per_item",
            ),
        ]

    def __str__(self) -> str:
        return f"waiver {self.item_kind} {self.item_key} ({self.status})"


class SigningKey(models.Model):
    """A public key that has signed bundles. Rotation keeps old keys listed with their validity."""

    fingerprint = models.CharField(max_length=100, unique=True)
    public_pem = models.TextField()
    first_used_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_used_at"]

    def __str__(self) -> str:
        return self.fingerprint


class BundleQuerySet(PartnerScopedQuerySet):
    partner_lookup = "partner"

    def update(self, **kwargs: Any) -> int:
        if self.filter(status="ready").exists():
            raise ImmutableRecordError("cannot change a finished evidence bundle")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(status="ready").exists():
            raise ImmutableRecordError("cannot delete a finished evidence bundle")
        return super().delete()


class EvidenceBundle(models.Model):
    """One build of an evidence bundle (for a certification or for a single run)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="+")
    certification = models.ForeignKey(
        Certification, null=True, blank=True, on_delete=models.PROTECT, related_name="bundles"
    )
    run = models.ForeignKey(
        "certification.Run",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bundles",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    signing_key = models.ForeignKey(
        SigningKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off = models.BooleanField(
        default=False,
        help_text="Built from the signed-off certification; False for a draft (or a run).",
    )

    objects = BundleQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(certification__isnull=True, run__isnull=False)
                | Q(certification__isnull=False, run__isnull=True),
                name="bundle_of_certification_or_run",
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(sha256="") & Q(finished_at__isnull=False)),
                name="bundle_ready_has_hash",
            ),
        ]

    def __str__(self) -> str:
        subject = (
            f"certification {self.certification_id}"
            if self.certification_id
            else (f"run {self.run_id}")
        )
        return f"bundle {self.pk} of {subject} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (
            not self._state.adding
            and type(self).objects.filter(pk=self.pk, status="ready").exists()
        ):
            raise ImmutableRecordError("cannot change a finished evidence bundle")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if type(self).objects.filter(pk=self.pk, status="ready").exists():
            raise ImmutableRecordError("cannot delete a finished evidence bundle")
        return super().delete(*args, **kwargs)

    @property
    def download_name(self) -> str:
        if self.certification_id:
            cert = self.certification
            draft = "" if self.signed_off else "-draft"
            return f"evidence-{cert.partner.external_id}-{cert.scope}{draft}.zip"
        return f"evidence-run-{self.run_id}.zip"


def frozen_fields_changed(instance: Any, old: Any, mutable: tuple[str, ...]) -> list[str]:
    """Field names whose value differs between two instances, ignoring ``mutable``."""
    changed = []
    for f in instance._meta.concrete_fields:
        if f.attname in mutable or f.name in mutable:
            continue
        if getattr(instance, f.attname) != getattr(old, f.attname):
            changed.append(f.name)
    return changed
