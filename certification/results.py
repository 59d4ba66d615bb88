"""Persisting results exactly once and finishing runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from certification.engine.model import ScenarioOutcome
from certification.models import (
    Run,
    ScenarioRun,
    StepResult,
)
from certification.standing import latest_run_record
from certification.verdicts import failing_reasons
from certification.verdicts import run_evaluate as verdicts_of
from evidence.audit import audit_record

logger = logging.getLogger(__name__)


class _OutcomeEncoder(DjangoJSONEncoder):
    """JSON of the engine's outcome records: dataclasses as objects of their fields, converted
    as the C encoder meets them (no deep copy of the outcome first)."""

    def default(self, o: Any) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return {f.name: getattr(o, f.name) for f in fields(o)}
        return super().default(o)


_dumps = _OutcomeEncoder(separators=(", ", ": ")).encode


_COLUMNS = (
    "scenario_run_id", "step_index", "iteration", "name", "status", "started_at", "duration_ms",
    "request", "response", "timings", "assertions", "failure", "extracted", "data", "latency",
    "notes", "traffic",
)  # fmt: skip
_FIRST_JSON = _COLUMNS.index("request")


def _json(value: Any) -> str | None:
    # None stays SQL NULL, as the ORM stores it, so `isnull` lookups keep working.
    return None if value is None else _dumps(value)


def _step_values(items: Sequence[tuple[ScenarioRun, ScenarioOutcome]]) -> list[tuple[Any, ...]]:
    """The step result rows of ``items``, as the database takes them: no model instance is built
    (the ORM's per-row field preparation was most of the time it took to save an outcome)."""
    adapt = connection.ops.adapt_datetimefield_value
    return [
        (
            scenario_run.pk, step.index, step.iteration, step.name[:300], step.status,
            adapt(datetime.fromisoformat(step.started_at)) if step.started_at else None,
            step.duration_ms,
            _json(step.request), _json(step.response), _json(step.timings),
            _json(step.assertions), _json(step.failure), _json(step.extracted),
            _json(step.data), _json(step.latency), _json(step.notes), _json(step.traffic),
        )
        for scenario_run, outcome in items
        for step in outcome.steps
    ]  # fmt: skip


def _insert_or_ignore(items: Sequence[tuple[ScenarioRun, ScenarioOutcome]]) -> None:
    """Insert step results, skipping any already there (unique run/scenario/step/iteration).

    One pipelined ``executemany`` of ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL and on
    SQLite. (PostgreSQL ``COPY`` was measured and does not win here: into the table it saves
    about 2 ms per 400 rows but cannot skip conflicts, and through a temporary table with an
    ``INSERT … SELECT … ON CONFLICT`` it costs as much as this; see docs/architecture.md.)
    """
    values = _step_values(items)
    if not values:
        return
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), values)


def _insert_sql() -> str:
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    placeholders = ", ".join(
        f"%s{cast}" if i >= _FIRST_JSON else "%s" for i in range(len(_COLUMNS))
    )
    return (
        f"INSERT INTO {StepResult._meta.db_table} ({', '.join(_COLUMNS)}) "
        f"VALUES ({placeholders}) "
        "ON CONFLICT (scenario_run_id, step_index, iteration) DO NOTHING"
    )


def _finish(finishing: list[tuple[ScenarioRun, ScenarioOutcome]], *, now: Any) -> None:
    """Give locked, still open scenario runs their final status and duration: one pipelined
    statement per row (much cheaper than an ORM ``CASE`` over the batch, on both databases)."""
    table = ScenarioRun._meta.db_table
    finished_at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET status = %s, duration_ms = %s, finished_at = %s WHERE id = %s",
            [(o.status, o.duration_ms, finished_at, sr.pk) for sr, o in finishing],
        )


def scenario_outcomes_save(*, items: Sequence[tuple[ScenarioRun, ScenarioOutcome]]) -> int:
    """Persist scenarios' results exactly once; returns how many scenarios this call finished.

    Step rows are inserted with insert-or-ignore under their unique key, and each scenario is
    moved to its final status only if it is still queued or running (checked under a row
    lock), so saving the same outcome twice (a redelivered task) writes nothing the second time.
    The call that finishes the last scenario of a run also finalizes the run.
    """
    if not items:
        return 0
    with transaction.atomic():
        _insert_or_ignore(items)
        open_ids = set(
            ScenarioRun.objects.select_for_update()
            .filter(
                pk__in=[sr.pk for sr, _ in items],
                status__in=[ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING],
            )
            .values_list("pk", flat=True)
        )
        finishing = [(sr, o) for sr, o in items if sr.pk in open_ids]
        if not finishing:
            return 0
        _finish(finishing, now=timezone.now())
        per_run: dict[int, int] = {}
        for scenario_run, _ in finishing:
            per_run[scenario_run.run_id] = per_run.get(scenario_run.run_id, 0) + 1
        for run_id, count in per_run.items():
            _count_finished(run_id, count)
    return len(finishing)


