"""Comparing a run with the previous finished run of the same partner and suite."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from certification import results, run_page, runs, suites
from certification.engine.model import ScenarioOutcome, StepOutcome
from certification.models import Run
from partners.models import Partner

SUITE = "name: cmp\ntests:\n" + "".join(
    f"  - name: scenario {c}\n    code: C-00{c}\n    steps:\n"
    "      - action: {type: wait, ms: 1}\n"
    for c in range(1, 5)
)


def _run(partner: Partner, outcomes: list[str], latency: dict[str, Any] | None = None) -> Run:
    suite, _ = suites.suite_store(entry="cmp.yaml", sources={"cmp.yaml": SUITE}, by="t")
    run = runs.run_create(partner=partner, suite=suite, by="test")
    for sr, status in zip(run.scenario_runs.select_related("scenario"), outcomes, strict=True):
        results.scenario_outcome_save(scenario_run=sr, outcome=ScenarioOutcome(
            name=sr.scenario.name, code=sr.scenario.code, kind="main", status=status,
            steps=[StepOutcome(index=0, name="wait", status=status)]))  # fmt: skip
    if latency is not None:
        Run.objects.filter(pk=run.pk).update(latency=latency)
    run.refresh_from_db()
    return run


def _compare(client: Client, run: Run, **query: Any) -> str:
    response = client.get(reverse("certification:run_compare", args=[run.pk]), query)
    assert response.status_code == 200
    return response.content.decode()


def _section(body: str, section: str) -> str:
    start = body.index(f'id="{section}"')
    return body[start : body.index("</section>", start)]


def test_first_run_says_there_is_nothing_to_compare_with(
    qa_client: Client, partner_a: Partner
) -> None:
    run = _run(partner_a, ["passed"] * 4)
    body = _compare(qa_client, run)
    assert "There is no previous finished run of cmp for Alpha Freight" in body


def test_compare_lists_newly_failing_fixed_and_still_failing(
    qa_client: Client, partner_a: Partner
) -> None:
    before = _run(partner_a, ["passed", "failed", "error", "passed"])
    after = _run(partner_a, ["failed", "passed", "unevaluated", "passed"])

    body = _compare(qa_client, after)

    assert f"compared with #{before.pk}" in body
    assert re.findall(r"C-00\d", _section(body, "newly-failing")) == ["C-001"]
    assert re.findall(r"C-00\d", _section(body, "fixed")) == ["C-002"]
    assert re.findall(r"C-00\d", _section(body, "still-failing")) == ["C-003"]
    assert "Not evaluated" in _section(body, "still-failing")
    assert "1 other scenario kept an outcome" in body


def test_latency_delta_per_endpoint_with_dashes_where_unmeasured(
    qa_client: Client, partner_a: Partner
) -> None:
    _run(partner_a, ["passed"] * 4, {"api": {"p50": 10.0, "p95": 20.0, "p99": 30.0},
                                     "old": {"p50": 5.0, "p95": 6.0, "p99": 7.0}})  # fmt: skip
    after = _run(partner_a, ["passed"] * 4, {"api": {"p50": 12.5, "p95": 18.0, "p99": 30.0}})

    body = _compare(qa_client, after)

    def row(endpoint: str, pct: str) -> str:
        match = re.search(
            rf'<tr data-endpoint="{endpoint}" data-percentile="{pct}">(.*?)</tr>', body
        )
        assert match, (endpoint, pct)
        return match.group(1)

    assert "10 ms" in row("api", "p50") and "12.5 ms" in row("api", "p50")
    assert "+2.5 ms" in row("api", "p50")
    assert "−2 ms" in row("api", "p95") and "±0 ms" in row("api", "p99")
    assert row("old", "p95").endswith('<td>6 ms</td><td>—</td><td class="delta">—</td>')


def test_previous_run_is_the_last_finished_one_before_of_the_same_suite_and_partner(
    partner_a: Partner, partner_b: Partner
) -> None:
    older = _run(partner_a, ["passed"] * 4)
    previous = _run(partner_a, ["failed"] * 4)
    _run(partner_b, ["passed"] * 4)  # another partner
    suite = previous.suite
    runs.run_create(partner=partner_a, suite=suite, by="test")  # still queued: not finished
    current = _run(partner_a, ["passed"] * 4)
    later = _run(partner_a, ["passed"] * 4)

    assert run_page.previous_run(current, Run.objects.all()) == previous
    assert run_page.previous_run(later, Run.objects.all()) == current
    assert run_page.previous_run(older, Run.objects.all()) is None


def test_a_cancelled_run_is_not_the_previous_run(partner_a: Partner) -> None:
    previous = _run(partner_a, ["failed"] * 4)
    cancelled = runs.run_create(partner=partner_a, suite=previous.suite, by="test")
    runs.run_cancel(run=cancelled, by="test")
    current = _run(partner_a, ["passed"] * 4)

    assert Run.objects.get(pk=cancelled.pk).status == Run.Status.CANCELLED
    assert run_page.previous_run(current, Run.objects.all()) == previous


def test_compare_with_a_chosen_run(qa_client: Client, partner_a: Partner) -> None:
    first = _run(partner_a, ["failed"] * 4)
    _run(partner_a, ["passed"] * 4)
    third = _run(partner_a, ["passed"] * 4)
    body = _compare(qa_client, third, **{"with": first.pk})
    assert f"compared with #{first.pk}" in body
    assert len(re.findall(r"C-00\d", _section(body, "fixed"))) == 4


def test_compare_with_another_partners_run_is_404(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    mine = _run(partner_a, ["passed"] * 4)
    theirs = _run(partner_b, ["passed"] * 4)
    url = reverse("certification:run_compare", args=[mine.pk])
    assert partner_a_client.get(url, {"with": theirs.pk}).status_code == 404
    assert partner_a_client.get(url, {"with": "x"}).status_code == 404
    other = reverse("certification:run_compare", args=[theirs.pk])
    assert partner_a_client.get(other).status_code == 404


def test_partner_users_previous_run_ignores_runs_they_cannot_see(
    partner_a_client: Client, partner_a: Partner
) -> None:
    run = _run(partner_a, ["passed"] * 4)
    assert "There is no previous finished run" in _compare(partner_a_client, run)


def test_anonymous_user_is_sent_to_login(client: Client, partner_a: Partner) -> None:
    run = _run(partner_a, ["passed"] * 4)
    response = client.get(reverse("certification:run_compare", args=[run.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_scenarios_without_code_match_by_name() -> None:
    before = {"name:login": ("", "login", "failed")}
    after = {"name:login": ("", "login", "passed"), "code:X-1": ("X-1", "new", "failed")}
    result = run_page.compare_outcomes(before, after)
    assert [c.name for c in result.fixed] == ["login"]
    assert [(c.code, c.before) for c in result.newly_failing] == [("X-1", None)]
