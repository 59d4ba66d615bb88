"""Writes for certification runs."""

from __future__ import annotations

from django.utils import timezone

from certification.models import WorkerHeartbeat


def heartbeat_record(*, hostname: str, nonce: str) -> WorkerHeartbeat:
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now(), "nonce": nonce}
    )
    return beat
