from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from partners.crypto import new_key


class Command(BaseCommand):
    help = "Print a fresh entry for SECRETS_ENCRYPTION_KEYS (kid:base64key)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid", help="A short key id, e.g. 2026-11")

    def handle(self, *args: Any, kid: str, **options: Any) -> None:
        self.stdout.write(f"{kid}:{new_key()}")
