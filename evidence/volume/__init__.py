"""Realistic volume data for load and page-speed work (``manage.py seed_volume``).

``volume_seed`` adds partners (``v_000001``… after the highest stored) with SLAs and endpoints,
a generated suite per run size, finished runs with scenario and step results and latency
probes, and certifications in every status; each call adds more. What each part generates is
described in its module: ``registry`` (partners, SLAs, endpoints), ``suites``, ``outcomes``
(step rows and verdicts, through the real verdict code), ``certifications``, ``bulk`` (COPY).

One transaction per batch of partners; the audit log gets the endpoints' own events and one
``volume.seed`` event summarising the call (the chain stays valid for ``verify_audit``).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from certification.models import Run, ScenarioRun, StepResult, Suite
from certification.standing import latest_runs_rebuild
from evidence.audit import audit_record
from evidence.volume import bulk, certifications, outcomes, registry, suites
from partners import access

MAX_PARTNERS = 100_000
MAX_RUNS_PER_PARTNER = 1_000
MAX_STEPS_PER_RUN = 10_000  # the largest generated suite that fits a suite file's 1 MiB cap
RUN_SPAN = dt.timedelta(days=180)
ACTOR = "manage.py seed_volume"
SIGNER = "volume-qa"

RUN_COLUMNS = (
    "id", "partner_id", "suite_id", "status", "endpoints", "default_endpoint", "trigger",
    "error", "scenarios_total", "scenarios_done", "latency", "sla_verdicts", "reasons",
    "created_by_id", "created_at", "started_at", "finished_at", "locked_at",
)  # fmt: skip
SCENARIO_COLUMNS = (
    "id", "run_id", "scenario_id", "index", "status", "attempts", "queued_at", "claimed_by",
    "claimed_at", "started_at", "finished_at", "duration_ms",
)  # fmt: skip
STEP_COLUMNS = (
    "scenario_run_id", "step_index", "iteration", "name", "status", "request", "response",
    "timings", "assertions", "failure", "extracted", "data", "latency", "notes", "traffic",
    "started_at", "duration_ms",
)  # fmt: skip


class VolumeError(ValueError):
    """Bad seeding arguments; nothing was written. ``messages`` lists every problem."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


@dataclass(frozen=True)
class VolumeRequest:
    partners: int
    runs_per_partner: int
    steps_per_run: int
    big_run_steps: tuple[int, ...] = ()
    batch_size: int = 25
    seed: int | None = None


@dataclass
class VolumeSummary:
    partners: int = 0
    first_id: str = ""
    last_id: str = ""
    slas: int = 0
    endpoints: int = 0
    runs: int = 0
    scenario_runs: int = 0
    steps: int = 0
    suites: list[str] = field(default_factory=list)
    runs_by_status: Counter = field(default_factory=Counter)
    certifications_by_status: Counter = field(default_factory=Counter)
    partners_by_status: Counter = field(default_factory=Counter)
    big_runs: list[tuple[int, int]] = field(default_factory=list)  # (steps, run id)
    seconds: float = 0.0


