"""The partner page as a QA lead and a partner's user read it: suites in scope and where each
stands, the certification history, run history with scenario counts, and the charts drawn from
the runs as stored (no pooling across endpoints, cancelled runs left out, constant queries)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from certification import results, runs, suites
from certification.engine.histogram import Histogram
from certification.engine.model import LatencySummary, ScenarioOutcome, StepOutcome
from certification.models import Run, Suite
from evidence import services
from partners.models import SLA, Partner
from tests import factories

SUITE = """\
name: orders
tests:
  - name: create order
    code: B-001
    steps:
      - action: {type: wait, ms: 1}
  - name: refund order
    code: B-002
    steps:
      - action: {type: wait, ms: 1}
"""


def _suite(name: str = "orders") -> Suite:
    text = SUITE.replace("name: orders", f"name: {name}", 1)
    stored, _ = suites.suite_store(entry=f"{name}.yaml", sources={f"{name}.yaml": text}, by="t")
    return stored


def _latency(endpoint: str, samples: list[float], failed: int = 0) -> LatencySummary:
    histogram = Histogram()
    histogram.record_many(samples)
    n = len(samples) + failed
    return LatencySummary(
        endpoint=endpoint, requests=n, ok=len(samples), errors=failed,
        success_ratio=len(samples) / n if n else None,
        p50=None, p90=None, p95=None, p99=None, max=None, wall_ms=1.0,
        errors_by_kind={"refused": failed} if failed else {}, histogram=histogram.to_dict(),
    )  # fmt: skip


Probes = dict[str, tuple[list[float], int]]


def _finished_run(
    partner: Partner,
    suite: Suite,
    *,
    statuses: tuple[str, str] = ("passed", "passed"),
    probes: Probes | None = None,
) -> Run:
    """A run finished through the real save and finalise code: one outcome per scenario, the
    first carrying a latency probe per endpoint in ``probes``."""
    run = runs.run_create(partner=partner, suite=suite, by="test")
    scenario_runs = run.scenario_runs.select_related("scenario").order_by("index")
    for sr, status in zip(scenario_runs, statuses, strict=True):
        steps = [StepOutcome(index=0, name="wait", status=status)]
        if probes and sr.index == 0:
            steps = [
                StepOutcome(index=i, name=f"probe {name}", status="passed",
                            latency=_latency(name, samples, failed))
                for i, (name, (samples, failed)) in enumerate(sorted(probes.items()))
            ]  # fmt: skip
        outcome = ScenarioOutcome(name=sr.scenario.name, code=sr.scenario.code, kind="main",
                                  status=status, steps=steps)  # fmt: skip
        assert results.scenario_outcome_save(scenario_run=sr, outcome=outcome)
    run.refresh_from_db()
    assert run.is_finished
    return run


def _page(client: Client, partner: Partner) -> str:
    response = client.get(reverse("partners:detail", args=[partner.external_id]))
    assert response.status_code == 200
    return response.content.decode()


def _figures(body: str) -> dict[str, Any]:
    found = re.findall(r'<script id="([\w-]+)-figure" type="application/json">(.*?)</script>', body)
    return {chart_id: json.loads(data) for chart_id, data in found}


def _trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t["name"] == name)


@pytest.fixture
def p95_sla(partner_a: Partner) -> SLA:
    return SLA.objects.create(partner=partner_a, name="p95", kind="latency", text="p95<=300ms",
                              percentile=95, threshold_ms=300)  # fmt: skip


def test_a_partner_without_finished_runs_says_the_charts_start_with_the_first(
    qa_client: Client, partner_a: Partner
) -> None:
    body = _page(qa_client, partner_a)
    assert 'id="no-charts"' in body
    assert "plotly.min.js" not in body


def test_charts_show_each_endpoints_percentiles_from_the_stored_runs_without_pooling(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    suite = _suite()
    _finished_run(partner_a, suite, probes={"api": ([40.0] * 60, 0), "slow": ([800.0] * 60, 0)})
    body = _page(qa_client, partner_a)
    figures = _figures(body)
    api = figures["chart-latency-0-api"]
    slow = figures["chart-latency-1-slow"]
    assert _trace(api, "p95")["y"] == [pytest.approx(40.0, rel=0.001)]
    assert _trace(slow, "p95")["y"] == [pytest.approx(800.0, rel=0.001)]
    assert set(_trace(api, "target p95")["y"]) == {300.0}
    assert not any(t["name"] == "SLA missed" for t in api["data"])
    assert _trace(slow, "SLA missed")["y"] == [pytest.approx(800.0, rel=0.002)]
    assert "vendor/plotly.min.js" in body and "js/charts.js" in body


def test_an_endpoint_that_refused_every_request_is_marked_missed_and_draws_no_latency(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    _finished_run(partner_a, _suite(), probes={"api": ([], 25)})
    figures = _figures(_page(qa_client, partner_a))
    latency = figures["chart-latency-0-api"]
    assert _trace(latency, "p95")["y"] == [None]
    missed = _trace(latency, "SLA missed")
    assert missed["y"] == [300.0] and "25 requests failed" in missed["text"][0]
    assert _trace(figures["chart-error-rate"], "api")["y"] == [100.0]


def test_each_chart_has_a_table_of_its_numbers_open_until_the_chart_is_drawn(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    run = _finished_run(partner_a, _suite(), probes={"api": ([40.0] * 60, 0)})
    body = _page(qa_client, partner_a)
    table = body[body.index('id="chart-latency-0-api"') :]
    table = table[: table.index("</figure>")]
    assert '<details class="chart-table" open>' in table
    assert f"<td>#{run.pk}</td>" in table and "<td>40 ms</td>" in table
    assert "p95 (p95 ≤ 300 ms): met" in table
    assert '<time class="utc"' in table
    assert 'role="img"' in table and "aria-label=" in table


def test_pass_rate_counts_scenarios_passed_of_all_and_leaves_cancelled_runs_out(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    suite = _suite()
    _finished_run(partner_a, suite, statuses=("passed", "passed"))
    _finished_run(partner_a, suite, statuses=("passed", "failed"))
    cancelled = runs.run_create(partner=partner_a, suite=suite, by="test")
    runs.run_cancel(run=cancelled, by="test")
    figure = _figures(_page(qa_client, partner_a))["chart-pass-rate"]
    assert _trace(figure, "orders")["y"] == [100.0, 50.0]
    assert _trace(figure, "orders")["marker"]["symbol"] == ["circle", "x"]


def test_run_history_shows_passed_and_failed_counts_not_done_of_total(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    _finished_run(partner_a, _suite(), statuses=("passed", "failed"))
    body = _page(qa_client, partner_a)
    history = body[body.index('id="partner-runs"') :]
    assert "1/2 passed" in history and "1 failed" in history
    assert "2/2" not in history


def test_run_history_links_to_all_runs_of_the_partner_when_it_has_more(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    suite = _suite()
    for _ in range(21):
        runs.run_create(partner=partner_a, suite=suite, by="test")
    body = _page(qa_client, partner_a)
    assert f"?partner={partner_a.external_id}" in body
    assert body.count('data-label="Run"><a href="/runs/') == 20


def test_suites_in_scope_show_their_latest_run_and_a_never_run_suite_says_so(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    orders, _refunds = _suite("orders"), _suite("refunds")
    qa = factories.qa_lead("qa-scope")
    services.certification_open(partner=partner_a, scope="orders-v1", title="Orders v1",
                                suite_names=["orders", "refunds"], by=qa)  # fmt: skip
    run = _finished_run(partner_a, orders, statuses=("passed", "failed"))
    body = _page(qa_client, partner_a)
    panel = body[body.index('id="suites-in-scope"') :]
    panel = panel[: panel.index("</section>")]
    orders_row, refunds_row = panel.split("<tr>")[2:4]
    assert f"#{run.pk}" in orders_row and "1/2 passed" in orders_row and "Failed" in orders_row
    assert "never run" in refunds_row and "Orders v1" in refunds_row


def test_certification_history_lists_current_and_past_certifications_with_their_suites(
    qa_client: Client, partner_a: Partner
) -> None:
    qa = factories.qa_lead("qa-history")
    _suite("orders"), _suite("refunds")
    first = services.certification_open(partner=partner_a, scope="orders-v1", title="Orders v1",
                                        suite_names=["orders"], by=qa)  # fmt: skip
    services.certification_withdraw(certification=first, by=qa, reason="scope changed")
    services.certification_open(partner=partner_a, scope="orders-v2", title="Orders v2",
                                suite_names=["orders", "refunds"], by=qa)  # fmt: skip
    body = _page(qa_client, partner_a)
    panel = body[body.index('id="certifications"') :]
    panel = panel[: panel.index("</section>")]
    assert panel.index("Orders v2") < panel.index("Orders v1")
    assert "Withdrawn" in panel and "scope changed" in panel
    assert '<span class="chip">refunds</span>' in panel


def test_a_partner_user_sees_the_charts_of_their_partner_and_not_of_another(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner, endpoint_a: Any,
    endpoint_b: Any
) -> None:  # fmt: skip
    _finished_run(partner_a, _suite(), probes={"api": ([40.0] * 10, 0)})
    assert "chart-latency-0-api" in _page(partner_a_client, partner_a)
    response = partner_a_client.get(reverse("partners:detail", args=[partner_b.external_id]))
    assert response.status_code == 404


def test_the_partner_page_reads_a_constant_number_of_queries_whatever_its_history(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    suite = _suite()
    _finished_run(partner_a, suite, probes={"api": ([40.0] * 5, 0)})
    url = reverse("partners:detail", args=[partner_a.external_id])
    with CaptureQueriesContext(connection) as one:
        qa_client.get(url)
    for _ in range(6):
        _finished_run(partner_a, suite, statuses=("passed", "failed"),
                      probes={"api": ([40.0] * 5, 1), "other": ([9.0], 0)})  # fmt: skip
    with CaptureQueriesContext(connection) as seven:
        qa_client.get(url)
    assert len(seven) == len(one)


def test_a_run_that_failed_before_running_any_scenario_has_no_pass_rate_point(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    suite = _suite()
    _finished_run(partner_a, suite, statuses=("passed", "passed"))
    broken = runs.run_create(partner=partner_a, suite=suite, by="test")
    results.run_fail(run=broken, message="the suite no longer parses")
    figure = _figures(_page(qa_client, partner_a))["chart-pass-rate"]
    assert _trace(figure, "orders")["y"] == [100.0]


def test_the_run_form_offers_the_partners_suites_in_scope_first(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    _suite("alpha-other")
    _suite("orders")
    services.certification_open(partner=partner_a, scope="orders-v1", title="Orders v1",
                                suite_names=["orders"], by=factories.qa_lead("qa-run"))  # fmt: skip
    body = _page(qa_client, partner_a)
    select = body[body.index('name="suite"') :]
    options = re.findall(r"<option[^>]*>([^<]+)</option>", select[: select.index("</select>")])
    assert options[0] == "orders (v1)" and "alpha-other (v1)" in options
