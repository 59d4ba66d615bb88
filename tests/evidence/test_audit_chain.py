"""The audit log is a hash chain (evidence/audit.py): numbered without gaps, each event linked
to the one before, and append-only below the views — in the ORM everywhere, and on PostgreSQL
in the database itself."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction

from evidence import audit
from evidence.audit import GENESIS_HASH, audit_record, verify_chain
from evidence.models import AuditEvent
from evidence.models.audit import AuditLogIsAppendOnly
from partners.models import Partner
from tests import factories

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only"
)


def _record(n: int = 1, **kwargs: Any) -> list[AuditEvent]:
    return [audit_record(actor="test", action=f"test.{i}", **kwargs) for i in range(n)]


@pytest.mark.django_db
def test_the_first_event_has_seq_1_and_the_genesis_prev_hash() -> None:
    (event,) = _record()
    assert event.seq == 1
    assert event.prev_hash == GENESIS_HASH == "0" * 64


@pytest.mark.django_db
def test_each_event_links_to_the_one_before() -> None:
    events = _record(4)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash


@pytest.mark.django_db
def test_the_hash_is_sha256_of_the_documented_serialisation(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "clock", lambda: datetime(2026, 12, 1, 22, 39, 0, 123, tzinfo=UTC))
    (event,) = _record(partner=partner_a, target="run 7", data={"b": "é", "a": [1, 2]})
    document = (
        '{"action":"test.0","actor":"test","at":"2026-12-01T22:39:00.000123Z",'
        '"data":{"a":[1,2],"b":"é"},"partner":"p_a01","prev_hash":"' + "0" * 64 + '",'
        '"seq":1,"target":"run 7"}'
    )
    assert event.hash == hashlib.sha256(document.encode("utf-8")).hexdigest()


@pytest.mark.django_db
def test_data_is_hashed_as_the_database_gives_it_back() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    audit_record(
        actor="test",
        action="test.types",
        data={"when": when, "amount": Decimal("1.50"), "big": 1e20, "pair": (1, 2), 3: "x"},
    )
    stored = AuditEvent.objects.get()
    assert stored.data == {
        "when": "2026-01-02T03:04:05.678Z",
        "amount": "1.50",
        "big": 10**20,
        "pair": [1, 2],
        "3": "x",
    }
    assert verify_chain().problem is None


@pytest.mark.django_db
def test_an_event_keeps_its_partners_external_id_after_the_partner_is_deleted() -> None:
    partner = factories.PartnerFactory(external_id="p_gone")
    _record(partner=partner)
    partner.delete()
    event = AuditEvent.objects.get()
    assert event.partner_label == "p_gone"
    assert verify_chain().problem is None


@pytest.mark.django_db
def test_a_user_actor_is_recorded_by_username() -> None:
    user = factories.qa_lead()
    event = audit_record(actor=user, action="test.user")
    assert (event.actor, event.actor_label) == (user, "qa")


@pytest.mark.django_db
def test_an_event_rolled_back_with_its_transaction_leaves_no_gap() -> None:
    _record()
    with pytest.raises(RuntimeError), transaction.atomic():
        _record()
        raise RuntimeError("the service failed")
    _record()
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2]
    assert verify_chain().problem is None


@pytest.mark.django_db
def test_saving_a_stored_event_is_refused() -> None:
    (event,) = _record()
    event.target = "rewritten"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    assert AuditEvent.objects.get().target == ""


@pytest.mark.django_db
def test_deleting_an_event_is_refused() -> None:
    (event,) = _record()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_queryset_update_is_refused() -> None:
    _record()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(action="test.0").update(target="rewritten")


@pytest.mark.django_db
def test_queryset_delete_is_refused() -> None:
    _record()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_bulk_create_is_refused_because_it_would_skip_the_chain() -> None:
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.bulk_create([AuditEvent(actor_label="x", action="x")])


@pytest.mark.django_db
def test_objects_create_chains_the_event_too() -> None:
    _record()
    event = AuditEvent.objects.create(actor_label="direct", action="test.direct")
    assert event.seq == 2 and verify_chain().problem is None


@on_postgresql
@pytest.mark.django_db
def test_raw_sql_update_is_refused_by_postgresql() -> None:
    _record()
    refused = pytest.raises(DatabaseError, match="the audit log is append-only")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE evidence_auditevent SET target = 'rewritten'")
    assert AuditEvent.objects.get().target == ""


@on_postgresql
@pytest.mark.django_db
def test_raw_sql_delete_is_refused_by_postgresql() -> None:
    _record()
    refused = pytest.raises(DatabaseError, match="the audit log is append-only")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM evidence_auditevent")
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_gapless_chain() -> None:
    # Two threads, so two database connections, writing at the same moment: without the chain
    # lock both would read the same head and one insert would fail on the unique seq.
    start = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(20):
                audit_record(actor=name, action="test.concurrent", target=str(i))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(f"writer-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 41))
    report = verify_chain()
    assert (report.problem, report.events) == (None, 40)
    labels = json.dumps(list(AuditEvent.objects.values_list("actor_label", flat=True)))
    assert labels.count("writer-1") == labels.count("writer-2") == 20