def scenario_outcome_save(*, scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> bool:
    """Persist one scenario's results exactly once; True if this call finished the scenario.

    The one-scenario form of ``scenario_outcomes_save`` (what each task does): the conditional
    update itself decides who finishes the scenario, with no separate locking read.
    """
    if connection.vendor == "postgresql":
        return _save_one_postgresql(scenario_run, outcome)
    return scenario_outcomes_save(items=[(scenario_run, outcome)]) == 1


def _save_one_postgresql(scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> bool:
    """``scenario_outcome_save`` on PostgreSQL in one round trip (psycopg's pipeline): the step
    rows, then one statement that finishes the scenario if still open and counts it on its run.

    The transaction commits without waiting for its WAL flush (``synchronous_commit`` off for
    it alone): should PostgreSQL crash in the next moments, the whole transaction is lost, never
    part of it, and the scenario, still running under a lease nobody renews, is run again."""
    finish = (
        f"WITH finished AS (UPDATE {ScenarioRun._meta.db_table} "
        "SET status = %s, duration_ms = %s, finished_at = %s "
        "WHERE id = %s AND status IN (%s, %s) RETURNING run_id) "
        f"UPDATE {Run._meta.db_table} AS run SET scenarios_done = run.scenarios_done + 1 "
        "FROM finished WHERE run.id = finished.run_id "
        "RETURNING run.scenarios_done, run.scenarios_total"
    )
    values = _step_values([(scenario_run, outcome)])
    with transaction.atomic():
        connection.ensure_connection()
        with connection.cursor() as cursor, connection.connection.pipeline():
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            if values:
                cursor.executemany(_insert_sql(), values)
            cursor.execute(
                finish,
                [
                    outcome.status, outcome.duration_ms, timezone.now(), scenario_run.pk,
                    ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING,
                ],
            )  # fmt: skip
            counted = cursor.fetchone()
        if counted is None:
            return False  # finished or cancelled before: a redelivery, nothing more to do
        done, total = counted
        if done >= total:
            _finish_run(scenario_run.run_id)
    return True


def _count_finished(run_id: int, count: int) -> None:
    """Count scenarios of a run as finished (called in the transaction that finished them,
    so the run still has open scenarios and cannot be locked); the call that counts the last
    one finalizes the run. The update takes the run's row lock until the commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET scenarios_done = scenarios_done + %s WHERE id = %s "
            "RETURNING scenarios_done, scenarios_total",
            [count, run_id],
        )
        done, total = cursor.fetchone()
    if done >= total:
        _finish_run(run_id)


def _finish_run(run_id: int) -> None:
    """Finalize a run whose last scenario this transaction counted (it holds the run's row
    lock since the counting update)."""
    run = Run.objects.get(pk=run_id)
    if not run.is_finished:
        run_finalize(run=run)
    elif run.status == Run.Status.CANCELLED:
        # The scenarios that were already running when the run was cancelled are done now.
        Run.objects.filter(pk=run_id).update(finished_at=timezone.now())


def scenario_mark(*, scenario_run: ScenarioRun, status: str, message: str) -> bool:
    """Finish a scenario without results (cancelled, or given up after repeated crashes)."""
    outcome = ScenarioOutcome(
        name=scenario_run.scenario.name,
        code=scenario_run.scenario.code,
        kind=scenario_run.scenario.kind,
        status=status,  # type: ignore[arg-type]
        steps=[],
    )
    saved = scenario_outcome_save(scenario_run=scenario_run, outcome=outcome)
    if saved and message:
        Run.objects.filter(pk=scenario_run.run_id, error="").update(error=message[:2000])
    return saved


def run_finalize(*, run: Run) -> Run:
    """Verdict, merged latency histograms and SLA verdicts. Call inside a transaction holding
    the run's row lock."""
    counts: dict[str, int] = {}
    for value in run.scenario_runs.values_list("status", flat=True):
        counts[value] = counts.get(value, 0) + 1
    statuses = set(counts)
    S = ScenarioRun.Status
    reasons = []
    try:
        latency, verdicts = verdicts_of(run)
    except Exception as exc:
        # A defect in the verdict code must not leave the run running forever: it ends in
        # error, with the reason, and the scenarios' own results stay as they are.
        logger.exception("SLA verdicts of run %s could not be computed", run.pk)
        latency, verdicts = {}, []
        run.error = f"SLA verdicts could not be computed ({type(exc).__name__}); see the logs"
        statuses_error = True
    else:
        statuses_error = False
    for value, label in (
        (S.ERROR, "errored"),
        (S.FAILED, "failed"),
        (S.UNEVALUATED, "had checks that were not evaluated"),
    ):
        if counts.get(value):
            reasons.append(f"{counts[value]} scenario{'s' if counts[value] > 1 else ''} {label}")
    reasons += failing_reasons(verdicts)
    if run.status == Run.Status.CANCELLED or statuses == {S.CANCELLED}:
        status = Run.Status.CANCELLED
    elif S.ERROR in statuses or statuses_error:
        status = Run.Status.ERROR
    elif statuses <= {S.PASSED} and not reasons:
        status = Run.Status.PASSED
    else:
        # Failed scenarios, unevaluated checks, or an SLA missed or without enough samples.
        status = Run.Status.FAILED
    run.status = status
    run.latency = latency
    run.sla_verdicts = verdicts
    run.reasons = reasons
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "latency", "sla_verdicts", "reasons", "error", "finished_at"])
    latest_run_record(run)
    audit_record(
        actor="system",
        action="run.finish",
        partner=run.partner,
        target=f"run {run.pk}",
        data={
            "status": status,
            "reasons": reasons,
            "sla": [
                {k: v[k] for k in ("sla", "endpoint", "measured", "samples", "verdict")}
                for v in verdicts
            ],
        },
    )
    return run


def run_fail(*, run: Run, message: str) -> None:
    """An error that prevented the run (e.g. its suite no longer parses)."""
    with transaction.atomic():
        ScenarioRun.objects.filter(
            run=run, status__in=[ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING]
        ).update(status=ScenarioRun.Status.ERROR, finished_at=timezone.now())
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.ERROR, error=message[:2000], finished_at=timezone.now()
        )
        latest_run_record(Run.objects.select_related("suite").get(pk=run.pk))
