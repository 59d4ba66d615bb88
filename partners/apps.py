from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender: AppConfig, **kwargs: object) -> None:
    from partners import services

    services.roles_sync(using=str(kwargs.get("using", "default")))


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self) -> None:
        # Groups need permissions of several apps, created by each app's own post_migrate; run
        # after every app's (it is idempotent and cheap) so the last run sees them all.
        post_migrate.connect(_sync_roles, dispatch_uid="partners.roles_sync")

        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        from partners import login_throttling

        user_login_failed.connect(
            login_throttling.record_login_failure, dispatch_uid="partners.login_failure_audit"
        )
        user_locked_out.connect(
            login_throttling.record_lockout, dispatch_uid="partners.lockout_audit"
        )
