from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from partners.models import (
    SLA,
    Endpoint,
    FieldMapping,
    Membership,
    Partner,
    RetryPolicy,
    WebhookSecret,
)
from partners.secret_rules import display_url


class SLAInline(admin.TabularInline):
    model = SLA
    extra = 0


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "status", "contact_email"]
    list_filter = ["status"]
    search_fields = ["external_id", "name", "contact_email"]
    # The lifecycle status follows the partner's certifications (evidence.services).
    readonly_fields = ["status"]
    inlines = [SLAInline]


@admin.register(SLA)
class SLAAdmin(admin.ModelAdmin):
    list_display = ["partner", "name", "kind", "text"]
    list_filter = ["kind"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Read-mostly: endpoints are added and their URL and secrets changed on the partner page or
    with ``manage.py endpoint_set``, which validate them; secrets are sealed and never shown,
    and a URL shows no password."""

    list_display = ["partner", "name", "shown_base_url", "auth_kind", "is_default"]
    list_filter = ["auth_kind"]
    exclude = ["secrets_sealed", "base_url"]
    readonly_fields = ["shown_base_url", "secrets_status"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Base URL")
    def shown_base_url(self, obj: Endpoint) -> str:
        return display_url(obj.base_url)

    @admin.display(description="Secrets")
    def secrets_status(self, obj: Endpoint) -> str:
        return "•••••••• (sealed)" if obj.secrets_sealed else "none stored"


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    """Webhook secrets come from the registry import, which validates and seals them."""

    list_display = ["partner", "name", "profile", "shown_endpoint_url", "window_s"]
    exclude = ["secret_sealed", "endpoint_url"]
    readonly_fields = ["shown_endpoint_url"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Endpoint URL")
    def shown_endpoint_url(self, obj: WebhookSecret) -> str:
        return display_url(obj.endpoint_url)


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
