from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from partners.models import Partner
from tests import factories
from tests.browser.conftest import login, screenshot
from tests.certification.test_views_run_list import _finished


@pytest.mark.django_db(transaction=True)
def test_qa_lead_filters_the_runs_list_to_failed_runs(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    from certification import suites
    from tests.certification.test_views_run_list import SUITE

    suite, _ = suites.suite_store(entry="s.yaml", sources={"s.yaml": SUITE}, by="t")
    passed = _finished(partner_a, suite, ["passed"] * 4, run_status="passed")
    failed = _finished(
        partner_a, suite, ["passed", "failed", "failed", "error"], run_status="failed"
    )
    factories.qa_lead()
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text(f"#{failed.pk}")
    expect(row).to_contain_text("1/4 passed · 2 failed · 1 error")
    assert "status=failed" in page.url and f"#{passed.pk}" not in page.content()
    screenshot(page, "run-list")
