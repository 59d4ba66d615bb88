from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from partners.models import Partner, RetryPolicy

DEMO = Path(settings.BASE_DIR) / "demo" / "registry"
UPLOAD = reverse("partners:registry_import")
CONFIRM = reverse("partners:registry_import_confirm")


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
