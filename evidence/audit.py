"""Writing and checking audit events: the append-only, hash-chained audit log.

Callers are services, inside their own transaction, so that the change and its audit event
commit together or not at all. ``audit_record`` is the one way to write an event.

The chain
---------
Events are numbered ``seq`` = 1, 2, 3… without gaps. Each event stores ``prev_hash``, the
``hash`` of the event with the previous ``seq`` (64 ``0`` characters for seq 1), and its own
``hash``: the SHA-256, as 64 lower-case hex digits, of the UTF-8 bytes of this JSON document::

    {"action":…,"actor":…,"at":…,"data":…,"partner":…,"prev_hash":…,"seq":…,"target":…}

serialised with ``json.dumps(document, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, cls=DjangoJSONEncoder)`` — keys sorted, no whitespace, non-ASCII characters
written as themselves — where

- ``seq`` is the event's number, a JSON integer;
- ``at`` is the event's time in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six digits of
  microseconds, always ``Z``), e.g. ``"2026-12-01T22:39:00.000123Z"``;
- ``actor`` is ``actor_label`` (the username, or a label such as ``"celery beat"``);
- ``action``, ``target`` are the stored strings (``target`` at most 200 characters);
- ``partner`` is ``partner_label``, the partner's external id (``""`` for no partner), kept on
  the event so that the chain survives the partner being renamed or deleted;
- ``data`` is the stored JSON object, nested inside the document (so canonicalised the same
  way: sorted keys, compact, ``ensure_ascii=False``). Before it is stored and hashed it is
  normalised by a JSON round trip through ``DjangoJSONEncoder`` (dates become ISO strings,
  datetimes with milliseconds as that encoder writes them; decimals and UUIDs become strings,
  tuples lists), with integral floats of magnitude ≥ 1e16 written as integers, so that what is
  hashed is exactly what any database gives back (NaN and infinities are refused with
  ``ValueError``);
- ``prev_hash`` is as above.

Writers are serialised so the chain has no forks: inside ``transaction.atomic()`` (a savepoint
when the caller's transaction is open) the writer takes ``pg_advisory_xact_lock(CHAIN_LOCK_ID)``
on PostgreSQL — held until the outermost transaction ends, so the next writer reads this
event as the head — then reads the event with the highest ``seq``, stamps ``at`` and inserts.
On SQLite the write transaction itself serialises writers (``transaction_mode`` IMMEDIATE).
``manage.py verify_audit`` recomputes every hash and link.

Never pass secret values in ``data``; name the secrets that changed instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.http import HttpRequest
from django.utils import timezone

from evidence.models import AuditEvent

GENESIS_HASH = "0" * 64
# Key of the PostgreSQL advisory lock that serialises chain writers: "CD_AUDIT" in ASCII.
CHAIN_LOCK_ID = int.from_bytes(b"CD_AUDIT", "big")
# The clock events are stamped with; tests may replace it to write events at chosen times.
clock: Callable[[], datetime] = timezone.now


def audit_record(
    *,
    actor: Any,
    action: str,
    partner: Any = None,
    target: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event. ``actor`` is a user or a label such as ``"manage.py import_registry"``.
    Never pass secret values in ``data``."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    label = user.get_username() if user is not None else str(actor or "system")
    event = AuditEvent(
        actor=user,
        actor_label=label[:150],
        action=action,
        partner=partner,
        target=target[:200],
        data=data or {},
    )
    event.save()
    return event


def chain_event(event: AuditEvent, *, using: str) -> None:
    """Fill ``seq``, ``prev_hash``, ``at``, ``partner_label`` and ``hash`` of a new event as the
    next link of the chain. Called by ``AuditEvent.save`` inside its atomic block."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])
    head = AuditEvent.objects.using(using).order_by("-seq").values_list("seq", "hash").first()
    event.seq, event.prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    event.at = clock()
    if event.partner_id is not None and not event.partner_label:
        event.partner_label = event.partner.external_id
    event.data = normalise_data(event.data)
    event.hash = event_hash(event)


def normalise_data(data: Any) -> Any:
    """``data`` as the database will give it back (see the module docstring)."""
    text = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, allow_nan=False)
    return _integral_big_floats(json.loads(text))


