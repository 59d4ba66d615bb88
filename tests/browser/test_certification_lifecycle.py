"""A partner through its lifecycle in a real browser: a QA lead opens a certification, a failing
run is waived by a second QA lead, the first signs off; the partner page, the go-live answer and
the badge follow, the bundle's progress turns into a download link, and expiry flips it back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from evidence import bundles, services
from evidence.models import Certification, EvidenceBundle
from partners.models import Partner
from tests import factories
from tests.browser.conftest import login, screenshot
from tests.evidence import certs


def _go_live(page: Page, live_server: Any, partner: Partner) -> dict[str, Any]:
    response = page.request.get(
        f"{live_server.url}/api/go-live/{partner.external_id}/orders-api-v1"
    )
    return json.loads(response.text())


@pytest.mark.django_db(transaction=True)
def test_partner_moves_from_onboarding_to_certified_and_back_to_expired(
    page: Page, live_server: Any, sandbox: Any
) -> None:
    acme = factories.PartnerFactory(external_id="p_acme", name="Acme Payments")
    certs.add_endpoint(acme, sandbox.url)
    certs.add_slas(acme, "p95<=300ms")
    certs.suite(passing=True)
    qa = factories.qa_lead("qa")
    factories.qa_lead("qa2")  # approves the waiver

    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/partners/{acme.external_id}/")
    expect(page.locator(".page-head .badge")).to_have_text("Onboarding")
    page.get_by_role("link", name="Open a certification").click()
    page.get_by_label("Title").fill("Orders API v1")
    page.get_by_label("Scope").fill("orders-api-v1")
    page.get_by_label("orders-api").check()
    page.get_by_role("button", name="Open certification").click()
    expect(page.locator("h1")).to_contain_text("Orders API v1")
    certification = Certification.objects.get(partner=acme)

    certs.finished_run(acme, passing=False, by=qa)  # B-101 fails
    page.goto(f"{live_server.url}/partners/{acme.external_id}/")
    expect(page.locator(".page-head .badge")).to_have_text("In certification")
    assert _go_live(page, live_server, acme)["certified"] is False

    for item in certification.checklist.exclude(key="contract"):
        services.checklist_set(item=item, state="met", note="", by=qa)
    page.goto(f"{live_server.url}/certifications/{certification.pk}/")
    contract = page.locator("#checklist tr[data-key=contract]")
    contract.get_by_label("State of Contract chosen").select_option("met")
    contract.get_by_role("button", name="Save").click()
    expect(page.locator(".msg.success")).to_contain_text("Contract chosen")
    expect(page.get_by_role("button", name="Sign off")).to_be_disabled()

    failing = page.locator("#review-items tr[data-key='orders-api/B-101']")
    failing.get_by_text("Request a waiver").click()
    failing.get_by_label("Reason").fill("duplicate detection ships in 2.1, before go-live")
    failing.get_by_role("button", name="Request waiver").click()
    expect(page.locator(".msg.success")).to_contain_text("another QA lead must approve")

    page.context.clear_cookies()
    login(page, live_server, "qa2")
    page.goto(f"{live_server.url}/certifications/{certification.pk}/")
    page.locator("#waivers").get_by_role("button", name="Approve").click()
    expect(page.locator(".msg.success")).to_contain_text("Waiver approved")

    page.context.clear_cookies()
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/certifications/{certification.pk}/")
    page.get_by_label("Sign-off note").fill("Go-live approved with one waiver")
    page.get_by_role("button", name="Sign off").click()
    expect(page.locator(".msg.success")).to_contain_text("Signed off")
    expect(page.locator(".page-head .badge")).to_have_text("Certified")
    expect(page.locator("#bundle-status progress")).to_be_visible()

    answer = _go_live(page, live_server, acme)
    assert answer["certified"] is True
    assert [w["item"] for w in answer["waiversInForce"]] == ["B-101 duplicate order rejected"]
    badge = page.request.get(
        f"{live_server.url}/api/go-live/{acme.external_id}/orders-api-v1/badge.svg"
    ).text()
    assert "certified until" in badge

    bundle = EvidenceBundle.objects.get(certification=certification)
    bundles.bundle_build(bundle_id=bundle.pk)  # what the worker does; the page is polling
    expect(
        page.get_by_role("link", name="Download evidence-p_acme-orders-api-v1.zip")
    ).to_be_visible()
    screenshot(page, "certification-signed")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download evidence-p_acme-orders-api-v1.zip").click()
    assert download.value.suggested_filename == "evidence-p_acme-orders-api-v1.zip"
    certification.refresh_from_db()
    assert _go_live(page, live_server, acme)["bundleSha256"] == certification.bundle_sha256

    services.certifications_expire(now=certification.valid_until)
    page.goto(f"{live_server.url}/partners/{acme.external_id}/")
    expect(page.locator(".page-head .badge")).to_have_text("Expired")
    assert _go_live(page, live_server, acme)["certified"] is False
    assert (
        "expired"
        in page.request.get(
            f"{live_server.url}/api/go-live/{acme.external_id}/orders-api-v1/badge.svg"
        ).text()
    )
