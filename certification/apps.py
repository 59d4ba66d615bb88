from __future__ import annotations

from django.apps import AppConfig


class CertificationConfig(AppConfig):
    name = "certification"
