from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from evidence.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, also for administrators."""

    # partner_label, not the partner: the partner may have been deleted since.
    list_display = ["seq", "at", "actor_label", "action", "partner_label", "target", "short_hash"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target", "action", "partner_label"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
