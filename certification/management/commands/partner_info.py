from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.models import Partner
from partners.secret_rules import display_url


class Command(BaseCommand):
    help = (
        "Print a partner's hosted-mock base URL, webhook inbox URLs, AS2 URL and endpoints "
        "(never a secret), for configuring its sandbox or for scripts (--json)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", help="the partner ID, e.g. p_001")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, partner: str, json: bool, **options: Any) -> None:
        from certification.traffic import inbox_url, mock_base_url

        row = Partner.objects.filter(external_id=partner).first()
        if row is None:
            raise CommandError(f"no partner '{partner}'", returncode=2)
        info = {
            "partner": row.external_id,
            "name": row.name,
            "mockBaseUrl": mock_base_url(row),
            "as2Url": row.as2_url,
            "inboxes": [
                {
                    "name": w.name,
                    "url": inbox_url(row, w.name),
                    "profile": w.profile,
                    "windowS": w.window_s,
                    "secretSet": bool(w.secret_sealed),
                }
                for w in row.webhook_secrets.order_by("name")
            ],
            "endpoints": [
                {
                    "name": e.name,
                    "kind": e.kind,
                    "baseUrl": display_url(e.base_url)
                    if e.kind != "postgresql"
                    else "(PostgreSQL, not shown)",
                    "auth": e.auth_kind,
                    "default": e.is_default,
                }
                for e in row.endpoints.order_by("name")
            ],
        }
        if json:
            self.stdout.write(_dumps(info))
            return
        self.stdout.write(f"{row.external_id} {row.name}")
        self.stdout.write(f"  hosted mocks: {info['mockBaseUrl']}/<host>/<path>")
        self.stdout.write(f"  AS2 (the partner's 997s, 855s and MDNs): {info['as2Url']}")
        for inbox in info["inboxes"]:
            self.stdout.write(f"  inbox {inbox['name']}: {inbox['url']} ({inbox['profile']})")
        for endpoint in info["endpoints"]:
            mark = " (default)" if endpoint["default"] else ""
            self.stdout.write(
                f"  endpoint {endpoint['name']}{mark}: {endpoint['baseUrl']} "
                f"[auth {endpoint['auth']}]"
            )


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