def volume_check(request: VolumeRequest) -> list[str]:
    """Every problem with the arguments, as messages a user can act on."""
    errors = []

    def within(name: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            errors.append(f"{name} must be from {low:,} to {high:,} (got {value:,})")

    within("--partners", request.partners, 1, MAX_PARTNERS)
    within("--runs-per-partner", request.runs_per_partner, 0, MAX_RUNS_PER_PARTNER)
    within("--steps-per-run", request.steps_per_run, 1, MAX_STEPS_PER_RUN)
    for steps in request.big_run_steps:
        within("--big-run-steps", steps, 1, MAX_STEPS_PER_RUN)
    within("--batch-size", request.batch_size, 1, 1_000)
    if settings.PRODUCTION:
        errors.append("seed_volume writes generated partners and runs; not in production")
    return errors


def _signer() -> Any:
    user, created = get_user_model().objects.get_or_create(username=SIGNER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        group = Group.objects.filter(name=access.QA_LEAD).first()
        if group is not None:
            user.groups.add(group)
    return user


@dataclass
class _Writer:
    """Run, scenario-run and step rows of one partner, then written in three COPYs."""

    summary: VolumeSummary
    runs: list[dict[str, Any]] = field(default_factory=list)
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, seeded: registry.SeededPartner, suite: Suite, scenario_ids: list[int],
        result: outcomes.RunResult, *, created_at: dt.datetime, trigger: str,
    ) -> int:  # fmt: skip
        run_id = bulk.ids_reserve(Run, 1)[0]
        self.runs.append({
            "id": run_id, "partner_id": seeded.partner.pk, "suite_id": suite.pk,
            "status": result.status, "endpoints": seeded.endpoint_snapshot,
            "default_endpoint": "api", "trigger": trigger, "error": "",
            "scenarios_total": len(result.scenarios), "scenarios_done": len(result.scenarios),
            "latency": result.latency, "sla_verdicts": result.sla_verdicts,
            "reasons": result.reasons, "created_by_id": None, "created_at": created_at,
            "started_at": result.started_at, "finished_at": result.finished_at,
            "locked_at": None,
        })  # fmt: skip
        ids = bulk.ids_reserve(ScenarioRun, len(result.scenarios))
        for sr_id, scenario in zip(ids, result.scenarios, strict=True):
            finished = scenario.started_at + dt.timedelta(milliseconds=scenario.duration_ms)
            self.scenarios.append({
                "id": sr_id, "run_id": run_id, "scenario_id": scenario_ids[scenario.index],
                "index": scenario.index, "status": scenario.status, "attempts": 1,
                "queued_at": created_at, "claimed_by": "volume-worker@seed",
                "claimed_at": scenario.started_at, "started_at": scenario.started_at,
                "finished_at": finished, "duration_ms": scenario.duration_ms,
            })  # fmt: skip
            for step in scenario.steps:
                self.steps.append({**step, "scenario_run_id": sr_id, "iteration": 0, "data": None})
        self.summary.runs += 1
        self.summary.runs_by_status[result.status] += 1
        self.summary.scenario_runs += len(result.scenarios)
        self.summary.steps += result.step_count
        return run_id

    def flush(self) -> None:
        bulk.rows_insert(Run, RUN_COLUMNS, self.runs)
        bulk.rows_insert(ScenarioRun, SCENARIO_COLUMNS, self.scenarios)
        bulk.rows_insert(StepResult, STEP_COLUMNS, self.steps)
        self.runs, self.scenarios, self.steps = [], [], []


def _suite(steps: int, cache: dict[int, tuple[Suite, Any, list[int]]]) -> tuple:
    if steps not in cache:
        suite = suites.suite_for(steps, by=ACTOR)
        ids = list(suite.scenarios.order_by("index").values_list("pk", flat=True))
        cache[steps] = (suite, suites.suite_layout(steps), ids)
    return cache[steps]


def _partner_runs(
    rng: random.Random, seeded: registry.SeededPartner, writer: _Writer, suite_info: tuple,
    *, count: int, now: dt.datetime,
) -> list[certifications.RunRef]:  # fmt: skip
    suite, layout, scenario_ids = suite_info
    refs = []
    slot = RUN_SPAN / max(count, 1)
    for j in range(count):
        created = now - RUN_SPAN + slot * j + rng.random() * (slot / 2)
        started = created + dt.timedelta(seconds=rng.uniform(0.5, 3))
        result = outcomes.run_result(
            rng, layout, seeded.profiles, seeded.slas, seeded.http_endpoints,
            started_at=started, plan=outcomes.run_plan(rng), order_base=1000 + j * 100_000,
        )  # fmt: skip
        trigger = "schedule" if j % 4 == 3 else "web"
        run_id = writer.add(seeded, suite, scenario_ids, result, created_at=created,
                            trigger=trigger)  # fmt: skip
        refs.append(certifications.RunRef(run_id, created, result.status))
    return refs


def volume_seed(
    request: VolumeRequest, *, progress: Callable[[str], None] | None = None
) -> VolumeSummary:
    """Add the requested volume; raises ``VolumeError`` (nothing written) on bad arguments."""
    if errors := volume_check(request):
        raise VolumeError(errors)
    started = time.monotonic()
    summary = VolumeSummary()
    first = registry.next_number()
    rng = random.Random(request.seed if request.seed is not None else first)
    now = timezone.now()
    signer = _signer()
    cache: dict[int, tuple] = {}
    with transaction.atomic():
        regular = _suite(request.steps_per_run, cache)
        for steps in request.big_run_steps:
            _suite(steps, cache)
    summary.suites = [f"{info[0].name} v{info[0].version}" for info in cache.values()]
    numbers = list(range(first, first + request.partners))
    for start in range(0, len(numbers), request.batch_size):
        batch = numbers[start : start + request.batch_size]
        with transaction.atomic():
            writer = _Writer(summary)
            partner_ids = []
            for number in batch:
                seeded = registry.partner_create(rng, number, by=ACTOR)
                partner = seeded.partner
                partner_ids.append(partner.pk)
                summary.slas += len(seeded.slas)
                summary.endpoints += len(seeded.endpoint_snapshot)
                refs = _partner_runs(
                    rng, seeded, writer, regular, count=request.runs_per_partner, now=now
                )
                if number == first:
                    for k, steps in enumerate(request.big_run_steps):
                        suite, layout, scenario_ids = cache[steps]
                        at = now - dt.timedelta(minutes=30 * (len(request.big_run_steps) - k))
                        result = outcomes.run_result(
                            rng, layout, seeded.profiles, seeded.slas, seeded.http_endpoints,
                            started_at=at + dt.timedelta(seconds=1), plan=outcomes.PASS,
                        )  # fmt: skip
                        run_id = writer.add(seeded, suite, scenario_ids, result, created_at=at,
                                            trigger="web")  # fmt: skip
                        summary.big_runs.append((steps, run_id))
                writer.flush()
                made = certifications.certifications_create(
                    rng=rng, partner=partner, number=number, suite_name=regular[0].name,
                    runs=refs, signer=signer, now=now,
                )  # fmt: skip
                summary.certifications_by_status.update(c.status for c in _reload(made))
                summary.partners_by_status[certifications.partner_status_set(partner, now=now)] += 1
            latest_runs_rebuild(partner_ids)
        summary.partners += len(batch)
        if progress is not None:
            progress(
                f"partners {summary.partners:,}/{request.partners:,} (up to "
                f"{registry.external_id(batch[-1])}): {summary.runs:,} runs, "
                f"{summary.steps:,} steps, {time.monotonic() - started:.1f} s"
            )
    summary.first_id = registry.external_id(first)
    summary.last_id = registry.external_id(first + request.partners - 1)
    audit_record(
        actor=ACTOR,
        action="volume.seed",
        target=f"{summary.first_id}..{summary.last_id}",
        data={
            "partners": summary.partners,
            "runs": summary.runs,
            "steps": summary.steps,
            "suites": summary.suites,
            "note": "generated data; per-run and certification audit events were not written",
        },
    )
    summary.seconds = time.monotonic() - started
    return summary


def _reload(made: list) -> list:
    from evidence.models import Certification

    return list(Certification.objects.filter(pk__in=[c.pk for c in made]).only("status"))
