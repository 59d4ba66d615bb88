"""Claims and leases: which worker executes a scenario, and how a dead worker is noticed.

A worker claims a scenario with one conditional update; while it runs the scenario, one
thread per process renews the leases of every scenario the process holds, every
``SCENARIO_LEASE_SECONDS / 4``. A scenario whose lease ran out belongs to a worker that died:
another claim may take it, and the sweep queues it again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from certification.models import Run, ScenarioRun


def lease() -> timedelta:
    return timedelta(seconds=settings.SCENARIO_LEASE_SECONDS)


@dataclass(frozen=True)
class Claim:
    scenario_run: ScenarioRun | None
    retry_after: float = 0.0  # > 0: another worker holds a live lease; try again then


_RUNS: dict[tuple[int, object], tuple[float, Run]] = {}
_RUN_TTL_S = 30.0


def _run_cached(run_id: int, created: object) -> Run:
    """A run with its partner and suite (sources not loaded), kept a few seconds per process:
    the scenarios of one run claimed by one worker read it once. Only what does not change
    while a run executes is read from it (its suite version, partner, endpoints). Keyed by id
    and creation time: SQLite may give a deleted run's id to the next one."""
    now = time.monotonic()
    for key in [k for k, (at, _) in _RUNS.items() if now - at > _RUN_TTL_S]:
        del _RUNS[key]
    key = (run_id, created)
    if key not in _RUNS:
        run = (
            Run.objects.select_related("partner", "suite")
            .defer("suite__sources", "suite__parsed")
            .get(pk=run_id)
        )
        if run.status == Run.Status.QUEUED:
            Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update_open(
                status=Run.Status.RUNNING, started_at=timezone.now()
            )
        _RUNS[key] = (now, run)
    return _RUNS[key][1]


def scenario_claim(*, scenario_run_id: int, worker: str) -> Claim:
    """Take a scenario run for execution with a conditional update.

    Claimable: queued, or running under a lease that ran out (its worker died). Two workers
    handed the same task cannot both win: the loser's update touches 0 rows. A finished or
    cancelled scenario is never claimed again. (One statement with ``RETURNING``: this runs
    once per scenario on the workers, and the ORM's update and read cost three times as much.)
    """
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ScenarioRun._meta.db_table} "
            "SET status = %s, claimed_by = %s, claimed_at = %s, started_at = %s, "
            "attempts = attempts + 1 "
            "WHERE id = %s AND (status = %s OR (status = %s AND claimed_at < %s)) "
            f"RETURNING run_id, scenario_id, {connection.ops.quote_name('index')}, attempts, "
            f"(SELECT created_at FROM {Run._meta.db_table} WHERE id = run_id)",
            [
                ScenarioRun.Status.RUNNING, worker, adapt(now), adapt(now), scenario_run_id,
                ScenarioRun.Status.QUEUED, ScenarioRun.Status.RUNNING, adapt(now - lease()),
            ],
        )  # fmt: skip
        row = cursor.fetchone()
    if row is None:
        current = ScenarioRun.objects.filter(pk=scenario_run_id).values("status", "claimed_at")
        found = current.first()
        if found and found["status"] == ScenarioRun.Status.RUNNING and found["claimed_at"]:
            left = (found["claimed_at"] + lease() - now).total_seconds()
            return Claim(None, retry_after=max(left, 0.0) + 1.0)
        return Claim(None)
    run_id, scenario_id, index, attempts, run_created = row
    scenario_run = ScenarioRun(
        pk=scenario_run_id, run_id=run_id, scenario_id=scenario_id, index=index,
        attempts=attempts, status=ScenarioRun.Status.RUNNING, claimed_by=worker,
        claimed_at=now, started_at=now,
    )  # fmt: skip
    scenario_run._state.adding = False
    scenario_run.run = _run_cached(run_id, run_created)
    return Claim(scenario_run)


class _Renewer:
    """The one thread per process that renews the leases of the scenarios it holds."""

    def __init__(self) -> None:
        self.held: Counter[tuple[int, str]] = Counter()
        self.lock = threading.Lock()
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.idle = threading.Event()  # set when nothing is held: close the connection now

    def hold(self, ids: Sequence[int], worker: str) -> None:
        with self.lock:
            self.held.update((pk, worker) for pk in ids)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                # First use in this process (a forked pool process does not inherit threads).
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._renew, name="lease", daemon=True)
                self.thread.start()

    def release(self, ids: Sequence[int], worker: str) -> None:
        with self.lock:
            self.held.subtract((pk, worker) for pk in ids)
            self.held = +self.held  # drop what is no longer held
            if not self.held:
                self.idle.set()

    def _renew(self) -> None:
        interval = max(settings.SCENARIO_LEASE_SECONDS / 4, 0.2)
        while True:
            self.idle.wait(interval)
            self.idle.clear()
            with self.lock:
                by_worker: dict[str, list[int]] = {}
                for pk, worker in self.held:
                    by_worker.setdefault(worker, []).append(pk)
            try:
                for worker, ids in by_worker.items():
                    ScenarioRun.objects.filter(
                        pk__in=ids, status=ScenarioRun.Status.RUNNING, claimed_by=worker
                    ).update_open(claimed_at=timezone.now())
            except Exception:  # the database is away: try again at the next interval
                connection.close()
            if not by_worker:
                connection.close()  # nothing held: no connection kept open meanwhile


_renewer = _Renewer()


class LeaseKeeper:
    """Keeps the leases of the given scenario runs renewed while the block runs, so that a
    long scenario (latency probes, polling, waits) is not taken for a dead one."""

    def __init__(self, scenario_run_ids: Sequence[int], worker: str) -> None:
        self.ids = list(scenario_run_ids)
        self.worker = worker

    def __enter__(self) -> LeaseKeeper:
        _renewer.hold(self.ids, self.worker)
        return self

    def __exit__(self, *exc: object) -> None:
        _renewer.release(self.ids, self.worker)
