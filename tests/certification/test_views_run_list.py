"""The runs list: counts by outcome (not done/total), SLA result, duration, filters that stay
in the URL, pagination, and partner scoping."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from certification import runs, suites
from certification.models import Run, ScenarioRun
from partners.models import Partner
from tests import factories

URL = reverse("certification:run_list")
SUITE = "name: smoke\ntests:\n" + "".join(
    f"  - name: s{i}\n    code: B-00{i}\n    steps:\n      - action: {{type: wait, ms: 1}}\n"
    for i in range(4)
)


@pytest.fixture
def suite(db: Any) -> Any:
    stored, _ = suites.suite_store(entry="s.yaml", sources={"s.yaml": SUITE}, by="t")
    return stored


def _finished(partner: Partner, suite: Any, statuses: list[str], *, run_status: str) -> Run:
    run = runs.run_create(partner=partner, suite=suite, by="t")
    for scenario_run, status in zip(run.scenario_runs.order_by("index"), statuses, strict=True):
        ScenarioRun.objects.filter(pk=scenario_run.pk).update(status=status)
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        status=run_status, started_at=now, finished_at=now, scenarios_done=len(statuses),
        sla_verdicts=[{"verdict": "missed"}, {"verdict": "met"}, {"verdict": "met"}],
    )  # fmt: skip
    return run


def _row(body: str, run: Run) -> str:
    start = body.index(f">#{run.pk}<")
    return body[start : body.index("</tr>", start)]


def test_a_failed_run_shows_what_passed_and_failed_not_done_of_total(
    qa_client: Client, partner_a: Partner, suite: Any
) -> None:
    run = _finished(partner_a, suite, ["passed", "passed", "failed", "error"], run_status="failed")
    row = _row(qa_client.get(URL).content.decode(), run)
    assert "2/4 passed" in row and "1 failed" in row and "1 error" in row
    assert "4/4" not in row


def test_a_cancelled_run_says_how_many_were_cancelled(
    qa_client: Client, partner_a: Partner, suite: Any
) -> None:
    run = _finished(
        partner_a, suite, ["passed", "cancelled", "cancelled", "cancelled"], run_status="cancelled"
    )
    row = _row(qa_client.get(URL).content.decode(), run)
    assert "1/4 passed" in row and "3 cancelled" in row


def test_the_sla_column_counts_verdicts_failing_first(
    qa_client: Client, partner_a: Partner, suite: Any
) -> None:
    run = _finished(partner_a, suite, ["passed"] * 4, run_status="failed")
    row = _row(qa_client.get(URL).content.decode(), run)
    assert row.index("1 missed") < row.index("2 met")


def test_filters_by_partner_and_status_and_keeps_them_in_page_links(
    qa_client: Client, partner_a: Partner, partner_b: Partner, suite: Any
) -> None:
    for _ in range(51):
        _finished(partner_a, suite, ["passed"] * 4, run_status="passed")
    other = _finished(partner_b, suite, ["failed"] * 4, run_status="failed")
    page = qa_client.get(URL, {"partner": partner_a.external_id, "status": "passed"})
    body = page.content.decode()
    assert f">#{other.pk}<" not in body and "51 runs" in body
    assert f"partner={partner_a.external_id}&amp;status=passed&amp;page=2" in body


def test_filters_by_date_in_utc_days(qa_client: Client, partner_a: Partner, suite: Any) -> None:
    run = _finished(partner_a, suite, ["passed"] * 4, run_status="passed")
    today = timezone.now().date().isoformat()
    assert f">#{run.pk}<" in qa_client.get(URL, {"date_from": today}).content.decode()
    assert f">#{run.pk}<" not in qa_client.get(URL, {"date_to": "2020-01-01"}).content.decode()


def test_a_bad_date_range_is_a_form_error_not_a_crash(qa_client: Client) -> None:
    response = qa_client.get(URL, {"date_from": "2026-12-02", "date_to": "2026-12-01"})
    assert response.status_code == 400
    assert "To: The end date is before the start date." in response.content.decode()
    assert qa_client.get(URL, {"date_from": "yesterday"}).status_code == 400


def test_a_partner_user_sees_only_their_runs_even_when_filtering_for_another(
    partner_a: Partner, partner_b: Partner, suite: Any
) -> None:
    own = _finished(partner_a, suite, ["passed"] * 4, run_status="passed")
    other = _finished(partner_b, suite, ["passed"] * 4, run_status="passed")
    client = Client()
    client.force_login(factories.partner_user(partner_a))
    body = client.get(URL).content.decode()
    assert f">#{own.pk}<" in body and f">#{other.pk}<" not in body
    filtered = client.get(URL, {"partner": partner_b.external_id}).content.decode()
    assert f">#{other.pk}<" not in filtered and "No runs match these filters." in filtered


def test_the_list_takes_a_constant_number_of_queries(
    qa_client: Client, partner_a: Partner, suite: Any, django_assert_max_num_queries: Any
) -> None:
    for _ in range(30):
        _finished(partner_a, suite, ["passed"] * 4, run_status="passed")
    with django_assert_max_num_queries(12):
        assert qa_client.get(URL).status_code == 200
