"""Runs executed by real Celery worker processes, and what happens when workers die."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from certification import execution, results, runs, suites
from certification.models import Run, ScenarioRun, StepResult, Suite
from config.celery import app as celery_app
from partners.models import Partner
from tests.workers import celery_workers

SMOKE = """name: smoke
tests:
  - name: health
    code: B-900
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
  - name: broken contract
    code: B-901
    steps:
      - action: {type: httpRequest, method: GET, url: /v1/status/500}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
"""


def _suite(text: str, name: str = "s.yaml") -> Suite:
    suite, _ = suites.suite_store(entry=name, sources={name: text}, by="test")
    return suite


def _run(partner: Partner, suite: Suite, sandbox_url: str) -> Run:
    return runs.run_create(
        partner=partner, suite=suite, by="test", endpoint_overrides={"api": sandbox_url}
    )


def _rows(run: Run) -> list[tuple[Any, ...]]:
    return list(
        StepResult.objects.filter(scenario_run__run=run)
        .order_by("scenario_run__index", "step_index", "iteration")
        .values_list("scenario_run__index", "step_index", "iteration", "status", "assertions")
    )


@pytest.fixture
def default_queue(monkeypatch: pytest.MonkeyPatch) -> str:
    """Send this test's tasks to a queue of its own, served by the workers it starts."""
    from tests.workers import new_queue

    queue = new_queue()
    monkeypatch.setitem(celery_app.conf, "task_default_queue", queue)
    return queue


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_suite_without_inline_runs_on_the_workers_and_reports_as_they_finish(
    partner_a: Partner, sandbox: Any, tmp_path: Path, capsys: Any, default_queue: str
) -> None:
    path = tmp_path / "smoke.yaml"
    path.write_text(SMOKE)
    with (
        celery_workers(1, queue=default_queue, pool="prefork", concurrency=2),
        pytest.raises(SystemExit) as excinfo,
    ):
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(path),
                     "--endpoint", f"api={sandbox.url}", "--timeout", "60")  # fmt: skip
    assert excinfo.value.code == 1
    out = capsys.readouterr().out
    assert "PASS B-900 health" in out
    assert "FAIL B-901 broken contract" in out and "expected 200, got 500" in out
    run = Run.objects.get()
    assert run.status == "failed" and run.scenarios_done == 2
    assert all(sr.attempts == 1 for sr in run.scenario_runs.all())


PROBE_IN_PROCESSES = """name: probe
tests:
  - name: latency from two processes
    code: L-900
    steps:
      - action: {type: latencyProbe, method: GET, url: /health, requests: 40, concurrency: 4,
                 processes: 2}
        assertions: [{assertions: [{path: latency.ok, operator: eq, value: 40}]}]
"""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_probe_spread_over_processes_runs_inside_a_prefork_worker(
    partner_a: Partner, sandbox: Any, default_queue: str
) -> None:
    # Prefork pool processes are daemonic (multiprocessing may not start children there);
    # probe processes are started as plain subprocesses, so they run all the same.
    suite = _suite(PROBE_IN_PROCESSES)
    with celery_workers(1, queue=default_queue, pool="prefork", concurrency=1) as (worker,):
        run = runs.start_run(
            partner=partner_a, suite=suite, by="test", endpoint_overrides={"api": sandbox.url}
        )
        worker.wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=60)
    run.refresh_from_db()
    assert run.status == "passed", run.error
    (step,) = StepResult.objects.filter(scenario_run__run=run)
    assert step.latency["ok"] == 40 and step.latency["client_processes"] == 2


@pytest.mark.django_db
def test_a_scenario_task_run_twice_leaves_the_same_rows_as_once(
    partner_a: Partner, sandbox: Any
) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    first = run.scenario_runs.get(index=0)
    execution.scenario_execute(scenario_run_id=first.pk, worker="w1")
    once = _rows(run)
    claim = execution.scenario_execute(scenario_run_id=first.pk, worker="w2")
    assert claim.scenario_run is None and claim.retry_after == 0
    assert _rows(run) == once
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("passed", 1)


@pytest.mark.django_db
def test_saving_the_same_outcome_twice_counts_the_scenario_once(
    partner_a: Partner, sandbox: Any
) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    scenario_run = run.scenario_runs.select_related("scenario").get(index=0)
    from certification.engine.model import ScenarioOutcome, StepOutcome

    outcome = ScenarioOutcome(
        name="health", code="B-900", kind="main", status="passed",
        steps=[StepOutcome(index=0, name="s", status="passed")],
    )  # fmt: skip
    assert results.scenario_outcome_save(scenario_run=scenario_run, outcome=outcome)
    assert not results.scenario_outcome_save(scenario_run=scenario_run, outcome=outcome)
    run.refresh_from_db()
    assert run.scenarios_done == 1 and len(_rows(run)) == 1


