"""Celery tasks of the evidence app: thin callers of services, taking ids."""

from __future__ import annotations

from celery import shared_task

import config.celery  # noqa: F401  (the app these tasks are sent with)
from evidence import bundles, services


@shared_task(acks_late=True)
def build_bundle(bundle_id: str) -> None:
    bundles.bundle_build(bundle_id=bundle_id)


@shared_task(acks_late=True)
def expire_certifications() -> int:
    return len(services.certifications_expire())
