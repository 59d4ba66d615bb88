"""Whole journeys in a real browser, against the demo sandbox and a real Celery worker.

A QA lead filters the overview, opens a partner, reads its latency chart (drawn by Plotly from
the page's own figures), starts a run, watches it finish without a reload, sees the failing
scenario open itself and compares with the previous run. A partner's user lands on their page,
runs the suite assigned to them, and can neither see an unassigned suite nor another partner.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from certification import runs, suites
from certification.models import Run, Suite
from evidence import services as evidence_services
from partners import services
from partners.models import SLA, Partner
from tests import factories
from tests.browser.conftest import login, screenshot

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SUITE = """\
name: journey
tests:
  - name: Health answers fast
    code: J-001
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
      - action: {type: latencyProbe, method: GET, url: /health, requests: 60, concurrency: 4}
  - name: Status contract
    code: J-002
    kind: alt
    steps:
      - action: {type: httpRequest, method: GET, url: /v1/status/500}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
"""
HIDDEN = "name: hidden\ntests:\n  - name: x\n    steps:\n      - action: {type: wait, ms: 1}\n"


def _store(name: str, text: str) -> Suite:
    stored, _ = suites.suite_store(entry=f"{name}.yaml", sources={f"{name}.yaml": text}, by="t")
    return stored


def _finished(run: Run, *, within_s: float = 60) -> Run:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} still {run.status} after {within_s} s")


@pytest.fixture
def acme(partner_a: Partner, partner_b: Partner, sandbox: Any) -> Partner:
    services.endpoint_save(
        partner=partner_a, by="test", name="api", base_url=sandbox.url, is_default=True,
        auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip
    SLA.objects.create(partner=partner_a, name="p95", kind="latency", text="p95<=300ms",
                       percentile=95, threshold_ms=300)  # fmt: skip
    return partner_a


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> str:
    from config.celery import app as celery_app
    from tests.workers import new_queue

    name = new_queue()
    monkeypatch.setitem(celery_app.conf, "task_default_queue", name)
    return name


def test_qa_lead_filters_opens_a_partner_reads_its_chart_runs_and_compares(
    page: Page, live_server: Any, acme: Partner, queue: str
) -> None:
    from tests.workers import celery_workers

    qa = factories.qa_lead()
    suite = _store("journey", SUITE)
    evidence_services.certification_open(
        partner=acme, scope="journey-v1", title="Journey v1", suite_names=["journey"], by=qa
    )
    with celery_workers(1, queue=queue):  # some history to chart
        for _ in range(3):
            first = _finished(runs.start_run(partner=acme, suite=suite, by=qa))
    assert first.status == "failed"

    login(page, live_server, qa.username)
    page.get_by_role("searchbox").first.fill("alpha")
    rows = page.locator("#overview-table tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=re.compile("Alpha Freight")).click()

    expect(page.locator("h1")).to_contain_text("Alpha Freight")
    chart = page.locator("#chart-latency-0-api .chart")
    expect(chart).to_have_attribute("data-drawn", "true")
    traces = chart.evaluate("el => el.data.map(t => t.name)")
    assert traces[:4] == ["p50", "p95", "p99", "target p95"]
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(page.locator("#chart-latency-0-api details.chart-table")).not_to_have_attribute(
        "open", ""
    )
    expect(page.locator("#chart-pass-rate .chart-summary")).to_contain_text(
        "0 of the runs passed as a whole"
    )
    page.locator("#chart-latency-0-api summary").click()  # the table of the chart
    expect(page.locator("#chart-latency-0-api table tbody tr")).to_have_count(3)
    expect(page.locator("#chart-latency-0-api table")).to_contain_text(f"#{first.pk}")
    expect(page.locator("#suites-in-scope")).to_contain_text(f"#{first.pk}")
    screenshot(page, "partner_page")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(chart).to_have_attribute("data-drawn", "true")
    page.wait_for_function(  # Plotly redraws the charts to the phone's width
        """() => [...document.querySelectorAll('#charts .main-svg')].every(svg =>
             svg.getBoundingClientRect().right
               <= document.querySelector('#charts').getBoundingClientRect().right)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "partner_page_phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.locator("#runs").get_by_role("button", name="Run suite").click()
    page.wait_for_url(re.compile(rf"/runs/(?!{first.pk}/)\d+/$"))
    expect(page.locator("#run-live .badge")).to_have_text("Queued")
    failing = page.locator("#scenario-1")
    expect(failing).not_to_have_attribute("open", "")
    page.evaluate("window.__not_reloaded = true")
    with celery_workers(1, queue=queue):
        expect(page.locator("#run-live .badge")).to_have_text("Failed", timeout=60_000)
        expect(page.locator("#run-live")).to_contain_text("1 passed · 1 failed · 0 errored")
        expect(failing).to_have_attribute("open", "")
        expect(failing.locator("tr.bad")).to_contain_text("500")
    assert page.evaluate("window.__not_reloaded") is True, "the run page was reloaded"

    page.get_by_role("link", name="Compare with previous run").click()
    expect(page.locator("h1")).to_contain_text(f"compared with #{first.pk}")
    expect(page.locator("#still-failing")).to_contain_text("J-002")
    expect(page.locator("#newly-failing")).to_contain_text("None.")


def test_partner_user_lands_on_their_page_runs_an_assigned_suite_and_sees_nothing_else(
    page: Page, live_server: Any, acme: Partner, partner_b: Partner, queue: str
) -> None:
    from tests.workers import celery_workers

    qa = factories.qa_lead()
    _store("journey", SUITE)
    hidden = _store("hidden", HIDDEN)
    evidence_services.certification_open(
        partner=acme, scope="journey-v1", title="Journey v1", suite_names=["journey"], by=qa
    )
    user = factories.partner_user(acme)

    login(page, live_server, user.username)
    expect(page).to_have_url(f"{live_server.url}/partners/{acme.external_id}/")
    expect(page.locator("#suites-in-scope")).to_contain_text("journey")
    expect(page.locator("#suites-in-scope")).to_contain_text("never run")
    options = page.locator("#runs select option")
    expect(options).to_have_count(1)
    expect(options).to_have_text("journey (v1)")

    page.locator("#runs").get_by_role("button", name="Run suite").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    with celery_workers(1, queue=queue):
        expect(page.locator("#run-live .badge")).to_have_text("Failed", timeout=60_000)
    expect(page.locator("#scenario-1")).to_have_attribute("open", "")

    page.goto(f"{live_server.url}/suites/")
    expect(page.locator("main")).to_contain_text("journey")
    expect(page.locator("main")).not_to_contain_text("hidden")
    for path in (f"/suites/{hidden.pk}/", f"/partners/{partner_b.external_id}/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 404, path
        assert partner_b.name not in page.content()
    page.goto(f"{live_server.url}/runs/")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs")).not_to_contain_text(partner_b.name)
