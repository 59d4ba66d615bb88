from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from certification import runs, suites
from partners.models import Partner
from tests import factories
from tests.browser.conftest import login

SUITE = (
    "name: slow\ntests:\n"
    "  - name: first\n    code: L-001\n    steps:\n      - action: {type: wait, ms: 1}\n"
    "  - name: second\n    code: L-002\n    steps:\n      - action: {type: wait, ms: 1}\n"
)


@pytest.mark.django_db(transaction=True)
def test_opened_scenario_stays_open_while_the_run_page_polls(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    factories.qa_lead()
    suite, _ = suites.suite_store(entry="slow.yaml", sources={"slow.yaml": SUITE}, by="test")
    run = runs.run_create(partner=partner_a, suite=suite, by="test")  # queued: page polls
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    scenario = page.locator("#scenario-0")
    scenario.locator("summary").click()
    expect(scenario).to_have_attribute("open", "")
    with page.expect_response(lambda r: f"/runs/{run.pk}/" in r.url, timeout=5000):
        pass  # at least one poll replaced the section
    with page.expect_response(lambda r: f"/runs/{run.pk}/" in r.url, timeout=5000):
        pass
    expect(page.locator("#scenario-0")).to_have_attribute("open", "")
    expect(page.locator("#scenario-1")).not_to_have_attribute("open", "")


@pytest.mark.django_db(transaction=True)
def test_cancel_button_disappears_when_the_run_ends(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    factories.qa_lead()
    suite, _ = suites.suite_store(entry="slow.yaml", sources={"slow.yaml": SUITE}, by="test")
    run = runs.run_create(partner=partner_a, suite=suite, by="test")
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    runs.run_cancel(run=run, by="test")  # ended elsewhere (another user, the workers)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0, timeout=5000)
    expect(page.locator("#run-live")).to_contain_text("Cancelled")
