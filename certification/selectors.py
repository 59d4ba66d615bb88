"""Reads for certification runs."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from certification.models import WorkerHeartbeat

WORKER_FRESH_FOR = timedelta(minutes=2)


def workers_alive() -> list[WorkerHeartbeat]:
    """Workers that answered a heartbeat recently."""
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - WORKER_FRESH_FOR))
