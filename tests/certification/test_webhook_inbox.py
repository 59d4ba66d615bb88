"""The webhook inbox over real HTTP (live server, PostgreSQL): each signature profile accepted,
tampered, stale, wrong secret and rotated; 413 before any signature work; dedupe by partner +
event id, also under 20 concurrent duplicate deliveries; one partner cannot pre-empt another."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3

from certification import traffic
from certification.engine.signatures import sign
from certification.models import CapturedRequest, InboxEvent
from partners import crypto
from partners.models import Partner, WebhookSecret
from partners.services import webhook_secret_rotate

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
PROFILES = ("playbook", "stripe", "standard", "github")
HTTP = urllib3.PoolManager(retries=False, maxsize=32)


def _inbox(partner: Partner, profile: str, secret: str = SECRET) -> WebhookSecret:
    row = WebhookSecret(
        partner=partner, endpoint_url="https://partner.example/webhooks/orders", profile=profile
    )
    row.save()
    row.secret_sealed = crypto.seal_secrets({"secret": secret}, aad=row.secrets_aad)
    row.save()
    return row


def _deliver(
    live_server: Any,
    row: WebhookSecret,
    *,
    event: str = "evt_1",
    secret: str = SECRET,
    ts: int | None = None,
    tamper: bool = False,
) -> urllib3.BaseHTTPResponse:
    body = json.dumps({"id": event, "type": "order.created", "data": {"order": 42}}).encode()
    headers = sign(row.profile, secret, body, timestamp=ts, event_id=event)
    if row.profile == "github":
        headers["X-GitHub-Delivery"] = event
    sent = body.replace(b"42", b"43") if tamper else body
    return HTTP.request(
        "POST",
        traffic.inbox_url(row.partner, row.name).replace("http://127.0.0.1:8000", live_server.url),
        body=sent,
        headers={"Content-Type": "application/json", **headers},
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_a_signed_delivery_is_accepted_and_processed_once(
    live_server: Any, partner_a: Partner, profile: str
) -> None:
    row = _inbox(partner_a, profile)
    response = _deliver(live_server, row)
    assert response.status == 200 and response.json()["status"] == "accepted"
    again = _deliver(live_server, row)
    assert again.status == 200 and again.json()["status"] == "duplicate"
    assert InboxEvent.objects.get().deliveries == 2
    first, second = CapturedRequest.objects.order_by("id")
    assert (first.signature_valid, first.replayed, second.replayed) == (True, False, True)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_tampered_body_gets_401_and_nothing_is_processed(
    live_server: Any, partner_a: Partner, profile: str
) -> None:
    row = _inbox(partner_a, profile)
    response = _deliver(live_server, row, tamper=True)
    assert response.status == 401
    assert "does not match" in response.json()["reason"]
    assert not InboxEvent.objects.exists()
    assert CapturedRequest.objects.get().signature_valid is False


@pytest.mark.parametrize("profile", ["playbook", "stripe", "standard"])
def test_a_stale_delivery_gets_401(live_server: Any, partner_a: Partner, profile: str) -> None:
    row = _inbox(partner_a, profile)
    response = _deliver(live_server, row, ts=int(time.time()) - row.window_s - 60)
    assert response.status == 401
    assert "outside the 600 s window" in response.json()["reason"]
    assert not InboxEvent.objects.exists()


@pytest.mark.parametrize("profile", PROFILES)
def test_a_delivery_signed_with_the_wrong_secret_gets_401(
    live_server: Any, partner_a: Partner, profile: str
) -> None:
    row = _inbox(partner_a, profile)
    assert _deliver(live_server, row, secret=NEW_SECRET).status == 401


@pytest.mark.parametrize("profile", PROFILES)
def test_during_a_rotation_old_and_new_secrets_are_accepted_then_only_the_new(
    live_server: Any, partner_a: Partner, profile: str
) -> None:
    row = _inbox(partner_a, profile)
    row = webhook_secret_rotate(row=row, new_secret=NEW_SECRET, overlap_s=3600, by="test")
    assert _deliver(live_server, row, event="e-old", secret=SECRET).status == 200
    assert _deliver(live_server, row, event="e-new", secret=NEW_SECRET).status == 200
    WebhookSecret.objects.filter(pk=row.pk).update(previous_valid_until=None)
    assert _deliver(live_server, row, event="e-old-2", secret=SECRET).status == 401


def test_an_oversized_body_gets_413_before_any_signature_work(
    live_server: Any, partner_a: Partner, settings: Any
) -> None:
    row = _inbox(partner_a, "playbook")
    settings.INBOX_MAX_BYTES = 100
    response = HTTP.request(
        "POST",
        f"{live_server.url}/inbox/{partner_a.public_token}/{row.name}",
        body=b"{" + b" " * 500 + b"}",
        headers={"X-Signature": "t=1, v1=00"},
    )
    assert response.status == 413
    assert not CapturedRequest.objects.exists()


def test_an_unknown_inbox_is_404(live_server: Any, partner_a: Partner) -> None:
    _inbox(partner_a, "playbook")
    url = f"{live_server.url}/inbox/{partner_a.public_token}/nope"
    assert HTTP.request("POST", url, body=b"{}").status == 404


def test_twenty_concurrent_duplicates_are_processed_exactly_once(
    live_server: Any, partner_a: Partner
) -> None:
    row = _inbox(partner_a, "playbook")
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: _deliver(live_server, row).json()["status"], range(20)))
    assert statuses.count("accepted") == 1 and statuses.count("duplicate") == 19
    assert InboxEvent.objects.get().deliveries == 20
    assert CapturedRequest.objects.filter(replayed=False).count() == 1


def test_one_partner_cannot_pre_empt_another_partners_event_ids(
    live_server: Any, partner_a: Partner, partner_b: Partner
) -> None:
    a, b = _inbox(partner_a, "playbook"), _inbox(partner_b, "playbook")
    assert _deliver(live_server, a, event="evt_same").json()["status"] == "accepted"
    assert _deliver(live_server, b, event="evt_same").json()["status"] == "accepted"


def test_a_replayed_delivery_with_a_new_unsigned_id_header_is_still_a_replay(
    live_server: Any, partner_a: Partner
) -> None:
    row = _inbox(partner_a, "playbook")
    body = json.dumps({"id": "evt_3", "type": "order.created"}).encode()
    url = f"{live_server.url}/inbox/{partner_a.public_token}/{row.name}"
    statuses = []
    for n in range(3):
        headers = {"X-Event-Id": f"fresh-{n}", "Idempotency-Key": f"k-{n}",
                   **sign("playbook", SECRET, body)}  # fmt: skip
        statuses.append(HTTP.request("POST", url, body=body, headers=headers).json()["status"])
    assert statuses == ["accepted", "duplicate", "duplicate"]


def test_a_body_with_a_nul_byte_is_recorded_not_a_server_error(
    live_server: Any, partner_a: Partner
) -> None:
    row = _inbox(partner_a, "playbook")
    body = b'{"id": "evt_nul", "x": "\\u0000\x00"}'
    url = f"{live_server.url}/inbox/{partner_a.public_token}/{row.name}"
    response = HTTP.request("POST", url, body=body, headers=sign("playbook", SECRET, body))
    assert response.status in (200, 401)
    assert CapturedRequest.objects.get().request_body.startswith("base64:")
