"""``manage.py verify_audit`` walks the hash chain and names the first broken event.

Tampering is done with raw SQL, as someone with database access would; on PostgreSQL the
append-only trigger has to be disabled first (inside the test's transaction, so it comes back)."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from evidence.audit import GENESIS_HASH, audit_record, chain_hash
from evidence.models import AuditEvent

pytestmark = pytest.mark.django_db


def _chain(n: int) -> list[AuditEvent]:
    return [audit_record(actor="test", action="test.event", target=f"t{i}") for i in range(n)]


def _tamper(*statements: tuple[str, list[Any]]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ALTER TABLE refuses while the events' deferred foreign-key checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "ALTER TABLE evidence_auditevent DISABLE TRIGGER evidence_auditevent_append_only"
            )
        for sql, params in statements:
            cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute(
                "ALTER TABLE evidence_auditevent ENABLE TRIGGER evidence_auditevent_append_only"
            )


def _verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue().strip()


def _broken(*args: str) -> str:
    with pytest.raises(CommandError) as excinfo:
        _verify(*args)
    assert excinfo.value.returncode == 1
    return str(excinfo.value)


def test_an_intact_chain_prints_the_count_and_the_head() -> None:
    events = _chain(3)
    assert _verify() == f"audit chain intact: 3 events, head {events[-1].hash}"


def test_an_empty_log_is_intact() -> None:
    assert _verify() == f"audit chain intact: 0 events, head {GENESIS_HASH}"


def test_an_edited_event_is_named_by_seq_and_id() -> None:
    events = _chain(3)
    _tamper(("UPDATE evidence_auditevent SET target = %s WHERE seq = 2", ["edited"]))
    assert _broken().endswith(f"event seq 2 (id {events[1].pk}): hash does not match its contents")


def test_a_deleted_event_is_a_gap() -> None:
    _chain(3)
    _tamper(("DELETE FROM evidence_auditevent WHERE seq = 2", []))
    assert _broken().endswith("seq 2 missing (gap after 1)")


def test_a_deleted_first_event_is_named() -> None:
    _chain(2)
    _tamper(("DELETE FROM evidence_auditevent WHERE seq = 1", []))
    assert _broken().endswith("seq 1 missing (the chain starts at seq 2)")


def test_an_event_rewritten_with_a_fresh_hash_breaks_the_next_link() -> None:
    events = _chain(3)
    second = events[1]
    forged = chain_hash(
        seq=2,
        at=second.at,
        actor_label=second.actor_label,
        action=second.action,
        partner_label="",
        target="forged",
        data={},
        prev_hash=second.prev_hash,
    )
    _tamper(
        ("UPDATE evidence_auditevent SET target = %s, hash = %s WHERE seq = 2", ["forged", forged])
    )
    assert _broken().endswith("event seq 3: prev_hash does not match event 2")


def test_reordered_events_break_the_link() -> None:
    _chain(3)
    _tamper(
        ("UPDATE evidence_auditevent SET seq = 1000 WHERE seq = 2", []),
        ("UPDATE evidence_auditevent SET seq = 2 WHERE seq = 3", []),
        ("UPDATE evidence_auditevent SET seq = 3 WHERE seq = 1000", []),
    )
    assert _broken().endswith("event seq 2: prev_hash does not match event 1")


def test_an_anchor_still_in_the_chain_passes() -> None:
    events = _chain(3)
    assert _verify("--anchor", f"2:{events[1].hash}").startswith("audit chain intact: 3 events")


def test_an_anchor_catches_newest_events_cut_off() -> None:
    events = _chain(3)
    _tamper(("DELETE FROM evidence_auditevent WHERE seq = 3", []))
    assert _verify() == f"audit chain intact: 2 events, head {events[1].hash}"
    message = _broken("--anchor", f"3:{events[2].hash}")
    assert message.endswith("anchor seq 3: no such event (the chain ends at seq 2)")


def test_an_anchor_with_another_hash_fails() -> None:
    _chain(2)
    message = _broken("--anchor", f"1:{'a' * 64}")
    assert "anchor seq 1: the event's hash is" in message
