"""Which suites a partner's user sees and runs: those in the scope of their partner's
certifications (open, certified, suspended or expired; not withdrawn, not superseded). QA leads
and auditors see every suite."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from certification import execution, runs, suites
from certification.access import suites_runnable_for, suites_visible_to
from certification.models import Run, Suite
from evidence import services
from evidence.models import Certification
from partners.models import Partner
from tests import factories
from tests.evidence import certs

ASSIGNED = "assigned-suite"
OTHER = "other-suite"


def _store(name: str, wait_ms: int = 1) -> Suite:
    text = (
        f"name: {name}\ntests:\n  - name: a\n    code: B-001\n    steps:\n"
        f"      - action: {{type: wait, ms: {wait_ms}}}\n"
    )
    stored, _ = suites.suite_store(entry=f"{name}.yaml", sources={f"{name}.yaml": text}, by="t")
    return stored


@pytest.fixture
def qa(db: Any) -> Any:
    return factories.qa_lead("qa-assign")


@pytest.fixture
def assigned(db: Any) -> Suite:
    return _store(ASSIGNED)


@pytest.fixture
def other(db: Any) -> Suite:
    return _store(OTHER)


def _open(partner: Partner, qa: Any, *names: str, scope: str = "orders-v1") -> Certification:
    return services.certification_open(
        partner=partner, scope=scope, title="Orders v1", suite_names=list(names), by=qa
    )


@pytest.fixture
def certification_a(partner_a: Partner, qa: Any, assigned: Suite, other: Suite) -> Certification:
    return _open(partner_a, qa, ASSIGNED)


def _suite_list(client: Client) -> str:
    return client.get(reverse("certification:suite_list")).content.decode()


def _partner_page(client: Client, partner: Partner) -> str:
    return client.get(reverse("partners:detail", args=[partner.external_id])).content.decode()


def _run_start(client: Client, partner: Partner, suite: Suite, **extra: Any) -> Any:
    url = reverse("certification:run_start", args=[partner.external_id])
    return client.post(url, {"suite": suite.pk}, **extra)


def _select_options(body: str) -> str:
    start = body.index('name="suite"')
    return body[start : body.index("</select>", start)]


def test_partner_user_sees_only_the_assigned_suites_in_the_list(
    partner_a_client: Client, certification_a: Certification
) -> None:
    body = _suite_list(partner_a_client)
    assert ASSIGNED in body
    assert OTHER not in body
    assert "The suites assigned to Alpha Freight" in body


def test_the_list_shows_the_latest_version_of_an_assigned_suite_and_counts_its_versions(
    partner_a_client: Client, certification_a: Certification, assigned: Suite
) -> None:
    newer = _store(ASSIGNED, wait_ms=2)
    body = _suite_list(partner_a_client)
    assert reverse("certification:suite_detail", args=[newer.pk]) in body
    assert reverse("certification:suite_detail", args=[assigned.pk]) not in body
    assert "<td>v2</td>" in body and "<td>2</td>" in body


def test_partner_user_gets_404_for_an_unassigned_suite_as_for_an_unknown_one(
    partner_a_client: Client, certification_a: Certification, other: Suite
) -> None:
    unassigned = partner_a_client.get(reverse("certification:suite_detail", args=[other.pk]))
    unknown = partner_a_client.get(reverse("certification:suite_detail", args=[999999]))
    assert unassigned.status_code == unknown.status_code == 404
    assert OTHER not in unassigned.content.decode()


def test_partner_user_opens_every_version_of_an_assigned_suite(
    partner_a_client: Client, certification_a: Certification, assigned: Suite
) -> None:
    newer = _store(ASSIGNED, wait_ms=2)
    for version in (assigned, newer):
        response = partner_a_client.get(reverse("certification:suite_detail", args=[version.pk]))
        assert response.status_code == 200
    body = response.content.decode()
    assert reverse("certification:suite_detail", args=[assigned.pk]) in body


def test_run_suite_choice_on_the_partner_page_offers_only_assigned_suites(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any, certification_a: Certification
) -> None:
    options = _select_options(_partner_page(partner_a_client, partner_a))
    assert f"{ASSIGNED} (v1)" in options
    assert OTHER not in options


def test_posting_an_unassigned_suite_is_refused_and_creates_no_run(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any,
    certification_a: Certification, other: Suite,
) -> None:  # fmt: skip
    response = _run_start(partner_a_client, partner_a, other, follow=True)
    assert not Run.objects.exists()
    assert "Choose a suite to run." in response.content.decode()


def test_posting_an_assigned_suite_starts_its_run(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any,
    certification_a: Certification, assigned: Suite, django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        response = _run_start(partner_a_client, partner_a, assigned)
    run = Run.objects.get()
    assert (run.partner, run.suite) == (partner_a, assigned)
    assert response["Location"] == reverse("certification:run_detail", args=[run.pk])


def test_htmx_post_of_an_assigned_suite_redirects_the_page_to_the_run(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any,
    certification_a: Certification, assigned: Suite, django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        response = _run_start(partner_a_client, partner_a, assigned, HTTP_HX_REQUEST="true")
    run = Run.objects.get()
    assert response["HX-Redirect"] == reverse("certification:run_detail", args=[run.pk])


def test_a_suite_is_assigned_once_a_qa_lead_opens_a_certification_naming_it(
    partner_a_client: Client, partner_a: Partner, qa: Any, assigned: Suite, other: Suite
) -> None:
    assert ASSIGNED not in _suite_list(partner_a_client)
    assert partner_a_client.get(
        reverse("certification:suite_detail", args=[assigned.pk])
    ).status_code == 404  # fmt: skip
    _open(partner_a, qa, ASSIGNED)
    assert ASSIGNED in _suite_list(partner_a_client)
    assert partner_a_client.get(
        reverse("certification:suite_detail", args=[assigned.pk])
    ).status_code == 200  # fmt: skip


def test_withdrawing_the_certification_takes_its_suites_away(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any, qa: Any,
    certification_a: Certification, assigned: Suite,
) -> None:  # fmt: skip
    services.certification_withdraw(certification=certification_a, by=qa, reason="not now")
    assert ASSIGNED not in _suite_list(partner_a_client)
    assert partner_a_client.get(
        reverse("certification:suite_detail", args=[assigned.pk])
    ).status_code == 404  # fmt: skip
    _run_start(partner_a_client, partner_a, assigned)
    assert not Run.objects.exists()


def test_a_suite_named_by_another_open_certification_stays_after_one_is_withdrawn(
    partner_a_client: Client, partner_a: Partner, qa: Any, certification_a: Certification
) -> None:
    _open(partner_a, qa, ASSIGNED, OTHER, scope="returns-v1")
    services.certification_withdraw(certification=certification_a, by=qa, reason="not now")
    body = _suite_list(partner_a_client)
    assert ASSIGNED in body and OTHER in body


def test_a_suite_dropped_from_the_scope_at_recertification_is_no_longer_assigned(
    partner_a: Partner, qa: Any, assigned: Suite, other: Suite
) -> None:
    first = _signed(partner_a, qa, ASSIGNED, OTHER)
    second = _signed(partner_a, qa, ASSIGNED)
    first.refresh_from_db()
    assert (first.status, second.status) == ("superseded", "certified")
    user = factories.partner_user(partner_a)
    assert set(suites_visible_to(user).values_list("name", flat=True)) == {ASSIGNED}


def _signed(partner: Partner, qa: Any, *names: str) -> Certification:
    certification = _open(partner, qa, *names)
    for name in names:
        suite = Suite.objects.filter(name=name).order_by("-version").first()
        execution.run_execute_inline(run=runs.run_create(partner=partner, suite=suite, by=qa))
    certs.decide_checklist(certification, qa)
    return services.certification_sign_off(certification=certification, by=qa)


def test_another_partners_assignment_is_not_shared(
    partner_a_client: Client, partner_b: Partner, qa: Any, assigned: Suite
) -> None:
    _open(partner_b, qa, ASSIGNED)
    assert ASSIGNED not in _suite_list(partner_a_client)
    assert partner_a_client.get(
        reverse("certification:suite_detail", args=[assigned.pk])
    ).status_code == 404  # fmt: skip


def test_a_partner_user_may_run_nothing_for_another_partner(
    partner_a: Partner, partner_b: Partner, certification_a: Certification
) -> None:
    user = factories.partner_user(partner_a)
    assert suites_runnable_for(user, partner_a).count() == 1
    assert not suites_runnable_for(user, partner_b).exists()


def test_partner_user_without_assigned_suites_is_told_how_they_get_some(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Any, other: Suite
) -> None:
    message = (
        "No suites are assigned to Alpha Freight yet: a QA lead assigns them by opening a "
        "certification."
    )
    page = _partner_page(partner_a_client, partner_a)
    assert message in page
    assert 'name="suite"' not in page
    assert message in _suite_list(partner_a_client)


def test_qa_lead_still_sees_and_runs_every_suite(
    qa_client: Client, partner_a: Partner, endpoint_a: Any,
    certification_a: Certification, other: Suite, django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    body = _suite_list(qa_client)
    assert ASSIGNED in body and OTHER in body
    options = _select_options(_partner_page(qa_client, partner_a))
    assert ASSIGNED in options and OTHER in options
    detail = qa_client.get(reverse("certification:suite_detail", args=[other.pk]))
    assert detail.status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        _run_start(qa_client, partner_a, other)
    assert Run.objects.get().suite == other


def test_auditor_sees_every_suite(
    auditor_client: Client, certification_a: Certification, other: Suite
) -> None:
    body = _suite_list(auditor_client)
    assert ASSIGNED in body and OTHER in body
    detail = auditor_client.get(reverse("certification:suite_detail", args=[other.pk]))
    assert detail.status_code == 200


def test_qa_lead_with_no_suite_stored_is_told_so_on_the_partner_page(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    page = _partner_page(qa_client, partner_a)
    assert "No suites are stored yet." in page
    assert 'name="suite"' not in page


def test_starting_a_run_refuses_a_partner_user_an_unassigned_suite_naming_the_rule(
    partner_a: Partner, certification_a: Certification, other: Suite, assigned: Suite
) -> None:
    user = factories.partner_user(partner_a)
    with pytest.raises(runs.RunInputError) as caught:
        runs.start_run(partner=partner_a, suite=other, by=user)
    assert str(caught.value) == (
        f"{OTHER} is not assigned to p_a01: a QA lead assigns suites by opening a "
        "certification that names them"
    )
    assert not Run.objects.exists()
    assert runs.run_create(partner=partner_a, suite=assigned, by=user).suite == assigned


def test_anonymous_user_is_sent_to_login_from_the_suite_pages(
    client: Client, assigned: Suite
) -> None:
    for url in (
        reverse("certification:suite_list"),
        reverse("certification:suite_detail", args=[assigned.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
