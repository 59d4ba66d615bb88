from __future__ import annotations

from django.apps import AppConfig


class CertificationConfig(AppConfig):
    name = "certification"

    def ready(self) -> None:
        from django.conf import settings

        from certification.engine import spec

        # The engine knows no Django: its limits come from the settings here, once.
        spec.configure(
            file_bytes=settings.SUITE_FILE_MAX_BYTES,
            suite_bytes=settings.SUITE_MAX_BYTES,
            probe_requests=settings.PROBE_MAX_REQUESTS,
        )
