from __future__ import annotations

from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    name = "evidence"
    verbose_name = "Evidence and audit"

    def ready(self) -> None:
        # Sign-ins have no service to write their audit event, so the auth signals do.
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from evidence import audit, checks  # noqa: F401  (checks registers itself)

        user_logged_in.connect(audit.record_login, dispatch_uid="evidence.login_audit")
        user_logged_out.connect(audit.record_logout, dispatch_uid="evidence.logout_audit")
