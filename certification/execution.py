"""Executing scenarios: the run context, claims and leases, inline runs, the stalled sweep."""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from certification.engine import spec as engine_spec
from certification.engine.model import (
    EndpointConfig,
    RunContext,
    ScenarioOutcome,
    WebhookSigner,
    usable_cores,
)
from certification.engine.model import Suite as SuiteSpec
from certification.engine.runner import run_suite, uses_traffic
from certification.leases import Claim, LeaseKeeper, lease, scenario_claim
from certification.models import (
    Run,
    ScenarioRun,
    WorkerHeartbeat,
)
from certification.results import (
    run_fail,
    scenario_mark,
    scenario_outcome_save,
    scenario_outcomes_save,
)
from certification.runs import _enqueue
from certification.suites import suite_of
from partners import services as partner_services
from partners.crypto import SecretDecryptionError
from partners.models import Endpoint, Partner
from partners.urlguard import sandbox_policy


def _sla_context(partner: Partner) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for sla in partner.slas.all():
        if sla.kind in ("latency", "ack"):
            context[sla.name] = sla.threshold_ms
        elif sla.kind == "uptime":
            context[sla.name] = float(sla.uptime_percent)
        elif sla.kind == "replay":
            context[sla.name] = sla.retention_days
        else:
            context[sla.name] = f"{sla.window_start:%H:%M}"
    return context


_CONTEXTS: dict[tuple[int, object], tuple[float, RunContext]] = {}
_CONTEXT_TTL_S = 30.0


def run_context_cached(run: Run) -> RunContext:
    """``run_context`` kept for a few seconds per run in this process: a worker executing many
    scenarios of one run builds it (queries, decryption) once. Memory only, never stored."""
    now = time.monotonic()
    for key in [k for k, (at, _) in _CONTEXTS.items() if now - at > _CONTEXT_TTL_S]:
        del _CONTEXTS[key]
    key = (run.pk, run.created_at)  # SQLite may give a deleted run's id to the next one
    if key not in _CONTEXTS:
        _CONTEXTS[key] = (now, run_context(run))
    return _CONTEXTS[key][1]


def run_context(run: Run) -> RunContext:
    """Everything the engine needs, secrets decrypted. Never store or log the result."""
    partner = run.partner
    stored = {str(e.pk): e for e in Endpoint.objects.filter(partner=partner)}
    endpoints: dict[str, EndpointConfig] = {}
    secrets: dict[str, str] = {}
    for name, snap in run.endpoints.items():
        row = stored.get(snap.get("endpoint_id", ""))
        endpoint_secrets = partner_services.endpoint_secrets(row) if row else {}
        endpoints[name] = EndpointConfig(
            name=name,
            base_url=snap["base_url"],
            auth_kind=snap.get("auth_kind", "none"),
            auth_config=dict(snap.get("auth_config", {})),
            secrets=endpoint_secrets,
            kind=snap.get("kind", "http"),
            writable=bool(snap.get("writable", False)),
        )
        for key, value in endpoint_secrets.items():
            secrets[f"{name}.{key}"] = value
    from partners import crypto
    from partners.models import RetryPolicy

    signers: dict[str, WebhookSigner] = {}
    for row in partner.webhook_secrets.all():
        if not row.secret_sealed:
            continue
        value = crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad)["secret"]
        signers[row.name] = WebhookSigner(row.name, row.profile, value, row.window_s)
        secrets[f"webhook.{row.name}"] = value
    if len(signers) == 1:
        secrets["webhook"] = next(iter(signers.values())).secret
    retry_rules = {
        p.flow: (p.max_attempts, p.backoff_ms_cap, p.jitter) for p in RetryPolicy.objects.all()
    }
    context = RunContext(
        endpoints=endpoints,
        default_endpoint=run.default_endpoint or None,
        partner={"id": partner.external_id, "name": partner.name},
        sla=_sla_context(partner),
        secrets=secrets,
        run_id=str(run.pk),
        body_capture_bytes=settings.RESULT_BODY_CAPTURE_BYTES,
        max_body_bytes=settings.RESPONSE_MAX_BYTES,
        withheld=[name for name, snap in run.endpoints.items() if snap.get("auth_dropped")],
        request_timeout_ms=settings.REQUEST_TIMEOUT_MS,
        probe_cpu_limit_percent=settings.PROBE_CLIENT_CPU_LIMIT_PERCENT,
        probe_max_processes=settings.PROBE_MAX_PROCESSES or usable_cores(),
        webhooks=signers,
        retry_rules=retry_rules,
    )
    from certification.traffic import attach_recorder

    attach_recorder(context, run)
    attach_control_numbers(context, partner.pk)
    context.as2_url = partner.as2_url
    return context


