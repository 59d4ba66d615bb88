"""Writing audit events. Callers are services, inside their own transaction, so that the change
and its audit event commit together or not at all."""

from __future__ import annotations

from typing import Any

from evidence.models import AuditEvent


def audit_record(
    *,
    actor: Any,
    action: str,
    partner: Any = None,
    target: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record an event. ``actor`` is a user or a label such as ``"manage.py import_registry"``.
    Never pass secret values in ``data``."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    label = user.get_username() if user is not None else str(actor or "system")
    return AuditEvent.objects.create(
        actor=user,
        actor_label=label,
        action=action,
        partner=partner,
        target=target[:200],
        data=data or {},
    )
