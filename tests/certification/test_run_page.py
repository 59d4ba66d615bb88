"""The run page: header and progress, grouping by MAE kind, lazy scenario bodies, the live
poll, and what the page sends at scale."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from certification import execution, results, run_page, runs, suites
from certification.engine.model import ScenarioOutcome, StepOutcome
from certification.models import Run, ScenarioRun, Suite
from partners.models import Partner
from tests import factories

POLL = {"HX-Request": "true", "HX-Target": "run-live"}


def _suite_text(kinds: list[str], name: str = "mixed") -> str:
    tests = "".join(
        f"  - name: scenario {i}\n    code: K-{i:03d}\n    kind: {kind}\n    steps:\n"
        "      - action: {type: wait, ms: 1}\n"
        for i, kind in enumerate(kinds)
    )
    return f"name: {name}\ntests:\n{tests}"


def _suite(kinds: list[str], name: str = "mixed") -> Suite:
    entry = f"{name}.yaml"
    stored, _ = suites.suite_store(entry=entry, sources={entry: _suite_text(kinds, name)}, by="t")
    return stored


def _finish(sr: ScenarioRun, status: str, steps: list[StepOutcome] | None = None) -> None:
    outcome = ScenarioOutcome(
        name=sr.scenario.name, code=sr.scenario.code, kind=sr.scenario.kind,
        status=status,  # type: ignore[arg-type]
        steps=steps if steps is not None else [StepOutcome(index=0, name="wait", status=status)],
    )  # fmt: skip
    results.scenario_outcome_save(scenario_run=sr, outcome=outcome)


def _failed_step(expected: Any, actual: Any) -> StepOutcome:
    from certification.engine.model import AssertionResult

    return StepOutcome(
        index=0, name="check the body", status="failed",
        assertions=[AssertionResult(path="response.body.id", operator="eq", expected=expected,
                                    actual=actual, passed=False, message="not equal")],
    )  # fmt: skip


@pytest.fixture
def run8(partner_a: Partner) -> Run:
    return runs.run_create(partner=partner_a, suite=_suite(["main"] * 8), by="test")


def _page(client: Client, run: Run, **headers: str) -> str:
    response = client.get(reverse("certification:run_detail", args=[run.pk]), headers=headers)
    assert response.status_code in (200, 286)
    return response.content.decode()


def test_run_reads_running_not_queued_while_a_scenario_runs(qa_client: Client, run8: Run) -> None:
    first = run8.scenario_runs.get(index=0)
    execution.scenario_claim(scenario_run_id=first.pk, worker="w:1")
    Run.objects.filter(pk=run8.pk).update(status=Run.Status.QUEUED)  # the run row lags behind

    body = _page(qa_client, run8, **POLL)

    assert 'class="badge status-running">Running<' in body
    assert "status-queued" not in body.split('id="scenario-')[0]
    assert "<strong>0/8</strong> scenarios done" in body and "1 running" in body


def test_header_counts_outcomes_and_shows_a_progress_bar(qa_client: Client, run8: Run) -> None:
    srs = list(run8.scenario_runs.select_related("scenario").order_by("index"))
    _finish(srs[0], "passed")
    _finish(srs[1], "failed")
    _finish(srs[2], "error")

    body = _page(qa_client, run8)

    assert "<strong>3/8</strong> scenarios done" in body
    assert "1 passed · 1 failed · 1 errored" in body
    assert '<progress class="run-bar" max="8" value="3"' in body
    assert re.search(r'class="progress-elapsed">[\d.]+ s so far<', body)


def test_finished_run_shows_its_elapsed_time_and_utc_times(qa_client: Client, run8: Run) -> None:
    runs.run_cancel(run=run8, by="test")
    body = _page(qa_client, run8)
    assert '<time class="utc" datetime=' in body
    assert "so far" not in body


def test_scenarios_are_grouped_main_alternate_exception_then_others(
    qa_client: Client, partner_a: Partner
) -> None:
    suite = _suite(["exception", "cross", "alt", "main"])
    run = runs.run_create(partner=partner_a, suite=suite, by="test")

    body = _page(qa_client, run)

    headings = re.findall(r'<h2 id="group-[\w-]+-title">(\w+)', body)
    assert headings == ["Main", "Alternate", "Exception", "Cross"]


def test_failing_scenario_comes_open_with_steps_and_a_passed_one_loads_its_steps_on_demand(
    qa_client: Client, partner_a: Partner
) -> None:
    run = runs.run_create(partner=partner_a, suite=_suite(["main", "main"]), by="test")
    passed, failed = run.scenario_runs.select_related("scenario").order_by("index")
    _finish(passed, "passed")
    _finish(failed, "failed", [_failed_step("ord_123", "ord_124")])

    body = _page(qa_client, run)

    failing_block = body[body.index('id="scenario-1"') :]
    assert failing_block.split(">", 1)[0].endswith(" open")
    assert "check the body" in body  # the failing scenario's step came with the page
    assert f'data-steps-url="/runs/{run.pk}/scenario/?index=0&amp;part=steps"' in body
    assert body.index('id="scenario-1"') < body.index('id="scenario-0"')  # failing first
    steps = qa_client.get(
        reverse("certification:run_scenario", args=[run.pk]), {"index": 0, "part": "steps"}
    ).content.decode()
    assert 'class="step step-passed"' in steps and "<html" not in steps


def test_failed_assertion_marks_the_differing_part_of_expected_and_actual(
    qa_client: Client, partner_a: Partner
) -> None:
    run = runs.run_create(partner=partner_a, suite=_suite(["main"]), by="test")
    _finish(run.scenario_runs.select_related("scenario").get(), "failed",
            [_failed_step("ord_123", "ord_1<b>4")])  # fmt: skip

    body = _page(qa_client, run)

    assert '<code class="diff">ord_1<mark>23</mark></code>' in body
    assert '<code class="diff">ord_1<mark>&lt;b&gt;4</mark></code>' in body


def test_scenario_fragment_of_a_finished_scenario_is_just_that_scenario(
    qa_client: Client, run8: Run
) -> None:
    _finish(run8.scenario_runs.select_related("scenario").get(index=3), "failed")
    response = qa_client.get(reverse("certification:run_scenario", args=[run8.pk]), {"index": 3})
    body = response.content.decode()
    assert body.startswith('<details class="card scenario" id="scenario-3"')
    assert 'data-status="failed"' in body and " open>" in body and "<html" not in body


def test_scenario_fragment_with_a_bad_index_is_404(qa_client: Client, run8: Run) -> None:
    url = reverse("certification:run_scenario", args=[run8.pk])
    assert qa_client.get(url, {"index": 99}).status_code == 404
    assert qa_client.get(url, {"index": "x"}).status_code == 404
    assert qa_client.get(url).status_code == 404


def test_scenario_fragments_of_another_partners_run_are_404(
    partner_a_client: Client, partner_b: Partner
) -> None:
    run_b = runs.run_create(partner=partner_b, suite=_suite(["main"]), by="test")
    for name, query in (
        ("run_scenario", {"index": 0}),
        ("run_scenarios", {"kind": "main", "offset": 0}),
    ):
        url = reverse(f"certification:{name}", args=[run_b.pk])
        assert partner_a_client.get(url, query).status_code == 404


def test_anonymous_user_is_sent_to_login_from_fragments(client: Client, run8: Run) -> None:
    response = client.get(reverse("certification:run_scenario", args=[run8.pk]), {"index": 0})
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_large_group_shows_a_page_and_the_rest_on_demand(
    qa_client: Client, partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_page, "PAGE_SIZE", 3)
    run = runs.run_create(partner=partner_a, suite=_suite(["main"] * 7), by="test")

    body = _page(qa_client, run)
    assert body.count('<details class="card scenario"') == 3
    assert "Show more (4 not shown)" in body

    more = qa_client.get(
        reverse("certification:run_scenarios", args=[run.pk]), {"kind": "main", "offset": 3}
    ).content.decode()
    assert re.findall(r'id="scenario-(\d+)"', more) == ["3", "4", "5"]
    assert "Show more (1 not shown)" in more and "offset=6" in more


def test_poll_sends_the_header_and_statuses_only(qa_client: Client, run8: Run) -> None:
    _finish(run8.scenario_runs.select_related("scenario").get(index=2), "failed")
    body = _page(qa_client, run8, **POLL)
    assert 'data-codes="qqfqqqqq"' in body
    assert "<details" not in body and 'id="run-results"' not in body


def test_last_poll_stops_and_brings_the_results(qa_client: Client, run8: Run) -> None:
    runs.run_cancel(run=run8, by="test")
    response = qa_client.get(reverse("certification:run_detail", args=[run8.pk]), headers=POLL)
    body = response.content.decode()
    assert response.status_code == 286
    assert '<div id="run-results" hx-swap-oob="true">' in body
    assert "hx-trigger" not in body


def test_cancel_asks_for_confirmation_and_rerun_posts_the_same_suite(
    qa_client: Client, run8: Run
) -> None:
    body = _page(qa_client, run8)
    assert re.search(rf'action="/runs/{run8.pk}/cancel/" data-confirm="Cancel run', body)
    start = reverse("certification:run_start", args=[run8.partner.external_id])
    assert f'action="{start}"' in body
    assert f'name="suite" value="{run8.suite_id}"' in body


def test_auditor_sees_no_rerun_or_cancel(auditor_client: Client, run8: Run) -> None:
    body = _page(auditor_client, run8)
    assert "Re-run" not in body and "Cancel run" not in body
    assert "Compare with previous run" in body


def test_page_queries_do_not_grow_with_scenarios(qa_client: Client, partner_a: Partner) -> None:
    from django.db import connection

    counts = []
    for size in (2, 30):
        run = runs.run_create(partner=partner_a, suite=_suite(["main"] * size, f"s{size}"),
                              by="test")  # fmt: skip
        for sr in run.scenario_runs.select_related("scenario"):
            _finish(sr, "failed" if sr.index % 2 else "passed")
        seen: list[str] = []

        def count(execute: Any, sql: str, *args: Any, seen: list[str] = seen) -> Any:
            seen.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(count):
            _page(qa_client, run)
        counts.append(len(seen))
    assert counts[0] == counts[1] > 0


def test_one_user_one_poll_is_a_few_kilobytes_at_ten_thousand_scenarios() -> None:
    statuses = [(i, "passed") for i in range(10_000)]
    run = Run(status=Run.Status.RUNNING, scenarios_total=10_000)
    progress = run_page.progress_of(run, statuses)
    assert len(progress.codes) == 10_000 and set(progress.codes) == {"p"}
    assert progress.done == 10_000 and progress.percent == 100


def test_progress_of_an_empty_run_is_zero_not_a_division_error() -> None:
    progress = run_page.progress_of(Run(status=Run.Status.QUEUED), [])
    assert (progress.done, progress.total, progress.percent, progress.status) == (0, 0, 0, "queued")


@pytest.mark.parametrize(
    ("value", "other", "html"),
    [
        ("abcXdef", "abcYdef", "abc<mark>X</mark>def"),
        ("abc", "abc", 'abc<mark class="gap" title="differs here"></mark>'),
        ("abcd", "abc", "abc<mark>d</mark>"),
        (201, 200, "20<mark>1</mark>"),
        (None, 200, "<mark>null</mark>"),
        ("aXa", "aa", "a<mark>X</mark>a"),
        ("x" * 100 + "Y", "x" * 100 + "Z", "…" + "x" * 40 + "<mark>Y</mark>"),
    ],
)
def test_diff_mark_keeps_common_prefix_and_suffix_plain(value: Any, other: Any, html: str) -> None:
    from certification.templatetags.run_display import diff_mark

    assert diff_mark(value, other) == html


def test_compare_link_and_export_remain(qa_client: Client, run8: Run) -> None:
    body = _page(qa_client, run8)
    assert reverse("certification:run_compare", args=[run8.pk]) in body
    assert reverse("certification:run_export", args=[run8.pk, "json"]) in body


def test_partner_user_of_another_partner_cannot_see_the_run_page(
    partner_b: Partner, run8: Run
) -> None:
    client = Client()
    client.force_login(factories.partner_user(partner_b))
    assert client.get(reverse("certification:run_detail", args=[run8.pk])).status_code == 404


def test_failing_scenario_shows_its_failing_steps_and_the_passed_ones_on_demand(
    qa_client: Client, partner_a: Partner
) -> None:
    run = runs.run_create(partner=partner_a, suite=_suite(["main"]), by="test")
    steps = [StepOutcome(index=i, name=f"fine step {i}", status="passed") for i in range(3)]
    steps.append(_failed_step("a", "b"))
    steps[-1].index = 3
    _finish(run.scenario_runs.select_related("scenario").get(), "failed", steps)

    body = _page(qa_client, run)

    assert "check the body" in body and "fine step" not in body
    assert "Show all steps (3 passed steps not shown)" in body
    all_steps = qa_client.get(
        reverse("certification:run_scenario", args=[run.pk]), {"index": 0, "part": "steps"}
    ).content.decode()
    assert all_steps.count('class="step step-') == 4


def test_a_timed_sla_shows_how_many_acknowledgements_it_measured(
    qa_client: Client, run8: Run
) -> None:
    verdict = {"sla": "ack", "kind": "ack", "endpoint": "", "target": "ack ≤ 15 min",
               "verdict": "met", "unit": "ms", "measured": 685.6, "samples": 3}  # fmt: skip
    Run.objects.filter(pk=run8.pk).update(sla_verdicts=[verdict], status="passed",
                                          finished_at=timezone.now())  # fmt: skip
    body = _page(qa_client, run8)
    row = body[body.index("685.6 ms") :]
    row = row[: row.index("</tr>")]
    assert '<td class="wide-only">3</td>' in row
