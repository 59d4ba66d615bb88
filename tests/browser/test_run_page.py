from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from certification import runs, suites
from partners.models import Partner
from tests import factories
from tests.browser.conftest import SCREENSHOTS, login, screenshot

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


VERDICT_SUITE = """\
name: verdicts
tests:
  - name: Charge sent to the PSP
    code: B-002
    steps:
      - action: {type: httpRequest, method: GET, url: api/health}
        assertions:
          - assertions:
              - {path: response.status, operator: eq, value: 200}
          # Nothing reaches the hosted mocks in this run: a zero cannot be judged.
          - match: {url: api.easypost.com, method: POST}
            count: {operator: eq, value: 0}
        settleMs: 0
  - name: Lookups meet the p95 SLA
    code: B-106
    steps:
      - name: fast endpoint
        continueOnFailure: true
        action: {type: latencyProbe, method: GET, url: api/health, requests: 60, concurrency: 10}
      - name: endpoint that refuses connections
        action: {type: latencyProbe, method: GET, url: dead/health, requests: 10, concurrency: 2}
"""


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_unevaluated_checks_amber_and_sla_verdicts_per_endpoint(
    page: Page, live_server: Any, partner_a: Partner, sandbox: Any
) -> None:
    from certification import execution
    from partners import services
    from partners.models import SLA
    from tests.engine.servers import closed_port

    factories.qa_lead()
    SLA.objects.create(partner=partner_a, name="p95", kind="latency", text="p95<=300ms",
                       percentile=95, threshold_ms=300)  # fmt: skip
    for name, url in (("api", sandbox.url), ("dead", f"http://127.0.0.1:{closed_port()}")):
        services.endpoint_save(
            partner=partner_a, by="test", name=name, base_url=url, is_default=name == "api",
            auth_kind="none", auth_config={}, new_secrets={},
        )  # fmt: skip
    suite, _ = suites.suite_store(entry="v.yaml", sources={"v.yaml": VERDICT_SUITE}, by="test")
    run = runs.run_create(partner=partner_a, suite=suite, by="test")
    run = execution.run_execute_inline(run=run)
    assert run.status == "failed"
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    b002 = page.locator("#scenario-0")
    expect(b002).to_have_attribute("open", "")  # not evaluated opens like a failure
    expect(b002.locator("summary .badge")).to_have_text("Not evaluated")
    expect(b002.locator("tr.unevaluated")).to_contain_text("not evaluated")
    table = page.locator("#sla-verdicts")
    expect(table.locator("tr", has_text="api")).to_contain_text("met")
    expect(table.locator("tr", has_text="dead")).to_contain_text("missed")
    expect(table.locator("tr", has_text="dead")).to_contain_text("refused x10")
    expect(page.locator("ul.reasons")).to_contain_text("not evaluated")
    screenshot(page, "run_verdicts")


LIVE_SUITE = """\
name: live
tests:
  - name: Health answers
    code: W-001
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
  - name: Status contract
    code: W-002
    kind: alt
    steps:
      - action: {type: httpRequest, method: GET, url: /v1/status/500}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
"""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_on_a_worker_finishes_live_opens_its_failure_and_compares_with_the_last_run(
    page: Page, live_server: Any, partner_a: Partner, sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from config.celery import app as celery_app
    from partners import services
    from tests.workers import celery_workers, new_queue

    queue = new_queue()
    monkeypatch.setitem(celery_app.conf, "task_default_queue", queue)
    factories.qa_lead()
    services.endpoint_save(
        partner=partner_a, by="test", name="api", base_url=sandbox.url, is_default=True,
        auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip
    suite, _ = suites.suite_store(entry="live.yaml", sources={"live.yaml": LIVE_SUITE}, by="t")
    first = runs.start_run(partner=partner_a, suite=suite, by="test")  # queued, no worker yet
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/{first.pk}/")
    expect(page.locator("#run-live .badge")).to_have_text("Queued")
    failing = page.locator("#scenario-1")
    expect(failing).not_to_have_attribute("open", "")
    headings = page.locator(".scenario-group h2")
    expect(headings.nth(0)).to_contain_text("Main")
    expect(headings.nth(1)).to_contain_text("Alternate")

    with celery_workers(1, queue=queue):
        # Watched without reloading: the header, then the failing scenario, which opens itself.
        expect(page.locator("#run-live .badge")).to_have_text("Failed", timeout=30_000)
        expect(page.locator("#run-live")).to_contain_text("2/2")
        expect(page.locator("#run-live")).to_contain_text("1 passed · 1 failed · 0 errored")
        expect(failing).to_have_attribute("open", "")
        expect(failing.locator("tr.bad")).to_contain_text("500")
        expect(failing.locator("tr.bad mark").last).to_have_text(
            "5"
        )  # 200 vs 500: only the 5 is marked
        expect(page.locator("#scenario-0")).not_to_have_attribute("open", "")
        page.locator("#scenario-0 summary").focus()
        page.keyboard.press("Enter")  # keyboard opens it; its steps load on demand
        expect(page.locator("#scenario-0 .step")).to_contain_text("HTTP 200")
        screenshot(page, "run_page")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "run_page_phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.get_by_role("button", name="Re-run").click()
        page.wait_for_url(re.compile(rf"/runs/(?!{first.pk}/)\d+/$"))
        expect(page.locator("#run-live .badge")).to_have_text("Failed", timeout=30_000)

    page.get_by_role("link", name="Compare with previous run").click()
    expect(page.locator("h1")).to_contain_text(f"compared with #{first.pk}")
    expect(page.locator("#still-failing")).to_contain_text("W-002")
    expect(page.locator("#newly-failing")).to_contain_text("None.")


TRAFFIC_SUITE = """
name: traffic-shown
items:
  - {type: MOCK, name: stripe, mockTarget: api.stripe.com, mockPath: /v1/charges,
     mockResponseBody: {id: ch_1}}
tests:
  - name: the sandbox charges Stripe
    code: B-010
    steps:
      - name: charge (played by the step)
        action:
          type: httpRequest
          method: POST
          url: mocks/api.stripe.com/v1/charges
          headers: {X-Origin: payment-service}
          body: {amount: 999}
        settleMs: 50
        assertions:
          - match: {origin: payment-service, url: api.stripe.com/v1/charges}
            assertions:
              - {path: request.body.amount, operator: eq, value: 2498}
"""


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_the_captured_requests_under_their_match_group(
    page: Page, live_server: Any, partner_a: Partner
) -> None:
    from certification import execution
    from partners import services

    factories.qa_lead()
    services.endpoint_save(
        partner=partner_a, by="test", name="mocks",
        base_url=f"{live_server.url}/mock/{partner_a.public_token}", is_default=True,
        auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip
    suite, _ = suites.suite_store(entry="t.yaml", sources={"t.yaml": TRAFFIC_SUITE}, by="test")
    run = execution.run_execute_inline(
        run=runs.run_create(partner=partner_a, suite=suite, by="test")
    )
    assert run.status == "failed"
    login(page, live_server, "qa")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    scenario = page.locator("#scenario-0")
    expect(scenario.locator(".traffic-match")).to_contain_text(
        "match 1 any method api.stripe.com/v1/charges from payment-service: 1 captured request"
    )
    expect(scenario.locator(".traffic-requests")).to_contain_text("POST api.stripe.com/v1/charges")
    expect(scenario.locator("tr.bad")).to_contain_text("request 1 of 1")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    scenario.screenshot(path=str(SCREENSHOTS / "run-traffic.png"))