@pytest.mark.django_db
def test_scenario_held_by_a_live_worker_is_retried_later_not_run_twice(
    partner_a: Partner, sandbox: Any
) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    scenario_run = run.scenario_runs.get(index=0)
    assert execution.scenario_claim(scenario_run_id=scenario_run.pk, worker="w1").scenario_run
    claim = execution.scenario_execute(scenario_run_id=scenario_run.pk, worker="w2")
    assert claim.scenario_run is None
    assert 0 < claim.retry_after <= settings.SCENARIO_LEASE_SECONDS + 1
    assert not StepResult.objects.exists()


@pytest.mark.django_db
def test_scenario_of_a_dead_worker_is_taken_over_after_its_lease(
    partner_a: Partner, sandbox: Any
) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    scenario_run = run.scenario_runs.get(index=0)
    execution.scenario_claim(scenario_run_id=scenario_run.pk, worker="dead")
    ScenarioRun.objects.filter(pk=scenario_run.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.SCENARIO_LEASE_SECONDS + 1)
    )
    claim = execution.scenario_execute(scenario_run_id=scenario_run.pk, worker="alive")
    scenario_run.refresh_from_db()
    assert claim.scenario_run is not None
    assert (scenario_run.status, scenario_run.attempts) == ("passed", 2)


