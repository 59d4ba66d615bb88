"""What QA leads and partner users see on the partner pages, driven through a real browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, expect

from partners import services
from partners.models import SLA, Endpoint, Partner
from tests import factories
from tests.browser.conftest import login, screenshot

DEMO_REGISTRY = Path(settings.BASE_DIR) / "demo" / "registry"

pytestmark = pytest.mark.django_db(transaction=True)


def field(page: Page, label: str) -> Locator:
    """The form control with this visible label (Django renders labels as "Label:")."""
    return page.get_by_label(f"{label}:", exact=True)


def partner_rows(page: Page) -> Locator:
    return page.locator("#overview-table tbody tr")


def open_new_endpoint_form(page: Page, live_server: Any, partner: Partner) -> None:
    login(page, live_server, factories.qa_lead().username)
    page.goto(f"{live_server.url}/partners/{partner.external_id}/endpoints/new/")
    expect(
        page.get_by_role("heading", name=f"New sandbox endpoint for {partner.name}")
    ).to_be_visible()


def test_qa_lead_logs_in_and_sees_every_partner_with_its_sla_summary(
    page: Page, live_server: Any, partner_a: Partner, partner_b: Partner
) -> None:
    SLA.objects.create(
        partner=partner_a,
        name="p95",
        kind="latency",
        text="p95<=300ms",
        percentile=95,
        threshold_ms=300,
    )
    login(page, live_server, factories.qa_lead().username)

    expect(page).to_have_url(f"{live_server.url}/overview/")
    expect(page.locator("header .role")).to_have_text("QA lead")
    expect(partner_rows(page)).to_have_count(2)
    alpha = partner_rows(page).filter(has_text="Alpha Freight")
    bravo = partner_rows(page).filter(has_text="Bravo Supplies")
    expect(alpha.get_by_role("link", name="Alpha Freight")).to_be_visible()
    expect(alpha.locator(".chip.sla")).to_have_text(["p95 ≤ 300 ms"])
    expect(bravo.get_by_role("link", name="Bravo Supplies")).to_be_visible()
    expect(bravo.locator(".chip.sla")).to_have_count(0)
    expect(bravo.get_by_text("no SLAs", exact=True)).to_be_visible()
    screenshot(page, "partner_list")


def test_search_filters_the_partner_table_without_a_full_page_reload(
    page: Page, live_server: Any, partner_a: Partner, partner_b: Partner
) -> None:
    login(page, live_server, factories.qa_lead().username)
    expect(partner_rows(page)).to_have_count(2)
    page.evaluate("window.__marker = 1")

    page.get_by_role("searchbox", name="Search").fill("bravo")

    expect(partner_rows(page)).to_have_count(1)
    expect(partner_rows(page)).to_contain_text("Bravo Supplies")
    expect(page).to_have_url(re.compile(r"/overview/\?(.*&)?q=bravo(&|$)"))
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped"


def test_partner_user_lands_on_their_own_partner_page_and_sees_no_other(
    page: Page, live_server: Any, partner_a: Partner, partner_b: Partner
) -> None:
    login(page, live_server, factories.partner_user(partner_a).username)

    expect(page).to_have_url(f"{live_server.url}/partners/p_a01/")
    expect(page.locator("header .role")).to_have_text("Partner user")
    expect(page.locator("h1")).to_contain_text("Alpha Freight")
    expect(page.get_by_text("Bravo Supplies")).to_have_count(0)

    response = page.goto(f"{live_server.url}/partners/p_b02/")

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not Found")).to_be_visible()
    assert "Bravo Supplies" not in page.content()


def test_endpoint_form_shows_only_the_fields_of_the_chosen_auth_kind(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    open_new_endpoint_form(page, live_server, partner_a)
    auth = field(page, "Authentication")

    auth.select_option(label="Bearer token")
    expect(field(page, "Bearer token")).to_be_visible()
    for hidden in ("API key", "Client secret", "Token URL", "Client ID"):
        expect(field(page, hidden)).to_be_hidden()
    screenshot(page, "endpoint_form")

    auth.select_option(label="OAuth2 client credentials")
    for shown in ("Token URL", "Client ID", "Client secret"):
        expect(field(page, shown)).to_be_visible()
    for hidden in ("Bearer token", "API key"):
        expect(field(page, hidden)).to_be_hidden()


def test_saved_secret_is_masked_and_can_be_replaced(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    open_new_endpoint_form(page, live_server, partner_a)
    field(page, "Name").fill("sandbox")
    field(page, "Base URL").fill("http://127.0.0.1:9/x")
    field(page, "Authentication").select_option(label="Bearer token")
    field(page, "Bearer token").fill("tok-SECRET-123")
    page.get_by_role("button", name="Save endpoint").click()

    expect(page.get_by_role("status")).to_contain_text("Endpoint sandbox saved.")
    expect(page).to_have_url(f"{live_server.url}/partners/p_a01/")
    row = page.locator("#endpoints tbody tr").filter(has_text="sandbox")
    expect(row).to_contain_text("http://127.0.0.1:9/x")
    expect(row).to_contain_text("Bearer token")
    expect(row.locator(".mask")).to_have_text("••••••••")
    assert "tok-SECRET-123" not in page.content()
    screenshot(page, "partner_detail")

    row.get_by_role("link", name="Edit / replace secrets").click()
    expect(page.get_by_role("heading", name="Edit endpoint sandbox")).to_be_visible()
    token_field = page.locator("#field-token")
    expect(token_field.get_by_label("stored secret")).to_have_text("•••••••• stored")
    expect(field(page, "Bearer token")).to_have_value("")
    assert "tok-SECRET-123" not in page.content()

    token_field.get_by_text("Replace", exact=True).click()
    field(page, "Bearer token").fill("tok-NEW-456")
    page.get_by_role("button", name="Save endpoint").click()

    expect(page.get_by_role("status")).to_contain_text("Endpoint sandbox saved.")
    endpoint = Endpoint.objects.get(partner=partner_a, name="sandbox")
    assert services.endpoint_secrets(endpoint) == {"token": "tok-NEW-456"}


def test_endpoint_pointing_at_cloud_metadata_is_refused_with_a_clear_message(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    open_new_endpoint_form(page, live_server, partner_a)
    field(page, "Name").fill("metadata")
    field(page, "Base URL").fill("http://169.254.169.254/latest")
    page.get_by_role("button", name="Save endpoint").click()

    error = page.locator("#field-base_url .error")
    expect(error).to_have_text(
        re.compile(r"'169\.254\.169\.254' is not a public address: cloud metadata")
    )
    expect(field(page, "Base URL")).to_have_value("http://169.254.169.254/latest")
    expect(page.get_by_role("status")).to_have_count(0)
    assert not Endpoint.objects.filter(partner=partner_a).exists()


def test_registry_import_previews_then_imports_the_playbook_csvs(
    page: Page, live_server: Any
) -> None:
    login(page, live_server, factories.qa_lead().username)
    page.goto(f"{live_server.url}/partners/import/")
    field(page, "Registry CSV files").set_input_files(
        [DEMO_REGISTRY / "partners.csv", DEMO_REGISTRY / "retry_policy.csv"]
    )
    page.get_by_role("button", name="Preview changes").click()

    preview = page.locator("#import-preview")
    expect(preview).to_contain_text("partners.csv")
    expect(preview).to_contain_text("retry_policy.csv")
    acme = preview.locator("tbody tr").filter(
        has=page.get_by_role("cell", name="p_001", exact=True)
    )
    expect(acme).to_have_text(re.compile(r"^\s*create\s*partner\s*p_001"))
    expect(preview.locator("tbody tr.change-create").first).to_be_visible()
    assert not Partner.objects.filter(external_id="p_001").exists(), "the preview imported"
    screenshot(page, "import_preview")

    page.get_by_role("button", name="Confirm import").click()

    expect(page).to_have_url(f"{live_server.url}/overview/")
    expect(page.get_by_role("status")).to_contain_text(
        re.compile(r"Registry imported: \d+ created, 0 updated, 0 deleted\.")
    )
    expect(partner_rows(page).filter(has_text="Acme Retail")).to_have_count(1)


def test_registry_import_with_a_bad_row_lists_the_row_and_imports_nothing(
    page: Page, live_server: Any, partner_a: Partner, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bad_partners.csv"
    csv_file.write_text(
        "partner_id,name,mode,security,contact,sla\n"
        "p_900,Good Co,API,oauth2,ops@good.example,p95<=300ms\n"
        "p_901,Bad Co,API,oauth2,ops@bad.example,p95<=fast\n",
        encoding="utf-8",
    )
    partners_before = Partner.objects.count()
    login(page, live_server, factories.qa_lead().username)
    page.goto(f"{live_server.url}/partners/import/")
    field(page, "Registry CSV files").set_input_files(csv_file)
    page.get_by_role("button", name="Preview changes").click()

    errors = page.locator("#import-errors")
    expect(errors.get_by_role("heading")).to_have_text("1 problem found — nothing was imported")
    expect(errors.locator("li")).to_have_count(1)
    expect(errors.locator("li")).to_have_text(
        re.compile(r'^bad_partners\.csv:3: sla: cannot parse SLA "p95<=fast"')
    )
    expect(page.get_by_role("button", name="Confirm import")).to_have_count(0)
    assert Partner.objects.count() == partners_before
    assert not Partner.objects.filter(external_id__in=["p_900", "p_901"]).exists()
