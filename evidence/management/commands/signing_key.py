from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence import signing


class Command(BaseCommand):
    help = (
        "Print the public key that signs evidence bundles and its fingerprint (the value to "
        "publish and to compare with a bundle's signing-key.pem). --generate prints a new "
        "private key for EVIDENCE_SIGNING_KEY instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--generate",
            action="store_true",
            help="print a NEW Ed25519 private key (PEM) to set as EVIDENCE_SIGNING_KEY",
        )
        group.add_argument(
            "--fingerprint", action="store_true", help="print only the current key's fingerprint"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate"]:
            # Generating needs no configured key: this is how production gets its first one.
            pem = signing.generate_pem()
            self.stdout.write(pem, ending="")
            self.stderr.write(
                "Set this as EVIDENCE_SIGNING_KEY (as is, or on one line with \\n for the "
                "newlines) in the production environment; keep it secret."
            )
            return
        try:
            key = signing.signing_key()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from None
        fp = signing.fingerprint(key)
        if options["fingerprint"]:
            self.stdout.write(fp)
            return
        self.stdout.write(signing.public_key_pem(key), ending="")
        self.stdout.write(f"fingerprint: {fp}")
