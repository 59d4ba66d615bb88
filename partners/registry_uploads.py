"""Registry CSVs held between their preview and the importer's confirmation.

The files may hold webhook secrets in clear, so they are kept only as a ``RegistryUpload`` row:
sealed with the secrets key ring (bound to a random token), owned by the user who uploaded them,
and for at most ``UPLOAD_TTL``. Confirming or cancelling deletes the row; expired rows are
deleted whenever a preview is stored or taken. Nothing of the files goes into the session.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from partners import crypto
from partners.models import RegistryUpload

UPLOAD_TTL = timedelta(minutes=30)


class UploadGone(Exception):
    """The preview cannot be confirmed; the message says why and is fit to show the user."""


@transaction.atomic
def registry_upload_hold(*, files: Sequence[tuple[str, bytes]], by: Any) -> str:
    """Store previewed files sealed; returns the token that confirms or cancels them."""
    now = timezone.now()
    RegistryUpload.objects.filter(expires_at__lte=now).delete()
    upload = RegistryUpload(
        token=secrets.token_urlsafe(32), uploaded_by=by, expires_at=now + UPLOAD_TTL
    )
    payload = json.dumps([[name, base64.b64encode(data).decode()] for name, data in files])
    upload.files_sealed = crypto.seal_text(payload, aad=upload.secrets_aad)
    upload.save(force_insert=True)
    return upload.token


def registry_upload_take(*, token: str, by: Any) -> list[tuple[str, bytes]]:
    """Delete ``by``'s held upload and return its files. Raises ``UploadGone``.

    The row is deleted whatever happens next: a preview is confirmed at most once.
    """
    now = timezone.now()
    with transaction.atomic():
        upload = RegistryUpload.objects.select_for_update().filter(pk=token, uploaded_by=by).first()
        if upload is not None:
            aad = upload.secrets_aad  # before delete(), which clears the primary key
            upload.delete()
        RegistryUpload.objects.filter(expires_at__lte=now).delete()
    if upload is None:
        raise UploadGone(
            "That preview has expired or was already imported; upload the files again."
        )
    if upload.expires_at <= now:
        minutes = int(UPLOAD_TTL.total_seconds() // 60)
        raise UploadGone(
            f"That preview has expired (previews are kept for {minutes} minutes); "
            "upload the files again."
        )
    try:
        payload = json.loads(crypto.open_text(upload.files_sealed, aad=aad))
    except crypto.SecretDecryptionError as exc:
        raise UploadGone(
            f"That preview can no longer be read ({exc}); upload the files again."
        ) from None
    return [(name, base64.b64decode(data)) for name, data in payload]


def registry_upload_discard(*, token: str, by: Any) -> bool:
    """Delete ``by``'s held upload; False if there was none."""
    deleted, _ = RegistryUpload.objects.filter(pk=token, uploaded_by=by).delete()
    return bool(deleted)
