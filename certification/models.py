"""Certification runs. This module grows with the scenario engine; for now it holds the worker
heartbeat that proves a Celery worker is alive and consuming the queue."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """Written by a worker when it handles a ``heartbeat`` task: a round trip through the broker."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()
    nonce = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
