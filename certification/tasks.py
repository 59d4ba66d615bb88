"""Celery tasks: thin callers of services that take ids only (never secrets: broker messages
can be read by whoever reads the broker)."""

from __future__ import annotations

import os

from celery import shared_task

import config.celery  # noqa: F401  (the app these tasks are sent with)
from certification import execution, runs


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_scenario(self, scenario_run_id: int) -> None:
    """Execute one scenario of a run. Redelivery is safe (see ``execution.scenario_execute``);
    a scenario still held by a live worker is tried again when that worker's lease ends."""
    # The process id names the exact pool process holding the lease (and lets an operator or a
    # test find it).
    worker = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    claim = execution.scenario_execute(scenario_run_id=scenario_run_id, worker=worker)
    if claim.retry_after > 0:
        raise self.retry(countdown=claim.retry_after, max_retries=None)


@shared_task(ignore_result=True)
def requeue_stalled() -> dict[str, int]:
    """The stalled sweep on demand (``celery -A config call certification.tasks.requeue_stalled``);
    every worker also runs it on its own every STALLED_SWEEP_SECONDS (certification/sweeper.py)."""
    return execution.scenarios_requeue_stalled()


@shared_task(ignore_result=True)
def start_due_recertifications() -> int:
    """Periodic (Celery beat): start the recertification runs that are due."""
    return len(runs.recertifications_start_due())


@shared_task(bind=True, acks_late=True, ignore_result=True)
def heartbeat(self, nonce: str = "") -> None:
    """Round trip through the broker: the worker records that it is alive."""
    execution.heartbeat_record(hostname=self.request.hostname or "unknown", nonce=nonce)
