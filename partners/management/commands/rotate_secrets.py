from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from partners.crypto import SecretDecryptionError
from partners.services import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of SECRETS_ENCRYPTION_KEYS. Put the "
        "new key first, keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            changed = secrets_rotate()
        except SecretDecryptionError as exc:
            raise CommandError(f"{exc}; nothing was re-encrypted.") from None
        self.stdout.write(f"Re-encrypted {changed} secret row(s) with the active key.")
