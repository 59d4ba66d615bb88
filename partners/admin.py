from __future__ import annotations

from django.contrib import admin

from partners.models import (
    SLA,
    Endpoint,
    FieldMapping,
    Membership,
    Partner,
    RetryPolicy,
    WebhookSecret,
)


class SLAInline(admin.TabularInline):
    model = SLA
    extra = 0


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "status", "contact_email"]
    list_filter = ["status"]
    search_fields = ["external_id", "name", "contact_email"]
    inlines = [SLAInline]


@admin.register(SLA)
class SLAAdmin(admin.ModelAdmin):
    list_display = ["partner", "name", "kind", "text"]
    list_filter = ["kind"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Secrets are sealed and not editable here; use the endpoint page to replace them."""

    list_display = ["partner", "name", "base_url", "auth_kind", "is_default"]
    list_filter = ["auth_kind"]
    exclude = ["secrets_sealed"]
    readonly_fields = ["secrets_status"]

    @admin.display(description="Secrets")
    def secrets_status(self, obj: Endpoint) -> str:
        return "•••••••• (sealed)" if obj.secrets_sealed else "none stored"


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    list_display = ["partner", "endpoint_url", "window_s"]
    exclude = ["secret_sealed"]


@admin.register(RetryPolicy)
class RetryPolicyAdmin(admin.ModelAdmin):
    list_display = ["flow", "max_attempts", "backoff_ms_cap", "jitter"]


@admin.register(FieldMapping)
class FieldMappingAdmin(admin.ModelAdmin):
    list_display = ["ours", "partner_field", "type", "notes"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "partner", "created_at"]
    autocomplete_fields = ["partner"]