def attach_control_numbers(context: RunContext, partner_pk: int) -> None:
    """Give the engine the partner's X12 control-number counters and file sequences (taken on
    a worker thread: the engine's event loop must not block on the database)."""
    from certification.off_loop import off_the_loop
    from partners import control_numbers

    def take(sets: int) -> tuple[int, int, int]:
        taken = control_numbers.for_interchange(partner_pk, sets)
        return taken.interchange, taken.group, taken.first_set

    context.control_numbers = off_the_loop(take)
    context.file_sequence = off_the_loop(
        lambda flow: control_numbers.next_file_sequence(partner_pk, flow)
    )


_T = TypeVar("_T")
_loops = threading.local()


def _engine_run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` with the event loop kept for the next task of this thread: a worker
    runs one scenario per task, and a new loop each time (with its default executor's threads
    started and joined) was a third of the engine's time for a short scenario. What a scenario
    leaves running on the loop is cancelled before the next one starts."""
    runner: asyncio.Runner | None = getattr(_loops, "runner", None)
    if runner is None:
        runner = _loops.runner = asyncio.Runner()
    try:
        return runner.run(coroutine)
    finally:
        loop = runner.get_loop()
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            runner.run(_settle(leftover))


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _engine_batches(
    suite: SuiteSpec, context: RunContext, indexes: Sequence[int], parallel: int
) -> Iterator[list[tuple[int, ScenarioOutcome]]]:
    """Run the engine on its own thread and yield here the outcomes that have finished, in
    batches of whatever arrived while the caller saved the previous batch. The caller persists
    them on its own thread and database connection."""
    results: queue.Queue[tuple[int, ScenarioOutcome] | BaseException | None] = queue.Queue()

    def work() -> None:
        try:
            asyncio.run(
                run_suite(
                    suite,
                    context,
                    policy=sandbox_policy(),
                    scenarios=indexes,
                    parallel=parallel,
                    on_scenario=lambda i, o: results.put((i, o)),
                )
            )
            results.put(None)
        except BaseException as exc:  # handed to the caller's thread
            results.put(exc)

    thread = threading.Thread(target=work, name="engine", daemon=True)
    thread.start()
    done = False
    while not done:
        batch: list[tuple[int, ScenarioOutcome]] = []
        item = results.get()
        while True:
            if item is None:
                done = True
                break
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if len(batch) >= 100:
                break
            try:
                item = results.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
    thread.join()


def run_execute_inline(
    *,
    run: Run,
    parallel: int = 1,
    progress: Callable[[ScenarioRun, ScenarioOutcome], None] | None = None,
) -> Run:
    """Run every queued scenario of ``run`` in this process, persisting each as it finishes."""
    try:
        suite = suite_of(run.suite)
    except engine_spec.SuiteInvalid as exc:
        run_fail(run=run, message=f"suite no longer parses: {exc}")
        run.refresh_from_db()
        return run
    try:
        context = run_context(run)
    except SecretDecryptionError as exc:
        run_fail(run=run, message=f"cannot read the endpoint secrets: {exc}")
        run.refresh_from_db()
        return run
    pending = {
        sr.index: sr
        for sr in run.scenario_runs.select_related("scenario").filter(
            status=ScenarioRun.Status.QUEUED
        )
    }
    now = timezone.now()
    worker = f"inline@{socket.gethostname()}:{os.getpid()}"
    run.scenario_runs.filter(pk__in=[sr.pk for sr in pending.values()]).update(
        status=ScenarioRun.Status.RUNNING, claimed_by=worker, claimed_at=now, started_at=now,
        attempts=F("attempts") + 1,
    )  # fmt: skip
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    with LeaseKeeper([sr.pk for sr in pending.values()], worker):
        for batch in _engine_batches(suite, context, sorted(pending), parallel):
            scenario_outcomes_save(items=[(pending[i], outcome) for i, outcome in batch])
            if progress is not None:
                for index, outcome in batch:
                    progress(pending[index], outcome)
    run.refresh_from_db()
    return run


def heartbeat_record(*, hostname: str, nonce: str) -> WorkerHeartbeat:
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now(), "nonce": nonce}
    )
    return beat


def _give_up(scenario_run: ScenarioRun, *, attempts: int) -> bool:
    """End a scenario whose worker kept dying, so that its run still finishes."""
    return scenario_mark(
        scenario_run=scenario_run,
        status=ScenarioRun.Status.ERROR,
        message=f"scenario {scenario_run.index} given up after {attempts} attempts: "
        "the worker running it stopped each time",
    )


@contextmanager
def _traffic_turn(run: Run, needed: bool) -> Iterator[None]:
    """Scenarios of one run that check captured traffic take turns across workers too (a
    PostgreSQL advisory lock on the run): traffic is attributed to a step by time."""
    if not needed or connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_TRAFFIC_LOCK, run.pk])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_TRAFFIC_LOCK, run.pk])


_TRAFFIC_LOCK = 0x7472  # "tr": the advisory-lock namespace of traffic turns


def scenario_execute(*, scenario_run_id: int, worker: str) -> Claim:
    """Run one scenario of a run (the body of the Celery task).

    Safe to call again for the same scenario: a finished one is not claimed, one held by a live
    worker answers ``retry_after``, and results are written exactly once.
    """
    claim = scenario_claim(scenario_run_id=scenario_run_id, worker=worker)
    scenario_run = claim.scenario_run
    if scenario_run is None:
        return claim
    if scenario_run.attempts > settings.SCENARIO_MAX_ATTEMPTS:
        _give_up(scenario_run, attempts=settings.SCENARIO_MAX_ATTEMPTS)
        return claim
    run = scenario_run.run
    try:
        suite = suite_of(run.suite)
    except engine_spec.SuiteInvalid as exc:
        scenario_mark(
            scenario_run=scenario_run,
            status=ScenarioRun.Status.ERROR,
            message=f"suite no longer parses: {exc}",
        )
        return claim
    try:
        context = run_context_cached(run)
    except SecretDecryptionError as exc:
        # Not a crash to retry: every attempt would fail the same way until the key is back.
        scenario_mark(
            scenario_run=scenario_run,
            status=ScenarioRun.Status.ERROR,
            message=f"cannot read the endpoint secrets: {exc}",
        )
        return claim
    with (
        LeaseKeeper([scenario_run.pk], worker),
        _traffic_turn(run, uses_traffic(suite.scenarios[scenario_run.index])),
    ):
        (outcome,) = _engine_run(
            run_suite(suite, context, policy=sandbox_policy(), scenarios=[scenario_run.index])
        )
    scenario_outcome_save(scenario_run=scenario_run, outcome=outcome)
    return claim


def scenarios_requeue_stalled() -> dict[str, int]:
    """The periodic sweep: queue again the scenarios whose worker died (lease ran out) and the
    queued ones whose message seems lost; give up on those that used all their attempts.
    Each change is a conditional update, so sweeps on several machines do not collide."""
    now = timezone.now()
    counts = {"requeued": 0, "resent": 0, "given_up": 0}
    stalled = ScenarioRun.objects.filter(
        status=ScenarioRun.Status.RUNNING, claimed_at__lt=now - lease()
    ).select_related("scenario")
    for scenario_run in stalled:
        if scenario_run.attempts >= settings.SCENARIO_MAX_ATTEMPTS:
            if _give_up(scenario_run, attempts=scenario_run.attempts):
                counts["given_up"] += 1
            continue
        moved = ScenarioRun.objects.filter(
            pk=scenario_run.pk,
            status=ScenarioRun.Status.RUNNING,
            claimed_at=scenario_run.claimed_at,
        ).update(status=ScenarioRun.Status.QUEUED, queued_at=now, claimed_by="")
        if moved:
            counts["requeued"] += 1
            transaction.on_commit(partial(_enqueue, [scenario_run.pk]))
    # A queued scenario's message may be held by a worker that died after fetching it and
    # before claiming it: the broker keeps it unacknowledged until its visibility timeout (an
    # hour). A live worker claims what it fetched within milliseconds (it prefetches no more
    # than it runs), so a scenario queued for a lease while the broker's queue holds no message
    # has lost its message, and is sent again; a duplicate delivery is refused by the claim.
    # While messages wait, a long queue is normal: only QUEUED_RESEND_SECONDS resends. When the
    # broker cannot count its messages, "nothing runs anywhere" stands in for an empty queue.
    waiting = ScenarioRun.objects.filter(
        status=ScenarioRun.Status.QUEUED, queued_at__lt=now - lease()
    )
    if waiting.exists():
        from certification.sweeper import broker_backlog

        backlog = broker_backlog()
        if backlog is None:
            idle = not ScenarioRun.objects.filter(status=ScenarioRun.Status.RUNNING).exists()
        else:
            idle = backlog == 0
        if not idle:
            waiting = waiting.filter(
                queued_at__lt=now - timedelta(seconds=settings.QUEUED_RESEND_SECONDS)
            )
        for pk, queued_at in waiting.values_list("pk", "queued_at"):
            if ScenarioRun.objects.filter(pk=pk, queued_at=queued_at).update(queued_at=now):
                counts["resent"] += 1
                transaction.on_commit(partial(_enqueue, [pk]))
    return counts
