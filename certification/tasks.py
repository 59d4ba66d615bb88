"""Celery tasks: thin callers of services that take ids only (never secrets: broker messages
can be read by whoever reads the broker)."""

from __future__ import annotations

from celery import shared_task

from certification import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_scenario(self, scenario_run_id: int) -> None:
    """Execute one scenario of a run. Redelivery is safe: see ``services.scenario_execute``."""
    services.scenario_execute(
        scenario_run_id=scenario_run_id, worker=self.request.hostname or "worker"
    )


@shared_task(bind=True, acks_late=True, ignore_result=True)
def heartbeat(self, nonce: str = "") -> None:
    """Round trip through the broker: the worker records that it is alive."""
    services.heartbeat_record(hostname=self.request.hostname or "unknown", nonce=nonce)
