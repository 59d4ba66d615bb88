"""The audit trail pages (``/audit/`` and ``/audit/export.csv``), and the events that sign-ins and
downloads write."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from certification import runs, suites
from certification.models import Run
from evidence import audit
from evidence.audit import audit_record, verify_chain
from evidence.models import AuditEvent
from partners.models import Partner
from tests import factories

LIST = reverse("evidence:audit_list")
EXPORT = reverse("evidence:audit_export")

pytestmark = pytest.mark.django_db


def _shown(response: Any) -> list[AuditEvent]:
    assert response.status_code == 200
    return list(response.context["page_obj"].object_list)


def _actions(response: Any) -> set[str]:
    return {event.action for event in _shown(response)}


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def events(partner_a: Partner, partner_b: Partner) -> None:
    audit_record(actor="test", action="run.create", partner=partner_a, target="run 1")
    audit_record(actor="test", action="run.cancel", partner=partner_b, target="bravo run 2")
    audit_record(actor="manage.py import_registry", action="registry.import", target="r.csv")


@pytest.fixture
def run_a(partner_a: Partner) -> Run:
    suite, _ = suites.suite_store(
        entry="s.yaml",
        sources={"s.yaml": "name: s\ntests:\n  - name: a\n    steps:\n"
                 "      - action: {type: wait, ms: 1}\n"},
        by="test",
    )  # fmt: skip
    return runs.run_create(partner=partner_a, suite=suite, by="test")


def test_anonymous_users_are_sent_to_the_login_page() -> None:
    for url in (LIST, EXPORT):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_qa_lead_sees_every_event(events: None, qa_client: Client) -> None:
    assert {"run.create", "run.cancel", "registry.import"} <= _actions(qa_client.get(LIST))


def test_an_auditor_sees_every_event(events: None, auditor_client: Client) -> None:
    assert {"run.create", "run.cancel", "registry.import"} <= _actions(auditor_client.get(LIST))


def test_a_partner_user_sees_only_their_partners_events(
    events: None, partner_a_client: Client
) -> None:
    response = partner_a_client.get(LIST)
    assert {event.partner_label for event in _shown(response)} == {"p_a01"}
    assert "run.create" in _actions(response)
    assert b"bravo run 2" not in response.content and b"r.csv" not in response.content


def test_a_user_without_a_role_sees_no_events(events: None) -> None:
    client = Client()
    client.force_login(factories.UserFactory(username="nobody"))
    response = client.get(LIST)
    assert _shown(response) == []
    assert b"No audit events match" in response.content


def test_the_partner_filter_takes_an_external_id(events: None, qa_client: Client) -> None:
    assert _actions(qa_client.get(LIST, {"partner": "p_b02"})) == {"run.cancel"}


def test_the_actor_filter_matches_part_of_the_label(events: None, qa_client: Client) -> None:
    assert _actions(qa_client.get(LIST, {"actor": "IMPORT_reg"})) == {"registry.import"}


def test_the_action_filter_is_exact(events: None, qa_client: Client) -> None:
    assert _actions(qa_client.get(LIST, {"action": "run.cancel"})) == {"run.cancel"}
    assert _actions(qa_client.get(LIST, {"action": "run"})) == set()


def test_an_action_ending_in_a_dot_is_a_prefix(events: None, qa_client: Client) -> None:
    assert _actions(qa_client.get(LIST, {"action": "run."})) == {"run.create", "run.cancel"}


def test_the_date_filter_includes_both_days_in_utc(
    qa_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day, hour in ((1, 0), (2, 0), (3, 23), (4, 0)):
        when = datetime(2026, 3, day, hour, 30, tzinfo=UTC)
        monkeypatch.setattr(audit, "clock", lambda when=when: when)
        audit_record(actor="test", action=f"test.day{day}")
    response = qa_client.get(LIST, {"date_from": "2026-03-02", "date_to": "2026-03-03"})
    assert _actions(response) == {"test.day2", "test.day3"}


def test_a_bad_date_is_a_form_error(qa_client: Client) -> None:
    response = qa_client.get(LIST, {"date_from": "2026-13-45"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()


def test_an_end_before_the_start_is_a_form_error(qa_client: Client) -> None:
    response = qa_client.get(LIST, {"date_from": "2026-03-02", "date_to": "2026-03-01"})
    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


def test_pages_hold_fifty_events_newest_first_and_keep_the_filters(qa_client: Client) -> None:
    for i in range(51):
        audit_record(actor="test", action="bulk.step", target=str(i))
    first = qa_client.get(LIST, {"action": "bulk."})
    shown = _shown(first)
    assert len(shown) == 50
    assert [e.target for e in shown[:2]] == ["50", "49"]
    assert 'href="?action=bulk.&amp;page=2"' in first.content.decode()
    second = qa_client.get(LIST, {"action": "bulk.", "page": "2"})
    assert [e.target for e in _shown(second)] == ["0"]


def test_the_page_shows_seq_and_a_short_hash(events: None, qa_client: Client) -> None:
    body = qa_client.get(LIST, {"action": "run.create"}).content.decode()
    event = AuditEvent.objects.get(action="run.create")
    assert event.hash[:12] in body and f"<td>{event.seq}</td>" in body


def test_the_csv_export_has_the_chain_columns_in_chain_order(
    events: None, qa_client: Client
) -> None:
    rows = _csv(qa_client.get(EXPORT, {"action": "run."}))
    assert list(rows[0]) == [
        "seq", "at", "actor", "action", "partner", "target", "data", "prev_hash", "hash",
    ]  # fmt: skip
    assert [row["action"] for row in rows] == ["run.create", "run.cancel"]
    stored = AuditEvent.objects.get(action="run.create")
    assert rows[0]["seq"] == str(stored.seq) and rows[0]["hash"] == stored.hash
    assert rows[0]["prev_hash"] == stored.prev_hash
    assert rows[0]["at"] == audit.format_at(stored.at)
    assert (rows[0]["partner"], rows[0]["target"], json.loads(rows[0]["data"])) == (
        "p_a01",
        "run 1",
        {},
    )


def test_the_csv_export_neutralises_spreadsheet_formulas(qa_client: Client) -> None:
    for target in ('=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain"):
        audit_record(actor="test", action="test.formula", target=target)
    rows = _csv(qa_client.get(EXPORT, {"action": "test.formula"}))
    assert [row["target"] for row in rows] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain",
    ]  # fmt: skip


def test_the_csv_export_is_scoped_like_the_page(events: None, partner_a_client: Client) -> None:
    rows = _csv(partner_a_client.get(EXPORT))
    assert rows and {row["partner"] for row in rows} == {"p_a01"}


def test_a_bad_filter_on_the_export_is_a_form_error(qa_client: Client) -> None:
    response = qa_client.get(EXPORT, {"date_to": "yesterday"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_csv_export_is_audited_and_not_part_of_itself(events: None, qa_client: Client) -> None:
    rows = _csv(qa_client.get(EXPORT, {"partner": "p_b02"}))
    event = AuditEvent.objects.get(action="audit.export")
    assert event.actor_label == "qa" and event.partner_label == "p_b02"
    assert event.data == {"filters": {"partner": "p_b02"}, "through_seq": event.seq - 1}
    assert "audit.export" not in {row["action"] for row in rows}
    assert verify_chain().problem is None


def test_a_partner_users_export_is_filed_under_their_partner(partner_a_client: Client) -> None:
    _csv(partner_a_client.get(EXPORT))
    assert AuditEvent.objects.get(action="audit.export").partner_label == "p_a01"


def test_a_login_is_audited_with_the_address() -> None:
    factories.qa_lead()
    response = Client(REMOTE_ADDR="203.0.113.7").post(
        reverse("login"), {"username": "qa", "password": factories.PASSWORD}
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.actor_label, event.target, event.partner_label) == ("qa", "qa", "")
    assert event.data == {"ip_address": "203.0.113.7"}
    assert factories.PASSWORD not in json.dumps(event.data)


def test_a_partner_users_login_belongs_to_their_partner(partner_a: Partner) -> None:
    Client().force_login(factories.partner_user(partner_a))
    assert AuditEvent.objects.get(action="auth.login").partner_label == "p_a01"


def test_a_logout_is_audited(qa_client: Client) -> None:
    qa_client.post(reverse("logout"))
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.actor_label == "qa"


def test_a_run_export_is_audited_with_its_format(qa_client: Client, run_a: Run) -> None:
    url = reverse("certification:run_export", kwargs={"run_id": run_a.pk, "fmt": "junit"})
    assert qa_client.get(url).status_code == 200
    event = AuditEvent.objects.get(action="run.export")
    assert (event.partner_label, event.target, event.data) == (
        "p_a01",
        f"run {run_a.pk}",
        {"format": "junit"},
    )
