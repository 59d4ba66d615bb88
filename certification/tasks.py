from __future__ import annotations

from celery import shared_task

from certification import services


@shared_task(bind=True, acks_late=True, ignore_result=True)
def heartbeat(self, nonce: str = "") -> None:
    """Round trip through the broker: the worker records that it is alive."""
    services.heartbeat_record(hostname=self.request.hostname or "unknown", nonce=nonce)
