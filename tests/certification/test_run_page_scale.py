"""A 10,000-step run: the page stays small and its queries do not depend on the step count.

Prints the server time (informal, not asserted tightly: CI machines vary)."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection
from django.test import Client
from django.urls import reverse

from certification import runs, suites
from certification.models import Run, ScenarioRun, StepResult
from partners.models import Partner

SCENARIOS, STEPS = 100, 100


class _Counted:
    """Counts the SQL statements run inside it (``execute_wrapper`` sees every one; the
    queries log is reset at each request's start, so it cannot be sliced across a request)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def _big_run(partner: Partner) -> Run:
    tests = "".join(
        f"  - name: scenario {i}\n    code: S-{i:03d}\n    steps:\n"
        "      - action: {type: wait, ms: 1}\n"
        for i in range(SCENARIOS)
    )
    suite, _ = suites.suite_store(
        entry="big.yaml", sources={"big.yaml": f"name: big\ntests:\n{tests}"}, by="t"
    )
    run = runs.run_create(partner=partner, suite=suite, by="test")
    body = '{"id": 1, "items": [' + ", ".join(['{"sku": "A-1", "qty": 2}'] * 20) + "]}"
    rows = []
    for sr in run.scenario_runs.all():
        failed = sr.index in (7, 42)
        for i in range(STEPS):
            status = "failed" if failed and i == STEPS - 1 else "passed"
            rows.append(StepResult(
                scenario_run=sr, step_index=i, name=f"step {i}", status=status,
                request={"method": "GET", "url": "http://127.0.0.1/x", "headers": {}, "body": ""},
                response={"status": 200, "headers": {"content-type": "application/json"},
                          "body": body},
                assertions=[{"path": "response.status", "operator": "eq", "expected": 200,
                             "actual": 200 if status == "passed" else 500,
                             "passed": status == "passed", "evaluated": True, "message": ""}],
            ))  # fmt: skip
    StepResult.objects.bulk_create(rows, batch_size=2000)
    ScenarioRun.objects.filter(run=run).update(status="passed")
    ScenarioRun.objects.filter(run=run, index__in=[7, 42]).update(status="failed")
    Run.objects.filter(pk=run.pk).update(status="running", scenarios_done=SCENARIOS)
    return run


def test_ten_thousand_step_run_page_is_small_and_fast(
    qa_client: Client, partner_a: Partner, capsys: Any
) -> None:
    run = _big_run(partner_a)
    url = reverse("certification:run_detail", args=[run.pk])
    qa_client.get(url)  # warm caches (templates, sessions)
    started = time.perf_counter()
    queries = _Counted()
    with connection.execute_wrapper(queries):
        response = qa_client.get(url)
    page_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    poll = qa_client.get(url, headers={"HX-Request": "true", "HX-Target": "run-live"})
    poll_ms = (time.perf_counter() - started) * 1000
    with capsys.disabled():
        print(
            f"\n10,000-step run page: {page_ms:.0f} ms, {len(response.content):,} bytes, "
            f"{queries.count} queries; poll: {poll_ms:.0f} ms, {len(poll.content):,} bytes"
        )
    assert response.status_code == 200
    assert len(response.content) < 600_000  # two failing scenarios' 200 steps, the rest lazy
    assert len(poll.content) < 10_000
    assert queries.count < 20
    assert page_ms < 2_000  # generous; the figure printed above is the one to read
