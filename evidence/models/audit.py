"""The audit log: an append-only, hash-chained record of every change made through the product.

Rows are only ever inserted, and only through ``AuditEvent.save`` on a new event, which chains it
(``evidence.audit.chain_event``: ``seq``, ``prev_hash``, ``at``, ``hash``). Changing or deleting
a row through the ORM raises ``AuditLogIsAppendOnly``; on PostgreSQL a trigger (migration
``0003_audit_chain``) refuses UPDATE and DELETE from any client as well.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.utils import timezone

from partners.models import PartnerScopedQuerySet


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or delete audit events through the ORM."""


_REFUSAL = "the audit log is append-only: events cannot be changed or deleted"


class AuditEventQuerySet(PartnerScopedQuerySet):
    """``visible_to`` scopes events like every partner-owned row (an event without a partner is
    seen only by users who see all partners). Bulk writes are refused: ``update``/``delete``
    would rewrite history, and ``bulk_create`` would skip the chaining done by ``save``."""

    partner_lookup = "partner"

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly(_REFUSAL)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly(_REFUSAL)

    def _raw_delete(self, using: str) -> int:
        raise AuditLogIsAppendOnly(_REFUSAL)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AuditLogIsAppendOnly(_REFUSAL)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        raise AuditLogIsAppendOnly(
            "audit events are appended one at a time (evidence.audit.audit_record), "
            "so that each is chained to the one before"
        )


class AuditEvent(models.Model):
    # Set under the chain lock just before hashing (see evidence.audit.chain_event), so that
    # ``at`` never decreases along ``seq``; the default only serves unsaved instances.
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_label = models.CharField(
        max_length=150, help_text="Who acted, kept even if the user is renamed or a command ran."
    )
    action = models.CharField(max_length=80)
    # No database constraint and DO_NOTHING: deleting a partner must not UPDATE audit rows
    # (SET_NULL would, and the append-only trigger refuses it). ``partner_id`` keeps the old id
    # for scoping; ``partner_label`` keeps the external id, which is what the hash covers.
    partner = models.ForeignKey(
        "partners.Partner",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
    )
    partner_label = models.CharField(
        max_length=40, blank=True, editable=False, help_text="The partner's external id."
    )
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # The hash chain: ``seq`` numbers events 1, 2, 3… without gaps, ``prev_hash`` is the
    # previous event's ``hash`` and ``hash`` covers this event's fields and ``prev_hash`` (the
    # exact serialisation is in evidence.audit).
    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert a new event at the head of the chain; refuse to change a stored one."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AuditLogIsAppendOnly(_REFUSAL)
        from evidence.audit import chain_event

        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        kwargs["force_insert"] = True
        # One atomic block for lock, read-the-head and insert: on PostgreSQL the chain lock is
        # transaction-scoped and so lasts until the outermost transaction commits.
        with transaction.atomic(using=using):
            chain_event(self, using=using)
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly(_REFUSAL)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    @property
    def data_summary(self) -> str:
        """``key=value`` pairs, shortened for a table cell."""
        if not self.data:
            return ""
        if isinstance(self.data, dict):
            text = ", ".join(f"{key}={_compact(value)}" for key, value in sorted(self.data.items()))
        else:
            text = _compact(self.data)
        return text if len(text) <= 120 else text[:119] + "…"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)
