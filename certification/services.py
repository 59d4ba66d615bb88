"""Writes for suites and runs: storing suite versions, creating runs, persisting results."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, FloatField, Value, When
from django.utils import timezone

from certification.engine import spec as engine_spec
from certification.engine.histogram import Histogram
from certification.engine.model import EndpointConfig, RunContext, ScenarioOutcome
from certification.engine.model import Suite as SuiteSpec
from certification.engine.runner import run_suite
from certification.models import Run, Scenario, ScenarioRun, StepResult, Suite, WorkerHeartbeat
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

    # Parsing here collects the $ref'd files; errors surface again (and are reported) when
    # the caller parses the collected sources, which then comes from the cache.
    with contextlib.suppress(engine_spec.SuiteInvalid):
        engine_spec.parse_suite(sources[entry], filename=entry, loader=loader)
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
    if len(_PARSED) >= _PARSED_KEEP:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = parsed
    return parsed


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
    )


def scenario_claim(*, scenario_run_id: int, worker: str) -> ScenarioRun | None:
    """Take a queued scenario run for execution; None if it is finished or cancelled.

    A conditional update, so two workers handed the same task cannot both run it as new: the
    loser sees 0 rows. A redelivered task of a crashed worker finds it ``running`` and takes it
    over (``attempts`` counts the tries).
    """
    now = timezone.now()
    claimed = ScenarioRun.objects.filter(
        pk=scenario_run_id, status__in=[ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING]
    ).update(
        status=ScenarioRun.Status.RUNNING,
        claimed_by=worker,
        claimed_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    scenario_run = ScenarioRun.objects.select_related(
        "run", "run__partner", "run__suite", "scenario"
    ).get(pk=scenario_run_id)
    Run.objects.filter(pk=scenario_run.run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    return scenario_run


def _step_rows(scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> list[StepResult]:
    rows = []
    for step in outcome.steps:
        data = asdict(step)
        rows.append(
            StepResult(
                scenario_run=scenario_run,
                step_index=step.index,
                iteration=step.iteration,
                name=step.name[:300],
                status=step.status,
                request=data["request"],
                response=data["response"],
                timings=data["timings"],
                assertions=data["assertions"],
                failure=data["failure"],
                extracted=data["extracted"],
                data=data["data"],
                latency=data["latency"],
                notes=data["notes"],
                started_at=step.started_at or None,
                duration_ms=step.duration_ms,
            )
        )
    return rows


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
        StepResult.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
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
        now = timezone.now()
        ScenarioRun.objects.filter(pk__in=open_ids).update(
            status=Case(*(When(pk=sr.pk, then=Value(o.status)) for sr, o in finishing)),
            duration_ms=Case(
                *(When(pk=sr.pk, then=Value(o.duration_ms)) for sr, o in finishing),
                output_field=FloatField(),
            ),
            finished_at=now,
        )
        per_run: dict[int, int] = {}
        for scenario_run, _ in finishing:
            per_run[scenario_run.run_id] = per_run.get(scenario_run.run_id, 0) + 1
        for run_id, count in per_run.items():
            Run.objects.filter(pk=run_id).update(scenarios_done=F("scenarios_done") + count)
            run = Run.objects.select_for_update().get(pk=run_id)
            if run.scenarios_done >= run.scenarios_total and not run.is_finished:
                run_finalize(run=run)
    return len(finishing)


def scenario_outcome_save(*, scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> bool:
    """Persist one scenario's results exactly once; True if this call finished the scenario."""
    return scenario_outcomes_save(items=[(scenario_run, outcome)]) == 1


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
            verdicts.append({"sla": sla.name, "target_ms": sla.threshold_ms, "verdict": "no data"})
            continue
        measured = round(merged.percentile(float(sla.percentile)), 3)
        verdicts.append(
            {
                "sla": sla.name,
                "target_ms": sla.threshold_ms,
                "measured_ms": measured,
                "samples": merged.count,
                "verdict": "met" if measured <= sla.threshold_ms else "missed",
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
        suite = suite_parse(entry=run.suite.entry, sources=run.suite.sources)
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
    run.scenario_runs.filter(pk__in=[sr.pk for sr in pending.values()]).update(
        status=ScenarioRun.Status.RUNNING, claimed_by="inline", claimed_at=now, started_at=now,
        attempts=F("attempts") + 1,
    )  # fmt: skip
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    for batch in _engine_batches(suite, context, sorted(pending), parallel):
        scenario_outcomes_save(items=[(pending[index], outcome) for index, outcome in batch])
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


MAX_ATTEMPTS = 3


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


def scenario_execute(*, scenario_run_id: int, worker: str) -> ScenarioRun | None:
    """Run one scenario of a run (the body of the Celery task). Safe to call again for the same
    scenario: a finished scenario is not claimed, results are written exactly once."""
    scenario_run = scenario_claim(scenario_run_id=scenario_run_id, worker=worker)
    if scenario_run is None:
        return None
    if scenario_run.attempts > MAX_ATTEMPTS:
        scenario_mark(
            scenario_run=scenario_run,
            status=ScenarioRun.Status.ERROR,
            message=f"scenario {scenario_run.index} given up after {MAX_ATTEMPTS} attempts: "
            "the worker running it stopped each time",
        )
        return scenario_run
    run = scenario_run.run
    try:
        suite = suite_parse(entry=run.suite.entry, sources=run.suite.sources)
    except engine_spec.SuiteInvalid as exc:
        scenario_mark(
            scenario_run=scenario_run,
            status=ScenarioRun.Status.ERROR,
            message=f"suite no longer parses: {exc}",
        )
        return scenario_run
    context = run_context(run)
    (outcome,) = asyncio.run(
        run_suite(suite, context, policy=sandbox_policy(), scenarios=[scenario_run.index])
    )
    scenario_outcome_save(scenario_run=scenario_run, outcome=outcome)
    return scenario_run


def run_cancel(*, run: Run, by: Any) -> Run:
    """Stop queued scenarios and mark the run cancelled; scenarios already running finish."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.is_finished:
            return locked
        now = timezone.now()
        ScenarioRun.objects.filter(run=locked, status=ScenarioRun.Status.QUEUED).update(
            status=ScenarioRun.Status.CANCELLED, finished_at=now
        )
        locked.status = Run.Status.CANCELLED
        locked.finished_at = now
        locked.save(update_fields=["status", "finished_at"])
        audit_record(actor=by, action="run.cancel", partner=locked.partner, target=f"run {run.pk}")
    return locked
