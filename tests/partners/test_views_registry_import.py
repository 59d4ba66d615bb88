from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from partners import crypto
from partners.models import Partner, RegistryUpload, RetryPolicy, WebhookSecret
from tests import factories

DEMO = Path(settings.BASE_DIR) / "demo" / "registry"
UPLOAD = reverse("partners:registry_import")
CONFIRM = reverse("partners:registry_import_confirm")
CANCEL = reverse("partners:registry_import_cancel")


def _file(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content or (DEMO / name).read_bytes(), "text/csv")


def test_upload_shows_a_preview_and_changes_nothing(qa_client: Client) -> None:
    response = qa_client.post(UPLOAD, {"files": [_file("partners.csv"), _file("retry_policy.csv")]})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Preview" in body and "p_001" in body and "webhook.delivery" in body
    assert Partner.objects.count() == 0


def test_confirming_the_preview_imports_the_files(qa_client: Client) -> None:
    response = qa_client.post(UPLOAD, {"files": [_file("partners.csv"), _file("retry_policy.csv")]})
    token = response.context["token"]
    response = qa_client.post(CONFIRM, {"token": token}, follow=True)
    assert "Registry imported: 11 created" in response.content.decode()
    assert Partner.objects.count() == 3 and RetryPolicy.objects.count() == 3


def test_confirm_with_a_stale_token_imports_nothing(qa_client: Client) -> None:
    qa_client.post(UPLOAD, {"files": [_file("partners.csv")]})
    response = qa_client.post(CONFIRM, {"token": "forged"}, follow=True)
    assert "That preview has expired" in response.content.decode()
    assert Partner.objects.count() == 0


def test_bad_row_is_listed_with_file_and_line_and_nothing_is_imported(qa_client: Client) -> None:
    bad = b"partner_id,name,mode,security,contact,sla\np_1,A,API,,,\np_2,B,API,,,p95 fast\n"
    response = qa_client.post(UPLOAD, {"files": [_file("mine.csv", bad)]})
    body = response.content.decode()
    assert response.status_code == 400
    assert "mine.csv:3: sla: cannot parse SLA &quot;p95 fast&quot;" in body
    assert "nothing was imported" in body
    assert "Confirm import" not in body
    assert Partner.objects.count() == 0


def test_oversized_upload_is_refused(qa_client: Client, settings: object) -> None:
    settings.REGISTRY_UPLOAD_MAX_BYTES = 10
    response = qa_client.post(UPLOAD, {"files": [_file("partners.csv")]})
    assert "the limit is 10" in response.content.decode()


def test_auditor_cannot_import(auditor_client: Client) -> None:
    assert auditor_client.get(UPLOAD).status_code == 403
    assert auditor_client.post(CONFIRM, {"token": "x"}).status_code == 403


def test_partner_user_cannot_import(partner_a_client: Client) -> None:
    assert partner_a_client.post(UPLOAD, {"files": [_file("partners.csv")]}).status_code == 403
    assert not Partner.objects.filter(external_id="p_001").exists()


def test_anonymous_user_is_sent_to_login(client: Client, db: object) -> None:
    assert client.get(UPLOAD).status_code == 302


HOOKS = (
    b"partner_id,endpoint,secret,window_s\np_001,https://acme.example/h,whsec-PLAIN-7f3a9c,600\n"
)
SECRET = "whsec-PLAIN-7f3a9c"


def _readable_forms(secret: str) -> list[str]:
    """The secret as it would appear in clear, raw or base64-encoded at any alignment."""
    raw = secret.encode()
    return [secret] + [base64.b64encode(raw[i:]).decode()[:12] for i in range(3)]


def _preview_with_a_secret(client: Client) -> str:
    response = client.post(UPLOAD, {"files": [_file("partners.csv"), _file("hooks.csv", HOOKS)]})
    assert response.status_code == 200 and "Confirm import" in response.content.decode()
    return response.context["token"]


def test_previewed_secret_is_not_readable_in_the_session_or_the_database(
    qa_client: Client,
) -> None:
    _preview_with_a_secret(qa_client)
    stored = [str(s.get_decoded()) + s.session_data for s in Session.objects.all()]
    stored += [u.files_sealed + u.token for u in RegistryUpload.objects.all()]
    assert Session.objects.exists() and RegistryUpload.objects.count() == 1
    assert not [form for form in _readable_forms(SECRET) for text in stored if form in text]


def test_previewed_secret_is_imported_on_confirm_and_the_upload_deleted(
    qa_client: Client,
) -> None:
    token = _preview_with_a_secret(qa_client)
    response = qa_client.post(CONFIRM, {"token": token}, follow=True)
    assert "Registry imported" in response.content.decode()
    row = WebhookSecret.objects.get()
    assert crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad) == {"secret": SECRET}
    assert not RegistryUpload.objects.exists()
    again = qa_client.post(CONFIRM, {"token": token}, follow=True)
    assert "That preview has expired or was already imported" in again.content.decode()


def test_expired_preview_is_refused_with_a_clear_message_and_deleted(qa_client: Client) -> None:
    token = _preview_with_a_secret(qa_client)
    RegistryUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = qa_client.post(CONFIRM, {"token": token}, follow=True)
    assert (
        "That preview has expired (previews are kept for 30 minutes); upload the files again."
        in response.content.decode()
    )
    assert not RegistryUpload.objects.exists() and not Partner.objects.exists()


def test_preview_expires_30_minutes_after_upload(qa_client: Client) -> None:
    before = timezone.now()
    _preview_with_a_secret(qa_client)
    expires = RegistryUpload.objects.get().expires_at
    assert timedelta(minutes=30) <= expires - before <= timedelta(minutes=30, seconds=30)


def test_a_new_upload_deletes_expired_previews(qa_client: Client) -> None:
    _preview_with_a_secret(qa_client)
    RegistryUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _preview_with_a_secret(qa_client)
    assert RegistryUpload.objects.count() == 1


def test_cancel_deletes_the_preview(qa_client: Client) -> None:
    token = _preview_with_a_secret(qa_client)
    response = qa_client.post(CANCEL, {"token": token}, follow=True)
    assert "Import cancelled" in response.content.decode()
    assert not RegistryUpload.objects.exists()
    assert qa_client.post(CONFIRM, {"token": token}).status_code == 302
    assert not Partner.objects.exists()


def test_another_importer_cannot_confirm_or_cancel_my_preview(qa_client: Client) -> None:
    token = _preview_with_a_secret(qa_client)
    other = Client()
    other.force_login(factories.qa_lead("qa2"))
    other.post(CANCEL, {"token": token})
    response = other.post(CONFIRM, {"token": token}, follow=True)
    assert "That preview has expired" in response.content.decode()
    assert RegistryUpload.objects.count() == 1 and not Partner.objects.exists()


def test_preview_sealed_with_a_dropped_key_asks_for_a_new_upload(
    qa_client: Client, settings: Any
) -> None:
    settings.SECRETS_ENCRYPTION_KEYS = f"k0:{crypto.new_key()}"
    token = _preview_with_a_secret(qa_client)
    settings.SECRETS_ENCRYPTION_KEYS = f"k1:{crypto.new_key()}"
    response = qa_client.post(CONFIRM, {"token": token}, follow=True)
    assert "That preview can no longer be read (secret sealed with key" in (
        response.content.decode().replace("&#x27;", "'")
    )
    assert not Partner.objects.exists()


def test_partner_user_cannot_cancel(partner_a_client: Client) -> None:
    assert partner_a_client.post(CANCEL, {"token": "x"}).status_code == 403