@pytest.mark.django_db
def test_sweep_requeues_stalled_scenarios_and_gives_up_after_three_attempts(
    partner_a: Partner, sandbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    stale = timezone.now() - timedelta(seconds=settings.SCENARIO_LEASE_SECONDS + 5)
    retry, hopeless = run.scenario_runs.order_by("index")
    ScenarioRun.objects.filter(pk=retry.pk).update(status="running", attempts=1, claimed_at=stale)
    ScenarioRun.objects.filter(pk=hopeless.pk).update(
        status="running", attempts=settings.SCENARIO_MAX_ATTEMPTS, claimed_at=stale
    )
    with django_capture_on_commit_callbacks() as callbacks:
        counts = execution.scenarios_requeue_stalled()
    assert counts == {"requeued": 1, "resent": 0, "given_up": 1}
    assert len(callbacks) == 1
    retry.refresh_from_db()
    hopeless.refresh_from_db()
    run.refresh_from_db()
    assert retry.status == "queued"
    assert hopeless.status == "error"
    assert "given up after 3 attempts" in run.error


@pytest.mark.django_db
def test_a_scenario_queued_for_a_lease_while_the_broker_holds_no_message_is_sent_again(
    partner_a: Partner, sandbox: Any, default_queue: str,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    # Its message was fetched by a worker that died before claiming it (the test's queue is
    # empty), even though another scenario is running.
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    stuck, busy = run.scenario_runs.order_by("index")[:2]
    waited = timezone.now() - timedelta(seconds=settings.SCENARIO_LEASE_SECONDS + 1)
    ScenarioRun.objects.filter(pk=stuck.pk).update(queued_at=waited)
    ScenarioRun.objects.filter(pk=busy.pk).update(status="running", claimed_at=timezone.now())
    with django_capture_on_commit_callbacks() as callbacks:
        counts = execution.scenarios_requeue_stalled()
    assert counts == {"requeued": 0, "resent": 1, "given_up": 0} and len(callbacks) == 1
    stuck.refresh_from_db()
    assert stuck.status == "queued" and stuck.queued_at > waited


@pytest.mark.django_db(transaction=True)
def test_while_messages_wait_in_the_broker_a_long_queue_is_not_sent_again(
    partner_a: Partner, sandbox: Any, default_queue: str
) -> None:
    from certification.tasks import run_scenario

    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    waiting = run.scenario_runs.order_by("index").first()
    waited = timezone.now() - timedelta(seconds=settings.SCENARIO_LEASE_SECONDS + 1)
    ScenarioRun.objects.filter(pk=waiting.pk).update(queued_at=waited)
    run_scenario.delay(waiting.pk)  # no worker reads the test's queue: the message waits
    try:
        assert execution.scenarios_requeue_stalled()["resent"] == 0
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(default_queue)


@pytest.mark.django_db
@pytest.mark.parametrize(("running", "resent"), [(False, 1), (True, 0)])
def test_when_the_broker_cannot_count_its_messages_only_an_idle_system_resends(
    partner_a: Partner, sandbox: Any, monkeypatch: pytest.MonkeyPatch, running: bool,
    resent: int,
) -> None:  # fmt: skip
    from certification import sweeper

    monkeypatch.setattr(sweeper, "broker_backlog", lambda: None)
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    waiting, other = run.scenario_runs.order_by("index")[:2]
    waited = timezone.now() - timedelta(seconds=settings.SCENARIO_LEASE_SECONDS + 1)
    ScenarioRun.objects.filter(pk=waiting.pk).update(queued_at=waited)
    if running:
        ScenarioRun.objects.filter(pk=other.pk).update(status="running", claimed_at=timezone.now())
    assert execution.scenarios_requeue_stalled()["resent"] == resent


@pytest.mark.django_db
def test_cancel_stops_queued_scenarios_from_running(partner_a: Partner, sandbox: Any) -> None:
    run = _run(partner_a, _suite(SMOKE), sandbox.url)
    runs.run_cancel(run=run, by="test")
    claim = execution.scenario_execute(scenario_run_id=run.scenario_runs.first().pk, worker="w")
    assert claim.scenario_run is None and claim.retry_after == 0
    run.refresh_from_db()
    assert run.status == "cancelled" and not StepResult.objects.exists()


@pytest.mark.django_db
def test_due_schedule_starts_one_run_and_moves_to_the_next_date(
    partner_a: Partner, endpoint_a: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _suite(SMOKE)
    schedule = runs.schedule_save(
        partner=partner_a, suite_name="smoke", every_days=30, by="test",
        first_run_at=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    with django_capture_on_commit_callbacks() as callbacks:
        started = runs.recertifications_start_due()
        again = runs.recertifications_start_due()
    assert len(started) == 1 and again == []
    assert started[0].trigger == "schedule" and len(callbacks) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now() + timedelta(days=29)
    assert schedule.last_run == started[0]


# ----------------------------------------------------------------------------- crash test

CRASH_SCENARIOS = 50
CRASH_STEPS = 10
# With default settings (lease 8 s renewed every 2 s, every worker sweeping every 2 s, Redis's
# visibility timeout an hour), a run waits on a dead worker for about lease + sweep.
RECOVERY_BUDGET_S = 15


def _crash_suite() -> str:
    step = (
        "      - action: {type: httpRequest, method: GET, url: /health}\n"
        "        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]\n"
    )
    scenarios = "".join(
        f"  - name: scenario {i}\n    steps:\n" + step * CRASH_STEPS for i in range(CRASH_SCENARIOS)
    )
    return "name: crash\ntests:\n" + scenarios


def _redis_broker() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("progress", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("victim", ["pool process", "whole worker"])
def test_sigkilled_worker_loses_and_duplicates_no_step_result(
    partner_a: Partner, default_queue: str, progress: float, victim: str
) -> None:
    if not _redis_broker():
        if os.environ.get("CI"):
            pytest.fail("CI must run this test on the Redis broker (CELERY_BROKER_URL=redis://)")
        pytest.skip("needs CELERY_BROKER_URL=redis://…: redelivery is the broker's job")
    from demo.sandbox import SandboxServer

    with SandboxServer(delay_ms=15) as sandbox:
        run = _run(partner_a, _suite(_crash_suite(), "crash.yaml"), sandbox.url)
        total_steps = CRASH_SCENARIOS * CRASH_STEPS
        with celery_workers(2, queue=default_queue, pool="prefork", concurrency=2, beat=True) as (
            victim_worker,
            survivor,
            beat,
        ):
            ids = list(run.scenario_runs.values_list("pk", flat=True))
            runs._enqueue(ids)
            survivor.wait_for(
                lambda: Run.objects.get(pk=run.pk).scenarios_done >= CRASH_SCENARIOS * progress,
                timeout=60,
            )

            # Kill a process in the middle of a scenario: wait until the victim holds one.
            def held_by_victim() -> dict[int, int]:
                pool = set(victim_worker.pool_pids())
                held = {}
                for pk, holder in ScenarioRun.objects.filter(run=run, status="running").values_list(
                    "pk", "claimed_by"
                ):
                    pid = int(holder.rsplit(":", 1)[1]) if ":" in holder else 0
                    if pid in pool:
                        held[pk] = pid
                return held

            survivor.wait_for(lambda: bool(held_by_victim()), timeout=30)
            interrupted = held_by_victim()
            if victim == "pool process":
                for _attempt in range(5):
                    target = next(iter(interrupted.values()))
                    os.kill(target, signal.SIGKILL)
                    # What the process held when it died: its scenario may have finished
                    # between the look and the kill, and the kill then interrupted nothing.
                    interrupted = dict(
                        ScenarioRun.objects.filter(
                            run=run, status="running", claimed_by__endswith=f":{target}"
                        ).values_list("pk", "attempts")
                    )
                    if interrupted:
                        break
                    survivor.wait_for(lambda: bool(held_by_victim()), timeout=30)
                    interrupted = held_by_victim()
            else:
                pool = set(victim_worker.pool_pids())
                victim_worker.kill_all()
                # What the processes held when they died (the scenario seen a moment ago may
                # have finished before the kill, and a next one been claimed): their claims
                # stay until the lease runs out.
                interrupted = {
                    pk: pid
                    for pk, holder in ScenarioRun.objects.filter(
                        run=run, status="running"
                    ).values_list("pk", "claimed_by")
                    if (pid := int(holder.rsplit(":", 1)[1]) if ":" in holder else 0) in pool
                }
            killed_at = time.monotonic()
            budget = RECOVERY_BUDGET_S
            survivor.wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=budget + 30)
            recovered_in = time.monotonic() - killed_at
    run.refresh_from_db()
    steps = StepResult.objects.filter(scenario_run__run=run)
    keys = list(steps.values_list("scenario_run__index", "step_index", "iteration"))
    assert len(keys) == total_steps == len(set(keys)), "a step result is missing or duplicated"
    assert set(steps.values_list("status", flat=True)) == {"passed"}
    assert run.status == "passed", json.dumps(
        list(run.scenario_runs.values("index", "status", "attempts"))
    )
    assert recovered_in <= budget, f"run finished {recovered_in:.1f} s after the kill"
    retried = ScenarioRun.objects.filter(pk__in=list(interrupted), attempts__gte=2)
    assert retried.count() >= 1, "the killed process held no scenario that was then retried"
    print(
        f"\n{victim} killed at {progress:.0%}: run finished {recovered_in:.1f} s later "
        f"(budget {budget} s); interrupted scenarios {sorted(interrupted)} re-run"
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_fetching_a_task_and_claiming_it_delays_the_run_by_seconds(
    partner_a: Partner, default_queue: str, tmp_path: Path
) -> None:
    # The message stays unacknowledged in Redis for the visibility timeout (an hour): the sweep
    # of the surviving worker must send it again.
    if not _redis_broker():
        if os.environ.get("CI"):
            pytest.fail("CI must run this test on the Redis broker (CELERY_BROKER_URL=redis://)")
        pytest.skip("needs CELERY_BROKER_URL=redis://…: the lost message is Redis's")
    from demo.sandbox import SandboxServer

    marker = tmp_path / "die-before-claim"
    with SandboxServer(delay_ms=15) as sandbox:
        run = _run(partner_a, _suite(_crash_suite(), "crash.yaml"), sandbox.url)
        with (
            celery_workers(
                1, queue=default_queue, app="tests.die_before_claim",
                env={"CERTDASH_DIE_BEFORE_CLAIM": str(marker)},
            ) as (victim,),
            celery_workers(1, queue=default_queue, beat=True) as (survivor, _beat),
        ):  # fmt: skip
            runs._enqueue(list(run.scenario_runs.values_list("pk", flat=True)))
            survivor.wait_for(
                lambda: Run.objects.get(pk=run.pk).scenarios_done >= CRASH_SCENARIOS * 0.3,
                timeout=60,
            )
            marker.touch()
            victim.process.wait(timeout=30)
            killed_at = time.monotonic()
            lost = int(marker.read_text())
            survivor.wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=60)
            recovered_in = time.monotonic() - killed_at
    run.refresh_from_db()
    keys = list(
        StepResult.objects.filter(scenario_run__run=run).values_list(
            "scenario_run__index", "step_index", "iteration"
        )
    )
    assert len(keys) == CRASH_SCENARIOS * CRASH_STEPS == len(set(keys))
    assert run.status == "passed"
    # The dead worker never claimed it: the one claim is the survivor's.
    assert ScenarioRun.objects.get(pk=lost).attempts == 1
    assert recovered_in <= RECOVERY_BUDGET_S, f"run finished {recovered_in:.1f} s after the kill"
