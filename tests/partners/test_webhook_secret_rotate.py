"""``manage.py webhook_secret_rotate``: a new webhook secret with the old one accepted for an
overlap, audited; bad input writes nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evidence.models import AuditEvent
from partners import crypto
from partners.models import Partner, WebhookSecret
from partners.services import webhook_secret_values

OLD, NEW = "whsec_old_secret_value_0123456789", "whsec_new_secret_value_9876543210"


@pytest.fixture
def inbox(partner_a: Partner) -> WebhookSecret:
    row = WebhookSecret(partner=partner_a, endpoint_url="https://a.example/hooks/orders")
    row.save()
    row.secret_sealed = crypto.seal_secrets({"secret": OLD}, aad=row.secrets_aad)
    row.save()
    return row


@pytest.mark.django_db
def test_rotation_keeps_the_old_secret_valid_for_the_overlap(
    inbox: WebhookSecret, monkeypatch: Any
) -> None:
    monkeypatch.setenv("NEW_HOOK_SECRET", NEW)
    out = StringIO()
    call_command("webhook_secret_rotate", "p_a01", "orders", "--secret-env", "NEW_HOOK_SECRET",
                 stdout=out)  # fmt: skip
    inbox.refresh_from_db()
    assert webhook_secret_values(inbox) == [NEW, OLD]
    assert "the previous secret is accepted until" in out.getvalue()
    assert AuditEvent.objects.filter(action="webhook_secret.rotate").count() == 1
    assert NEW not in str(AuditEvent.objects.get(action="webhook_secret.rotate").data)


@pytest.mark.django_db
def test_no_overlap_ends_the_old_secret_at_once(inbox: WebhookSecret, monkeypatch: Any) -> None:
    monkeypatch.setenv("NEW_HOOK_SECRET", NEW)
    call_command("webhook_secret_rotate", "p_a01", "orders", "--secret-env", "NEW_HOOK_SECRET",
                 "--overlap-hours", "0", stdout=StringIO())  # fmt: skip
    inbox.refresh_from_db()
    assert webhook_secret_values(inbox) == [NEW]


@pytest.mark.django_db
def test_an_unknown_inbox_or_a_short_secret_changes_nothing(
    inbox: WebhookSecret, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SHORT", "abc")
    with pytest.raises(CommandError, match="no webhook secret with inbox 'nope'"):
        call_command("webhook_secret_rotate", "p_a01", "nope", "--secret-env", "SHORT")
    with pytest.raises(CommandError, match="--secret-env SHORT"):
        call_command("webhook_secret_rotate", "p_a01", "orders", "--secret-env", "SHORT")
    inbox.refresh_from_db()
    assert webhook_secret_values(inbox) == [OLD]