def _integral_big_floats(value: Any) -> Any:
    # PostgreSQL's jsonb prints 1e+16 as 10000000000000000, which reads back as an int.
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 1e16:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_big_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_big_floats(item) for item in value]
    return value


def format_at(at: datetime) -> str:
    """An event time as the chain writes it: UTC, microseconds, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )


def chain_hash(
    *,
    seq: int,
    at: datetime,
    actor_label: str,
    action: str,
    partner_label: str,
    target: str,
    data: Any,
    prev_hash: str,
) -> str:
    """The hash of one event from its stored values (see the module docstring)."""
    document = {
        "seq": seq,
        "at": format_at(at),
        "actor": actor_label,
        "action": action,
        "partner": partner_label,
        "target": target,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def event_hash(event: AuditEvent) -> str:
    return chain_hash(
        seq=event.seq,
        at=event.at,
        actor_label=event.actor_label,
        action=event.action,
        partner_label=event.partner_label,
        target=event.target,
        data=event.data,
        prev_hash=event.prev_hash,
    )


# ----------------------------------------------------------------------------- sign-in events


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver. A partner user's login belongs to their partner, so that
    their colleagues see it in the trail."""
    audit_record(
        actor=user,
        action="auth.login",
        partner=_member_partner(user),
        target=user.get_username(),
        data={"ip_address": _client_ip(request)},
    )


def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``user_logged_out`` receiver; Django sends it with ``user=None`` when nobody was in."""
    if user is None or not getattr(user, "is_authenticated", False):
        return
    audit_record(
        actor=user,
        action="auth.logout",
        partner=_member_partner(user),
        target=user.get_username(),
        data={"ip_address": _client_ip(request)},
    )


def _member_partner(user: Any) -> Any:
    from partners.access import member_partner_id
    from partners.models import Partner

    partner_id = member_partner_id(user)
    return Partner.objects.filter(pk=partner_id).first() if partner_id is not None else None


def _client_ip(request: HttpRequest | None) -> str | None:
    # Imported here: partners.login_throttling imports this module.
    from partners.login_throttling import client_ip

    return client_ip(request) if request is not None else None


# ----------------------------------------------------------------------------- verification


@dataclass
class ChainReport:
    """What ``verify_chain`` found: ``problem`` names the first broken event, or is None."""

    events: int = 0
    head: str = GENESIS_HASH
    problem: str | None = None
    hashes: dict[int, str] = field(default_factory=dict)


def verify_chain(*, using: str = "default", remember: frozenset[int] = frozenset()) -> ChainReport:
    """Walk the chain in ``seq`` order, streaming, and stop at the first broken link. The
    hashes of the events numbered in ``remember`` are kept in the report (for anchors)."""
    report = ChainReport()
    fields = ("id", "seq", "at", "actor_label", "action", "partner_label", "target", "data")
    rows = AuditEvent.objects.using(using).order_by("seq").values(*fields, "prev_hash", "hash")
    expected, prev_hash = 1, GENESIS_HASH
    for row in rows.iterator(chunk_size=2000):
        seq = row["seq"]
        if seq != expected:
            report.problem = (
                f"seq {expected} missing (gap after {expected - 1})"
                if expected > 1
                else f"seq 1 missing (the chain starts at seq {seq})"
            )
            return report
        # The link first: an event moved out of its place reads as a broken link.
        if row["prev_hash"] != prev_hash:
            report.problem = (
                f"event seq {seq}: prev_hash does not match event {seq - 1}"
                if seq > 1
                else "event seq 1: prev_hash is not 64 zeros"
            )
            return report
        recomputed = chain_hash(
            seq=seq,
            at=row["at"],
            actor_label=row["actor_label"],
            action=row["action"],
            partner_label=row["partner_label"],
            target=row["target"],
            data=row["data"],
            prev_hash=row["prev_hash"],
        )
        if recomputed != row["hash"]:
            report.problem = f"event seq {seq} (id {row['id']}): hash does not match its contents"
            return report
        if seq in remember:
            report.hashes[seq] = row["hash"]
        report.events, report.head = seq, row["hash"]
        expected, prev_hash = seq + 1, row["hash"]
    return report
