"""The overview in a real browser: filtering in place, and a phone-sized screen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from partners.models import Partner
from tests import factories
from tests.browser.conftest import TIMEOUT_MS, login, screenshot


@pytest.fixture
def partners(db: Any) -> None:
    factories.PartnerFactory(external_id="p_o01", name="Certified Co", status="certified")
    factories.PartnerFactory(external_id="p_o02", name="Suspended Ltd", status="suspended")
    factories.PartnerFactory(external_id="p_o03", name="New Partner", status="onboarding")


def test_clicking_a_count_filters_the_overview(
    page: Page, live_server: Any, partners: None
) -> None:
    login(page, live_server, factories.qa_lead().username)
    page.get_by_role("link", name="1 suspended").click()
    rows = page.locator("#overview-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Suspended Ltd")
    page.get_by_role("combobox", name="Status").select_option("")
    expect(rows).to_have_count(3)
    screenshot(page, "overview")


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_on_a_phone_each_partner_is_a_card_with_its_status_visible(
    phone: Page, live_server: Any, partners: None
) -> None:
    login(phone, live_server, factories.qa_lead().username)
    card = phone.locator("#overview-table tbody tr").filter(has_text="Suspended Ltd")
    expect(card.locator(".badge.status-suspended")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px wide)"
    assert Partner.objects.count() == 3
    screenshot(phone, "overview_phone")
