"""The certification pages, the go-live answer and badge, and the signing-key page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evidence import services
from evidence.models import Certification
from evidence.review import certification_review
from partners.models import Partner
from tests import factories
from tests.evidence import certs


@pytest.fixture
def qa(db: Any) -> Any:
    return factories.qa_lead("qa1")


@pytest.fixture
def acme(db: Any, sandbox: Any) -> Partner:
    partner = factories.PartnerFactory(external_id="p_acme", name="Acme Payments")
    certs.add_endpoint(partner, sandbox.url)
    certs.add_slas(partner, "p95<=300ms")
    return partner


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _detail(certification: Certification) -> str:
    return reverse("evidence:certification_detail", args=[certification.pk])


def _signed(acme: Partner, qa: Any, certification: Certification | None = None) -> Certification:
    qa2 = factories.qa_lead("qa2")
    certification = certification or certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=False)
    certs.decide_checklist(certification, qa)
    for item in certification_review(certification).blockers:
        waiver = services.waiver_request(
            certification=certification, item_kind=item.kind, item_key=item.key,
            reason="known issue, fixed in 2.1", ends_on=timezone.now().date() + dt.timedelta(9),
            by=qa,
        )  # fmt: skip
        services.waiver_decide(waiver=waiver, approve=True, by=qa2)
    return services.certification_sign_off(certification=certification, by=qa)


def test_qa_lead_opens_a_certification_from_the_partner_page(acme: Partner, qa: Any) -> None:
    certs.suite(passing=True)
    client = _client(qa)
    url = reverse("evidence:certification_open", args=[acme.external_id])
    response = client.post(
        url,
        {"title": "Orders API v1", "scope": "orders-api-v1", "suite_names": ["orders-api"],
         "validity_days": 180},
    )  # fmt: skip
    certification = Certification.objects.get()
    assert response.status_code == 302 and response["Location"] == _detail(certification)
    page = client.get(_detail(certification)).content.decode()
    assert "Idempotency + dedupe tables" in page and "blocks sign-off" in page


def test_opening_with_a_bad_scope_shows_the_error_and_stores_nothing(
    acme: Partner, qa: Any
) -> None:
    certs.suite(passing=True)
    response = _client(qa).post(
        reverse("evidence:certification_open", args=[acme.external_id]),
        {"title": "x", "scope": "Orders API!", "suite_names": ["orders-api"], "validity_days": 1},
    )
    assert response.status_code == 400
    assert "Use lower-case letters" in response.content.decode()
    assert not Certification.objects.exists()


def test_a_partner_user_may_not_open_a_certification(acme: Partner) -> None:
    response = _client(factories.partner_user(acme)).get(
        reverse("evidence:certification_open", args=[acme.external_id])
    )
    assert response.status_code == 403


def test_another_partners_user_gets_404_for_the_certification(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    other = factories.partner_user(factories.PartnerFactory(external_id="p_other"))
    assert _client(other).get(_detail(certification)).status_code == 404
    assert _client(factories.partner_user(acme)).get(_detail(certification)).status_code == 200


def test_anonymous_is_sent_to_the_login_page(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    response = Client().get(_detail(certification))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_sign_off_with_blockers_is_refused_with_a_message(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    client = _client(qa)
    response = client.post(reverse("evidence:sign_off", args=[certification.pk]), follow=True)
    assert "Sign-off needs every in-scope scenario passed" in response.content.decode()
    certification.refresh_from_db()
    assert certification.status == "open"


def test_a_checklist_item_marked_not_applicable_needs_a_note(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    url = reverse("evidence:checklist_set", args=[certification.pk, "edi"])
    page = _client(qa).post(url, {"state": "not_applicable", "note": ""}, follow=True)
    assert "Say why this item does not apply." in page.content.decode()
    assert certification.checklist.get(key="edi").state == "open"


def test_go_live_says_not_certified_for_an_unknown_scope(acme: Partner) -> None:
    response = Client().get(reverse("evidence:go_live", args=[acme.external_id, "nope"]))
    assert response.status_code == 404
    assert response.json()["certified"] is False


def test_go_live_reports_a_signed_certification_with_its_waivers(acme: Partner, qa: Any) -> None:
    certification = _signed(acme, qa)
    answer = Client().get(reverse("evidence:go_live", args=[acme.external_id, "orders-api-v1"]))
    body = answer.json()
    assert answer.status_code == 200 and answer["Cache-Control"].startswith("max-age=0")
    assert body["certified"] is True and body["status"] == "certified"
    assert body["until"] == certification.valid_until.isoformat().replace("+00:00", "Z")
    assert [w["item"] for w in body["waiversInForce"]] == ["B-101 duplicate order rejected"]
    assert "reason" not in body["waiversInForce"][0]  # reasons stay in the product


def test_the_badge_turns_from_in_certification_to_certified(acme: Partner, qa: Any) -> None:
    url = reverse("evidence:go_live_badge", args=[acme.external_id, "orders-api-v1"])
    certification = certs.open_certification(acme, qa)
    assert "in certification" in Client().get(url).content.decode()
    certification = _signed(acme, qa, certification)
    badge = Client().get(url)
    assert badge["Content-Type"] == "image/svg+xml"
    assert f"certified until {certification.valid_until:%Y-%m-%d}" in badge.content.decode()


def test_a_suspended_certification_is_not_certified_for_go_live(acme: Partner, qa: Any) -> None:
    certification = _signed(acme, qa)
    services.certification_suspend(certification=certification, by=qa, reason="key leaked")
    body = (
        Client().get(reverse("evidence:go_live", args=[acme.external_id, "orders-api-v1"])).json()
    )
    assert body["certified"] is False and body["status"] == "suspended"
    assert body["reason"] == "suspended by a QA lead"  # the QA lead's words stay inside


def test_certification_list_shows_those_due_for_recertification(acme: Partner, qa: Any) -> None:
    certification = _signed(acme, qa)
    services.certifications_expire(now=certification.valid_until)
    page = _client(qa).get(reverse("evidence:certification_list"), {"show": "due"})
    assert "due for recertification" in page.content.decode()


def test_certification_list_filters_by_partner_id(acme: Partner, qa: Any) -> None:
    other = Partner.objects.create(external_id="p_777", name="Other Co")
    certs.open_certification(acme, qa)
    certs.open_certification(other, qa)
    page = _client(qa).get(reverse("evidence:certification_list"), {"partner": "p_777"})
    body = page.content.decode()
    assert "Other Co" in body and acme.name not in body
    assert 'value="p_777"' in body


def test_the_signing_key_page_is_public_and_shows_the_fingerprint(db: Any) -> None:
    from evidence import signing

    page = Client().get(reverse("evidence:signing_keys")).content.decode()
    assert signing.fingerprint(signing.public_key_pem()) in page
    assert "BEGIN PUBLIC KEY" in page


def _run_bundle(acme: Partner, qa: Any) -> Any:
    from evidence import bundles

    run = certs.finished_run(acme, passing=True)
    return bundles.bundle_request(run=run, by=qa)


def test_the_bundle_fragment_polls_while_building_and_stops_when_ready(
    acme: Partner, qa: Any
) -> None:
    from evidence import bundles

    bundle = _run_bundle(acme, qa)
    client = _client(qa)
    url = reverse("evidence:bundle_status", args=[bundle.pk])
    waiting = client.get(url, headers={"HX-Request": "true"})
    body = waiting.content.decode()
    assert waiting.status_code == 200 and "<html" not in body
    assert 'hx-trigger="every 1s"' in body and "waiting for a worker" in body
    bundles.bundle_build(bundle_id=bundle.pk)
    ready = client.get(url, headers={"HX-Request": "true"})
    assert ready.status_code == 286  # htmx stops polling
    assert "Download evidence-run-" in ready.content.decode()


def test_the_partners_own_user_downloads_its_bundle_and_another_partners_cannot(
    acme: Partner, qa: Any
) -> None:
    from evidence import bundles

    bundle = _run_bundle(acme, qa)
    bundles.bundle_build(bundle_id=bundle.pk)
    url = reverse("evidence:bundle_download", args=[bundle.pk])
    own = _client(factories.partner_user(acme)).get(url)
    assert own.status_code == 200 and own["Content-Type"] == "application/zip"
    assert b"".join(own.streaming_content)[:2] == b"PK"
    other = factories.partner_user(factories.PartnerFactory(external_id="p_other"))
    assert _client(other).get(url).status_code == 404


def test_a_bundle_of_an_unfinished_run_is_refused_with_a_message(acme: Partner, qa: Any) -> None:
    from certification import runs

    run = runs.run_create(partner=acme, suite=certs.suite(passing=True), by="t")
    page = _client(qa).post(reverse("evidence:run_bundle", args=[run.pk]), follow=True)
    assert "The run has not finished" in page.content.decode()


def test_go_live_answers_json_for_an_unknown_partner(db: Any) -> None:
    response = Client().get(reverse("evidence:go_live", args=["p_nobody", "x"]))
    assert response.status_code == 404
    assert response.json()["certified"] is False and response.json()["reason"] == "no such partner"
    badge = Client().get(reverse("evidence:go_live_badge", args=["p_nobody", "x"]))
    assert badge["Content-Type"] == "image/svg+xml" and "not certified" in badge.content.decode()


def test_a_refused_sign_off_is_in_the_audit_trail(acme: Partner, qa: Any) -> None:
    from evidence.models import AuditEvent

    certification = certs.open_certification(acme, qa)
    url = reverse("evidence:sign_off", args=[certification.pk])
    assert _client(factories.partner_user(acme)).post(url).status_code == 403
    _client(qa).post(url)  # blocked: nothing has run
    refused = AuditEvent.objects.filter(action="certification.sign_off.refused").order_by("seq")
    assert [e.actor_label for e in refused] == ["eng-p_acme", "qa1"]
    assert "You may not sign off" in refused[0].data["reason"]
    assert "Sign-off needs" in refused[1].data["reason"]
