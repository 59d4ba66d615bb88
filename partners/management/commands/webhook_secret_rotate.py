from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.models import WebhookSecret
from partners.secret_rules import short_secret_message
from partners.services import webhook_secret_rotate


class Command(BaseCommand):
    help = (
        "Rotate a partner's webhook secret: the new one signs and verifies from now on, the "
        "previous one is still accepted for --overlap-hours (default 24; 0 ends it at once). "
        "The new secret is read from an environment variable or stdin, never the command line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", help="the partner ID, e.g. p_001")
        parser.add_argument("inbox", help="the webhook secret's inbox name, e.g. orders")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--secret-env", metavar="VAR", help="read the new secret from VAR")
        source.add_argument("--secret-stdin", action="store_true", help="read it from stdin")
        parser.add_argument("--overlap-hours", type=float, default=24.0)

    def handle(self, *args: Any, **options: Any) -> None:
        row = (
            WebhookSecret.objects.select_related("partner")
            .filter(partner__external_id=options["partner"], name=options["inbox"])
            .first()
        )
        if row is None:
            raise CommandError(
                f"{options['partner']} has no webhook secret with inbox '{options['inbox']}'",
                returncode=2,
            )
        if options["secret_env"]:
            secret = os.environ.get(options["secret_env"], "")
            where = f"--secret-env {options['secret_env']}"
        else:
            secret = sys.stdin.read().strip()
            where = "--secret-stdin"
        if not secret:
            raise CommandError(f"{where}: no secret given", returncode=2)
        if problem := short_secret_message("webhook secret", secret, stored=False):
            raise CommandError(f"{where}: {problem}", returncode=2)
        if not 0 <= options["overlap_hours"] <= 24 * 30:
            raise CommandError("--overlap-hours must be from 0 to 720", returncode=2)
        row = webhook_secret_rotate(
            row=row,
            new_secret=secret,
            overlap_s=int(options["overlap_hours"] * 3600),
            by="manage.py webhook_secret_rotate",
        )
        until = row.previous_valid_until
        self.stdout.write(
            f"rotated {row.partner.external_id}/{row.name}: "
            + (
                f"the previous secret is accepted until {until:%Y-%m-%dT%H:%M:%SZ}"
                if until
                else "the previous secret is no longer accepted"
            )
        )
