"""Captured traffic: what a partner's sandbox sent to the hosted mocks and the webhook inbox.

Imported by ``certification.models``; the services are in ``certification.traffic``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from partners.models import Partner, PartnerScopedQuerySet


class CapturedRequest(models.Model):
    """One request received from a partner's sandbox, as recorded (body capped at the capture
    limit with the full body's size and sha256; secrets masked)."""

    class Source(models.TextChoices):
        MOCK = "mock", "Hosted mock"
        INBOX = "inbox", "Webhook inbox"
        AS2 = "as2", "AS2 inbound"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(
        "certification.Run",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="captured_requests",
        help_text="The run that was running when it arrived; empty when none was.",
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    name = models.CharField(
        max_length=200, blank=True, help_text="The mock that answered, or the inbox."
    )
    origin = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=2000, help_text="host/path?query as the sandbox sent it.")
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    request_body_size = models.PositiveIntegerField(default=0)
    request_body_sha256 = models.CharField(max_length=64, blank=True)
    request_truncated = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField()
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    signature_valid = models.BooleanField(null=True, blank=True)
    signature_reason = models.CharField(max_length=300, blank=True)
    event_id = models.CharField(max_length=200, blank=True)
    replayed = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [
            models.Index(fields=["run", "received_at"], name="captured_run_time"),
            models.Index(fields=["partner", "-received_at"], name="captured_partner_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.response_status}"


class InboxEvent(models.Model):
    """An event id a partner's webhook delivered, processed once: the unique constraint on
    partner + event id, written in the transaction that records the delivery, makes a
    concurrent or later redelivery a replay."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=200)
    first = models.ForeignKey(CapturedRequest, on_delete=models.CASCADE, related_name="+")
    deliveries = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(default=timezone.now)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "event_id"], name="inbox_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.event_id}"
