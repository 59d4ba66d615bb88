"""Writes for suites and runs: storing suite versions, creating runs, persisting results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, FloatField, Q, Value, When
from django.utils import timezone

from certification.engine import spec as engine_spec
from certification.engine.histogram import Histogram
from certification.engine.model import EndpointConfig, RunContext, ScenarioOutcome
from certification.engine.model import Suite as SuiteSpec
from certification.engine.runner import run_suite
from certification.models import (
    RecertificationSchedule,
    Run,
    Scenario,
    ScenarioRun,
    StepResult,
    Suite,
    WorkerHeartbeat,
)
from evidence.audit import audit_record
from partners import services as partner_services
from partners.models import Endpoint, Partner
from partners.urlguard import check_sandbox_url, sandbox_policy

# ----------------------------------------------------------------------------- suites


class SuiteSourceError(Exception):
    """A suite file could not be read (the message names the file)."""


def suite_sources_from_file(path: Path) -> tuple[str, dict[str, str]]:
    """Read a suite file and every file it ``$ref``s, keyed by path relative to its folder."""
    root = path.parent
    entry = path.name
    sources: dict[str, str] = {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteSourceError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > engine_spec.MAX_SUITE_BYTES:
        raise SuiteSourceError(f"{path}: larger than {engine_spec.MAX_SUITE_BYTES} bytes")
    sources[entry] = raw.decode("utf-8", errors="replace")

    def loader(ref: str) -> str:
        relative = PurePosixPath(ref)
        if relative.is_absolute():
            raise OSError(f"absolute path {ref}")
        text = (root / relative).read_bytes().decode("utf-8", errors="replace")
        sources[str(relative)] = text
        return text

    # Parsing collects the $ref'd files. A valid result is kept for the caller's own parse of
    # the same sources; errors surface (and are reported) again when the caller parses them.
    with contextlib.suppress(engine_spec.SuiteInvalid):
        parsed = engine_spec.parse_suite(sources[entry], filename=entry, loader=loader)
        _remember((entry, engine_spec.suite_fingerprint(sources)), parsed)
    return entry, sources


_PARSED: dict[tuple[str, str], SuiteSpec] = {}
_PARSED_KEEP = 16


def suite_parse(*, entry: str, sources: dict[str, str]) -> SuiteSpec:
    """Parse stored sources; raises ``SuiteInvalid`` with every error.

    Parsing is pure, so the result is kept per content hash: a worker running many scenarios of
    one suite version parses it once. Callers must not mutate the returned suite.
    """
    key = (entry, engine_spec.suite_fingerprint(sources))
    if key in _PARSED:
        return _PARSED[key]

    def loader(ref: str) -> str:
        if ref not in sources:
            raise FileNotFoundError(ref)
        return sources[ref]

    parsed = engine_spec.parse_suite(sources[entry], filename=entry, loader=loader)
    _remember(key, parsed)
    return parsed


def suite_of(suite: Suite) -> SuiteSpec:
    """The parsed form of a stored suite version, parsed once per process (stored versions
    never change); the sources are only loaded from the database on the first call."""
    key = (f"suite:{suite.pk}", suite.content_hash)
    if key not in _PARSED:
        parsed = suite_parse(entry=suite.entry, sources=suite.sources)
        _remember(key, parsed)
    return _PARSED[key]


def _remember(key: tuple[str, str], parsed: SuiteSpec) -> None:
    if len(_PARSED) >= _PARSED_KEEP:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = parsed


def _parsed_summary(parsed: SuiteSpec) -> dict[str, Any]:
    return {
        "name": parsed.name,
        "version": parsed.version,
        "description": parsed.description,
        "scenarios": [
            {"name": s.name, "code": s.code, "kind": s.kind, "steps": [st.name for st in s.steps]}
            for s in parsed.scenarios
        ],
        "mocks": [m.name for m in parsed.mocks],
    }


def suite_store(*, entry: str, sources: dict[str, str], by: Any) -> tuple[Suite, bool]:
    """Validate and store a suite version. Loading identical content again returns the stored
    version (``created`` False); changed content becomes the next version of that name."""
    parsed = suite_parse(entry=entry, sources=sources)
    content_hash = engine_spec.suite_fingerprint(sources)
    for _ in range(3):
        existing = Suite.objects.filter(name=parsed.name, content_hash=content_hash).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                latest = Suite.objects.filter(name=parsed.name).order_by("-version").first()
                suite = Suite.objects.create(
                    name=parsed.name,
                    version=(latest.version + 1) if latest else 1,
                    description=parsed.description,
                    entry=entry,
                    sources=sources,
                    parsed=_parsed_summary(parsed),
                    content_hash=content_hash,
                    warnings=parsed.warnings,
                    created_by=by if getattr(by, "is_authenticated", False) else None,
                )
                Scenario.objects.bulk_create(
                    Scenario(
                        suite=suite,
                        index=i,
                        name=s.name,
                        code=s.code,
                        kind=s.kind,
                        step_count=len(s.steps),
                    )
                    for i, s in enumerate(parsed.scenarios)
                )
                audit_record(
                    actor=by,
                    action="suite.store",
                    target=str(suite),
                    data={"hash": content_hash, "scenarios": len(parsed.scenarios)},
                )
            return suite, True
        except IntegrityError:
            continue  # another process stored a version at the same moment; look again
    raise RuntimeError(f"could not store suite {parsed.name!r}: concurrent versions")


# ----------------------------------------------------------------------------- runs


class RunInputError(ValueError):
    """Bad input to a run (an endpoint override, a missing endpoint); nothing was created."""


def _snapshot(partner: Partner, overrides: dict[str, str]) -> tuple[dict[str, Any], str]:
    endpoints: dict[str, Any] = {}
    default = ""
    for endpoint in Endpoint.objects.filter(partner=partner):
        endpoints[endpoint.name] = {
            "base_url": endpoint.base_url,
            "kind": endpoint.kind,
            "auth_kind": endpoint.auth_kind,
            "auth_config": endpoint.auth_config,
            "writable": endpoint.writable,
            "endpoint_id": str(endpoint.pk),
            "source": "partner",
        }
        if endpoint.is_default:
            default = endpoint.name
    for name, url in overrides.items():
        kind = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "http"
        try:
            check_sandbox_url(url, kind=kind)
        except Exception as exc:
            messages = getattr(exc, "messages", [str(exc)])
            raise RunInputError(f"--endpoint {name}={url}: {' '.join(messages)}") from None
        base = endpoints.get(name, {"auth_kind": "none", "auth_config": {}, "writable": False})
        endpoints[name] = {**base, "base_url": url, "kind": kind, "source": "override"}
    if not default and overrides:
        default = next(iter(overrides))
    return endpoints, default


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


@transaction.atomic
def run_create(
    *,
    partner: Partner,
    suite: Suite,
    by: Any,
    endpoint_overrides: dict[str, str] | None = None,
    trigger: str = "manual",
) -> Run:
    """Create a queued run with one queued scenario run per scenario of the suite."""
    endpoints, default = _snapshot(partner, endpoint_overrides or {})
    scenarios = list(suite.scenarios.order_by("index"))
    run = Run.objects.create(
        partner=partner,
        suite=suite,
        endpoints=endpoints,
        default_endpoint=default,
        trigger=trigger,
        scenarios_total=len(scenarios),
        created_by=by if getattr(by, "is_authenticated", False) else None,
    )
    ScenarioRun.objects.bulk_create(
        ScenarioRun(run=run, scenario=s, index=s.index) for s in scenarios
    )
    audit_record(
        actor=by,
        action="run.create",
        partner=partner,
        target=f"run {run.pk}",
        data={
            "suite": str(suite),
            "endpoints": {n: e["base_url"] for n, e in endpoints.items()},
            "trigger": trigger,
        },
    )
    return run


_CONTEXTS: dict[int, tuple[float, RunContext]] = {}
_CONTEXT_TTL_S = 30.0


def run_context_cached(run: Run) -> RunContext:
    """``run_context`` kept for a few seconds per run in this process: a worker executing many
    scenarios of one run builds it (queries, decryption) once. Memory only, never stored."""
    now = time.monotonic()
    for key in [k for k, (at, _) in _CONTEXTS.items() if now - at > _CONTEXT_TTL_S]:
        del _CONTEXTS[key]
    if run.pk not in _CONTEXTS:
        _CONTEXTS[run.pk] = (now, run_context(run))
    return _CONTEXTS[run.pk][1]


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
    webhook = [w for w in partner.webhook_secrets.all() if w.secret_sealed]
    if len(webhook) == 1:
        from partners import crypto

        secrets["webhook"] = crypto.open_secrets(
            webhook[0].secret_sealed, aad=webhook[0].secrets_aad
        )["secret"]
    return RunContext(
        endpoints=endpoints,
        default_endpoint=run.default_endpoint or None,
        partner={"id": partner.external_id, "name": partner.name},
        sla=_sla_context(partner),
        secrets=secrets,
        run_id=str(run.pk),
        body_capture_bytes=settings.RESULT_BODY_CAPTURE_BYTES,
        max_body_bytes=settings.RESPONSE_MAX_BYTES,
        request_timeout_ms=settings.REQUEST_TIMEOUT_MS,
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.SCENARIO_LEASE_SECONDS)


@dataclass(frozen=True)
class Claim:
    scenario_run: ScenarioRun | None
    retry_after: float = 0.0  # > 0: another worker holds a live lease; try again then


def scenario_claim(*, scenario_run_id: int, worker: str) -> Claim:
    """Take a scenario run for execution with a conditional update.

    Claimable: queued, or running under a lease that ran out (its worker died). Two workers
    handed the same task cannot both win: the loser's update touches 0 rows. A finished or
    cancelled scenario is never claimed again.
    """
    now = timezone.now()
    claimable = Q(status=ScenarioRun.Status.QUEUED) | Q(
        status=ScenarioRun.Status.RUNNING, claimed_at__lt=now - _lease()
    )
    claimed = ScenarioRun.objects.filter(claimable, pk=scenario_run_id).update(
        status=ScenarioRun.Status.RUNNING,
        claimed_by=worker,
        claimed_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        current = ScenarioRun.objects.filter(pk=scenario_run_id).values("status", "claimed_at")
        row = current.first()
        if row and row["status"] == ScenarioRun.Status.RUNNING and row["claimed_at"]:
            left = (row["claimed_at"] + _lease() - now).total_seconds()
            return Claim(None, retry_after=max(left, 0.0) + 1.0)
        return Claim(None)
    scenario_run = (
        ScenarioRun.objects.select_related("run", "run__partner", "run__suite", "scenario")
        .defer("run__suite__sources", "run__suite__parsed")
        .get(pk=scenario_run_id)
    )
    if scenario_run.run.status == Run.Status.QUEUED:
        Run.objects.filter(pk=scenario_run.run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started_at=now
        )
    return Claim(scenario_run)


class LeaseKeeper:
    """Renews the lease of scenario runs being executed, from a thread of its own, so that a
    long scenario (latency probes, polling, waits) is not taken for a dead one."""

    def __init__(self, scenario_run_ids: Sequence[int], worker: str) -> None:
        self.ids = list(scenario_run_ids)
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)

    def _renew(self) -> None:
        from django.db import connection

        interval = max(settings.SCENARIO_LEASE_SECONDS / 5, 0.2)
        try:
            while not self._stop.wait(interval):
                ScenarioRun.objects.filter(
                    pk__in=self.ids, status=ScenarioRun.Status.RUNNING, claimed_by=self.worker
                ).update(claimed_at=timezone.now())
        finally:
            connection.close()

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copies (the outcome is not used afterwards)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _step_rows(scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> list[StepResult]:
    return [
        StepResult(
            scenario_run=scenario_run,
            step_index=step.index,
            iteration=step.iteration,
            name=step.name[:300],
            status=step.status,
            request=_plain(step.request),
            response=_plain(step.response),
            timings=_plain(step.timings),
            assertions=_plain(step.assertions),
            failure=_plain(step.failure),
            extracted=step.extracted,
            data=step.data,
            latency=_plain(step.latency),
            notes=step.notes,
            started_at=step.started_at or None,
            duration_ms=step.duration_ms,
        )
        for step in outcome.steps
    ]


_JSON_COLUMNS = (
    "request", "response", "timings", "assertions", "failure", "extracted", "data", "latency",
    "notes",
)  # fmt: skip


def _jsonb(value: Any) -> str | None:
    # None stays SQL NULL, as the ORM stores it, so `isnull` lookups keep working.
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


def _insert_or_ignore(rows: list[StepResult]) -> None:
    """Insert step results, skipping any already there (unique run/scenario/step/iteration).

    On PostgreSQL this is one pipelined ``executemany`` with ``ON CONFLICT DO NOTHING``: the ORM's
    bulk insert there goes through arrays of JSON text escaped in Python, several times slower
    for results carrying request and response bodies.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        StepResult.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        return
    columns = ["scenario_run_id", "step_index", "iteration", "name", "status", "started_at",
               "duration_ms", *_JSON_COLUMNS]  # fmt: skip
    placeholders = ", ".join("%s::jsonb" if c in _JSON_COLUMNS else "%s" for c in columns)
    sql = (
        f"INSERT INTO {StepResult._meta.db_table} ({', '.join(columns)}) VALUES ({placeholders}) "
        "ON CONFLICT (scenario_run_id, step_index, iteration) DO NOTHING"
    )
    values = [
        (
            row.scenario_run_id, row.step_index, row.iteration, row.name, row.status,
            row.started_at, row.duration_ms,
            *(_jsonb(getattr(row, c)) for c in _JSON_COLUMNS),
        )
        for row in rows
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _finish(finishing: list[tuple[ScenarioRun, ScenarioOutcome]], *, now: Any) -> None:
    """Give locked, still open scenario runs their final status and duration."""
    if connection.vendor == "postgresql":
        # One pipelined statement per row is much cheaper there than a CASE over the batch.
        table = ScenarioRun._meta.db_table
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET status = %s, duration_ms = %s, finished_at = %s WHERE id = %s",
                [(o.status, o.duration_ms, now, sr.pk) for sr, o in finishing],
            )
        return
    ScenarioRun.objects.filter(pk__in=[sr.pk for sr, _ in finishing]).update(
        status=Case(*(When(pk=sr.pk, then=Value(o.status)) for sr, o in finishing)),
        duration_ms=Case(
            *(When(pk=sr.pk, then=Value(o.duration_ms)) for sr, o in finishing),
            output_field=FloatField(),
        ),
        finished_at=now,
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
        rows = [row for scenario_run, outcome in items for row in _step_rows(scenario_run, outcome)]
        _insert_or_ignore(rows)
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
    with transaction.atomic():
        _insert_or_ignore(_step_rows(scenario_run, outcome))
        finished = ScenarioRun.objects.filter(
            pk=scenario_run.pk,
            status__in=[ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING],
        ).update(status=outcome.status, duration_ms=outcome.duration_ms, finished_at=timezone.now())
        if not finished:
            return False
        _count_finished(scenario_run.run_id, 1)
    return True


def _count_finished(run_id: int, count: int) -> None:
    Run.objects.filter(pk=run_id).update(scenarios_done=F("scenarios_done") + count)
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.scenarios_done >= run.scenarios_total:
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


def _latency_rollup(run: Run) -> dict[str, Any]:
    merged = Histogram()
    for latency in StepResult.objects.filter(
        scenario_run__run=run, latency__isnull=False
    ).values_list("latency", flat=True):
        if latency and latency.get("histogram"):
            merged.merge(Histogram.from_dict(latency["histogram"]))
    if not merged.count:
        return {}
    return {
        "requests": merged.count,
        "p50": round(merged.percentile(50), 3),
        "p90": round(merged.percentile(90), 3),
        "p95": round(merged.percentile(95), 3),
        "p99": round(merged.percentile(99), 3),
        "max": round(merged.max, 3),
        "histogram": merged.to_dict(),
    }


def _sla_verdicts(run: Run, merged: Histogram | None) -> list[dict[str, Any]]:
    verdicts = []
    for sla in run.partner.slas.filter(kind="latency"):
        if merged is None or not merged.count:
            verdicts.append(
                {
                    "sla": sla.name,
                    "target": sla.summary,
                    "target_ms": sla.threshold_ms,
                    "measured_ms": None,
                    "samples": 0,
                    "verdict": "no data",
                }
            )
            continue
        measured = round(merged.percentile(float(sla.percentile)), 3)
        met = measured < sla.threshold_ms if sla.strict else measured <= sla.threshold_ms
        verdicts.append(
            {
                "sla": sla.name,
                "target_ms": sla.threshold_ms,
                "measured_ms": measured,
                "samples": merged.count,
                "target": sla.summary,
                "verdict": "met" if met else "missed",
            }
        )
    return verdicts


def run_finalize(*, run: Run) -> Run:
    """Verdict, merged latency histograms and SLA verdicts. Call inside a transaction holding
    the run's row lock."""
    statuses = set(run.scenario_runs.values_list("status", flat=True))
    if run.status == Run.Status.CANCELLED or statuses == {ScenarioRun.Status.CANCELLED}:
        status = Run.Status.CANCELLED
    elif ScenarioRun.Status.ERROR in statuses:
        status = Run.Status.ERROR
    elif ScenarioRun.Status.FAILED in statuses:
        status = Run.Status.FAILED
    elif statuses <= {ScenarioRun.Status.PASSED}:
        status = Run.Status.PASSED
    else:
        status = Run.Status.FAILED
    latency = _latency_rollup(run)
    merged = Histogram.from_dict(latency["histogram"]) if latency else None
    run.status = status
    run.latency = latency
    run.sla_verdicts = _sla_verdicts(run, merged)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "latency", "sla_verdicts", "finished_at"])
    audit_record(
        actor="system",
        action="run.finish",
        partner=run.partner,
        target=f"run {run.pk}",
        data={"status": status, "sla": run.sla_verdicts},
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
    context = run_context(run)
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


def _enqueue(scenario_run_ids: list[int]) -> None:
    from certification.tasks import run_scenario

    for scenario_run_id in scenario_run_ids:
        run_scenario.delay(scenario_run_id)


def start_run(
    *,
    partner: Partner,
    suite: Suite,
    by: Any,
    endpoint_overrides: dict[str, str] | None = None,
    trigger: str = "manual",
) -> Run:
    """Create a run and queue one task per scenario once the run is committed."""
    with transaction.atomic():
        run = run_create(
            partner=partner,
            suite=suite,
            by=by,
            endpoint_overrides=endpoint_overrides,
            trigger=trigger,
        )
        ids = list(run.scenario_runs.values_list("pk", flat=True))
        transaction.on_commit(lambda: _enqueue(ids))
    return run


def _give_up(scenario_run: ScenarioRun, *, attempts: int) -> bool:
    """End a scenario whose worker kept dying, so that its run still finishes."""
    return scenario_mark(
        scenario_run=scenario_run,
        status=ScenarioRun.Status.ERROR,
        message=f"scenario {scenario_run.index} given up after {attempts} attempts: "
        "the worker running it stopped each time",
    )


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
    context = run_context_cached(run)
    with LeaseKeeper([scenario_run.pk], worker):
        (outcome,) = asyncio.run(
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
        status=ScenarioRun.Status.RUNNING, claimed_at__lt=now - _lease()
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
    lost = ScenarioRun.objects.filter(
        status=ScenarioRun.Status.QUEUED,
        queued_at__lt=now - timedelta(seconds=settings.QUEUED_RESEND_SECONDS),
    ).values_list("pk", "queued_at")
    for pk, queued_at in lost:
        if ScenarioRun.objects.filter(pk=pk, queued_at=queued_at).update(queued_at=now):
            counts["resent"] += 1
            transaction.on_commit(partial(_enqueue, [pk]))
    return counts


def run_cancel(*, run: Run, by: Any) -> Run:
    """Stop queued scenarios and mark the run cancelled; scenarios already running finish."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.is_finished:
            return locked
        now = timezone.now()
        cancelled = ScenarioRun.objects.filter(run=locked, status=ScenarioRun.Status.QUEUED).update(
            status=ScenarioRun.Status.CANCELLED, finished_at=now
        )
        locked.status = Run.Status.CANCELLED
        locked.finished_at = now
        locked.scenarios_done = F("scenarios_done") + cancelled
        locked.save(update_fields=["status", "finished_at", "scenarios_done"])
        locked.refresh_from_db()
        audit_record(actor=by, action="run.cancel", partner=locked.partner, target=f"run {run.pk}")
    return locked


# ----------------------------------------------------------------------------- schedules


@transaction.atomic
def schedule_save(
    *, partner: Partner, suite_name: str, every_days: int, by: Any, first_run_at: Any = None
) -> RecertificationSchedule:
    """Create or change the recertification schedule of a partner and suite."""
    if not Suite.objects.filter(name=suite_name).exists():
        raise RunInputError(f"no stored suite called '{suite_name}'")
    if every_days < 1:
        raise RunInputError("a schedule repeats every 1 day or more")
    if not partner.endpoints.exists():
        raise RunInputError(
            f"{partner.external_id} has no sandbox endpoint yet: add one before scheduling runs"
        )
    schedule, created = RecertificationSchedule.objects.update_or_create(
        partner=partner,
        suite_name=suite_name,
        defaults={
            "every_days": every_days,
            "enabled": True,
            "next_run_at": first_run_at or timezone.now() + timedelta(days=every_days),
            "created_by": by if getattr(by, "is_authenticated", False) else None,
        },
    )
    audit_record(
        actor=by,
        action="schedule.create" if created else "schedule.update",
        partner=partner,
        target=str(schedule),
        data={"every_days": every_days, "next_run_at": schedule.next_run_at},
    )
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: RecertificationSchedule, by: Any) -> None:
    audit_record(actor=by, action="schedule.delete", partner=schedule.partner, target=str(schedule))
    schedule.delete()


def recertifications_start_due() -> list[Run]:
    """Start a run for every enabled schedule that is due, once each: the schedule is moved
    to its next date by a conditional update, so two beat processes cannot both start it."""
    now = timezone.now()
    started = []
    due = RecertificationSchedule.objects.filter(enabled=True, next_run_at__lte=now)
    for schedule in due.select_related("partner"):
        suite = Suite.objects.filter(name=schedule.suite_name).order_by("-version").first()
        with transaction.atomic():
            moved = RecertificationSchedule.objects.filter(
                pk=schedule.pk, next_run_at=schedule.next_run_at
            ).update(next_run_at=now + timedelta(days=schedule.every_days))
            if not moved:
                continue
            if suite is None:
                audit_record(
                    actor="celery beat",
                    action="schedule.skip",
                    partner=schedule.partner,
                    target=str(schedule),
                    data={"reason": "the suite no longer exists"},
                )
                continue
            try:
                run = start_run(
                    partner=schedule.partner, suite=suite, by="celery beat", trigger="schedule"
                )
            except RunInputError as exc:
                audit_record(
                    actor="celery beat",
                    action="schedule.skip",
                    partner=schedule.partner,
                    target=str(schedule),
                    data={"reason": str(exc)},
                )
                continue
            RecertificationSchedule.objects.filter(pk=schedule.pk).update(last_run=run)
            started.append(run)
    return started
