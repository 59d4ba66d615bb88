"""``manage.py partner_info``: the URLs a partner configures its sandbox with, for scripts."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from partners.models import Endpoint, Partner, WebhookSecret


@pytest.mark.django_db
def test_partner_info_json_lists_mock_base_inboxes_and_endpoints_without_secrets(
    partner_a: Partner, endpoint_a: Endpoint, settings: object
) -> None:
    settings.PUBLIC_BASE_URL = "https://certdash.example"  # type: ignore[attr-defined]
    WebhookSecret(partner=partner_a, endpoint_url="https://a.example/hooks/orders").save()
    out = StringIO()
    call_command("partner_info", partner_a.external_id, "--json", stdout=out)
    info = json.loads(out.getvalue())
    assert info["mockBaseUrl"] == f"https://certdash.example/mock/{partner_a.public_token}"
    assert info["inboxes"][0]["url"] == (
        f"https://certdash.example/inbox/{partner_a.public_token}/orders"
    )
    assert info["endpoints"][0]["name"] == "api"
    assert "alpha-key-SECRET-value" not in out.getvalue()


@pytest.mark.django_db
def test_partner_info_gives_the_as2_url_the_partner_posts_its_997s_to(
    partner_a: Partner, settings: object
) -> None:
    settings.PUBLIC_BASE_URL = "https://certdash.example"  # type: ignore[attr-defined]
    out = StringIO()
    call_command("partner_info", partner_a.external_id, stdout=out)
    assert "AS2 (the partner's 997s, 855s and MDNs): https://certdash.example/as2/" in (
        out.getvalue()
    )
    assert partner_a.public_token in out.getvalue()


@pytest.mark.django_db
def test_partner_info_for_an_unknown_partner_says_so() -> None:
    with pytest.raises(CommandError, match="no partner 'p_nope'"):
        call_command("partner_info", "p_nope")
