"""Webhook signature profiles: each one valid, tampered, stale, signed with the wrong secret,
and during a rotation; checked against the published Standard Webhooks vector and the stripe
package's own signer."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from certification.engine.signatures import PROFILES, event_id, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a valid Standard Webhooks key, for all
OTHER = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
BODY = b'{"id":"evt_1","type":"order.created","data":{"order":42}}'
WINDOW = 300


def _signed(profile: str, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    return sign(profile, secret, BODY, timestamp=ts, event_id="msg_1")


@pytest.mark.parametrize("profile", PROFILES)
def test_a_correctly_signed_delivery_is_valid(profile: str) -> None:
    verdict = verify(profile, [SECRET], _signed(profile), BODY, window_s=WINDOW)
    assert verdict.valid, verdict.reason


@pytest.mark.parametrize("profile", PROFILES)
def test_a_tampered_body_is_rejected(profile: str) -> None:
    tampered = BODY.replace(b"42", b"43")
    verdict = verify(profile, [SECRET], _signed(profile), tampered, window_s=WINDOW)
    assert not verdict.valid
    assert "does not match" in verdict.reason


@pytest.mark.parametrize("profile", ["playbook", "stripe", "standard"])
def test_a_stale_timestamp_is_rejected_even_when_the_signature_matches(profile: str) -> None:
    old = int(time.time()) - WINDOW - 60
    verdict = verify(profile, [SECRET], _signed(profile, ts=old), BODY, window_s=WINDOW)
    assert not verdict.valid
    assert "outside the 300 s window" in verdict.reason


def test_github_signs_no_timestamp_so_an_old_delivery_still_verifies() -> None:
    old = int(time.time()) - 10 * WINDOW
    assert verify("github", [SECRET], _signed("github", ts=old), BODY, window_s=WINDOW).valid


@pytest.mark.parametrize("profile", PROFILES)
def test_a_delivery_signed_with_another_secret_is_rejected(profile: str) -> None:
    verdict = verify(profile, [SECRET], _signed(profile, secret=OTHER), BODY, window_s=WINDOW)
    assert not verdict.valid


@pytest.mark.parametrize("profile", PROFILES)
def test_during_a_rotation_both_secrets_verify(profile: str) -> None:
    for used in (SECRET, OTHER):
        verdict = verify(
            profile, [OTHER, SECRET], _signed(profile, secret=used), BODY, window_s=WINDOW
        )
        assert verdict.valid, (used, verdict.reason)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_missing_or_garbled_header_is_invalid_not_an_exception(profile: str) -> None:
    assert not verify(profile, [SECRET], {}, BODY, window_s=WINDOW).valid
    garbled = dict.fromkeys(_signed(profile), "t=x,,v1")
    assert not verify(profile, [SECRET], garbled, BODY, window_s=WINDOW).valid


def test_the_published_standard_webhooks_vector_verifies() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    verdict = verify("standard", [SECRET], headers, body, window_s=WINDOW, now=1614265330)
    assert verdict.valid, verdict.reason
    assert sign("standard", SECRET, body, timestamp=1614265330, event_id=headers["webhook-id"]) == (
        headers
    )


def test_our_stripe_signature_is_the_one_stripe_computes() -> None:
    ts = int(time.time())
    ours = sign("stripe", "whsec_test", BODY, timestamp=ts)["Stripe-Signature"]
    theirs = stripe.WebhookSignature.generate_signature_header(BODY.decode(), "whsec_test", ts)
    assert ours == theirs


def test_no_secret_configured_is_invalid_with_a_reason() -> None:
    verdict = verify("playbook", [], _signed("playbook"), BODY, window_s=WINDOW)
    assert not verdict.valid and "no webhook secret" in verdict.reason


def test_the_event_id_comes_only_from_what_the_signature_covers() -> None:
    assert event_id("standard", {"Webhook-Id": "msg_9"}, BODY) == "msg_9"
    # An unsigned header cannot make a replayed delivery look new.
    assert event_id("stripe", {"X-Event-Id": "fresh", "Idempotency-Key": "k"}, BODY) == "evt_1"
    assert event_id("playbook", {"X-Event-Id": "fresh"}, BODY) == "evt_1"
    assert event_id("github", {"X-GitHub-Delivery": "d-1"}, b"{}") == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert event_id("playbook", {}, b"not json") == ""


def test_a_long_event_id_is_kept_whole_as_its_hash() -> None:
    long_id = "evt_" + "x" * 300
    body = json.dumps({"id": long_id}).encode()
    other = json.dumps({"id": long_id + "y"}).encode()
    assert event_id("playbook", {}, body) != event_id("playbook", {}, other)
    assert event_id("playbook", {}, body).startswith("sha256:")


def test_stripe_refuses_a_timestamp_far_in_the_future() -> None:
    future = int(time.time()) + 10 * 365 * 86400
    verdict = verify("stripe", [SECRET], _signed("stripe", ts=future), BODY, window_s=WINDOW)
    assert not verdict.valid and "in the future" in verdict.reason


@pytest.mark.parametrize("profile", ["playbook", "stripe", "standard"])
def test_an_absurd_timestamp_is_malformed_not_a_crash(profile: str) -> None:
    headers = _signed(profile)
    key = next(iter(headers))
    absurd = {
        "playbook": {"X-Signature": "t=100000000000000000000, v1=00"},
        "stripe": {"Stripe-Signature": "t=100000000000000000000,v1=00"},
        "standard": {**headers, "webhook-timestamp": "100000000000000000000"},
    }[profile]
    assert key
    verdict = verify(profile, [SECRET], absurd, BODY, window_s=WINDOW)
    assert not verdict.valid and "malformed" in verdict.reason


@pytest.mark.parametrize("profile", ["stripe", "standard"])
def test_a_body_that_is_not_utf8_is_refused_with_that_reason(profile: str) -> None:
    body = b"\xff\xfe{}"
    verdict = verify(profile, [SECRET], _signed(profile), body, window_s=WINDOW)
    assert not verdict.valid and "not UTF-8" in verdict.reason
