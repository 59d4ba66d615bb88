"""Webhook signature profiles: signing what we send and verifying what partners send.

Four profiles, each a scheme partners use in the field:

``playbook``
    ``X-Signature: t=<unix ts>, v1=<hex hmac-sha256(secret, "<ts>.<raw body>")>`` (the B2B
    playbook's scheme; spaces after commas allowed, several ``v1`` accepted).
``stripe``
    ``Stripe-Signature: t=<ts>,v1=<hex>``: verified by the ``stripe`` package's
    ``WebhookSignature.verify_header`` with our window as its tolerance.
``standard``
    Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature:
    v1,<base64 hmac-sha256(key, "<id>.<ts>.<body>")>`` with a ``whsec_<base64 key>`` secret.
    The ``standardwebhooks`` package computes the signature; it is wrapped because its
    ``verify()`` has a fixed five-minute tolerance and raises ``ValueError`` on a malformed
    header, and its ``sign()`` reads a naive datetime as UTC whatever it meant.
``github``
    ``X-Hub-Signature-256: sha256=<hex hmac-sha256(secret, raw body)>``. GitHub signs no
    timestamp, so a stale delivery cannot be told from a fresh one: dedupe by
    ``X-GitHub-Delivery`` is the only replay defence.

Verification works on the raw body, before anything parses it, compares in constant time and
accepts any of the given secrets (two during a rotation). Pure Python, no Django.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

PROFILES = ("playbook", "stripe", "standard", "github")
MAX_TIMESTAMP = 2**33  # beyond the year 2242: not a timestamp anyone signs
PROFILE_LABELS = {
    "playbook": "Playbook (X-Signature: t=…, v1=…)",
    "stripe": "Stripe (Stripe-Signature)",
    "standard": "Standard Webhooks (webhook-id / -timestamp / -signature)",
    "github": "GitHub (X-Hub-Signature-256)",
}
SIGNATURE_HEADERS = {
    "playbook": ("x-signature",),
    "stripe": ("stripe-signature",),
    "standard": ("webhook-signature", "webhook-id", "webhook-timestamp"),
    "github": ("x-hub-signature-256",),
}


@dataclass(frozen=True)
class Verdict:
    """Whether a delivery's signature is valid, and if not why (never quoting a secret)."""

    valid: bool
    reason: str = ""
    timestamp: int | None = None


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def sign(
    profile: str,
    secret: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    event_id: str = "",
) -> dict[str, str]:
    """The headers that sign ``body`` under ``profile`` at ``timestamp`` (now by default)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    if profile == "playbook":
        signature = _hmac_hex(secret, f"{ts}.".encode() + body)
        return {"X-Signature": f"t={ts}, v1={signature}"}
    if profile == "stripe":
        signature = _hmac_hex(secret, f"{ts}.".encode() + body)
        return {"Stripe-Signature": f"t={ts},v1={signature}"}
    if profile == "standard":
        from standardwebhooks.webhooks import Webhook

        when = datetime.fromtimestamp(ts, tz=UTC)  # aware UTC: sign() replaces tzinfo
        value = Webhook(secret).sign(event_id, when, body.decode("utf-8"))
        return {"webhook-id": event_id, "webhook-timestamp": str(ts), "webhook-signature": value}
    if profile == "github":
        return {"X-Hub-Signature-256": "sha256=" + _hmac_hex(secret, body)}
    raise ValueError(f"unknown signature profile '{profile}'; use {', '.join(PROFILES)}")


_PAIR = re.compile(r"\s*([A-Za-z0-9]+)=([^,]*)")


def _t_v1(header: str) -> tuple[int | None, list[str]]:
    """``t=<ts>, v1=<sig>[, v1=<sig>]`` -> (ts, [sig...]); (None, []) when malformed."""
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        match = _PAIR.fullmatch(part)
        if match is None:
            return None, []
        key, value = match.group(1), match.group(2).strip()
        if key == "t":
            if not value.isdigit() or ts is not None:
                return None, []
            ts = int(value)
        elif key == "v1":
            sigs.append(value)
    return ts, sigs


def _fresh(ts: int, window_s: int, now: float) -> str:
    if ts < now - window_s:
        return f"timestamp {int(now - ts)} s old, outside the {window_s} s window"
    if ts > now + window_s:
        return f"timestamp {int(ts - now)} s in the future, outside the {window_s} s window"
    return ""


def verify(
    profile: str,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    window_s: int,
    now: float | None = None,
) -> Verdict:
    """Verify a delivery's signature with any of ``secrets``; never raises on bad input."""
    if not secrets:
        return Verdict(False, "no webhook secret is configured for this inbox")
    now = time.time() if now is None else now
    h = _lower(headers)
    try:
        if profile in ("playbook", "stripe"):
            return _verify_t_v1(profile, secrets, h, body, window_s, now)
        if profile == "standard":
            return _verify_standard(secrets, h, body, window_s, now)
        if profile == "github":
            return _verify_github(secrets, h, body)
    except UnicodeDecodeError:
        return Verdict(False, f"the body is not UTF-8 text, which the {profile} profile signs")
    except (ValueError, TypeError, OverflowError, OSError):
        return Verdict(False, "malformed signature header")
    return Verdict(False, f"unknown signature profile '{profile}'")


def _verify_t_v1(
    profile: str, secrets: Sequence[str], h: dict[str, str], body: bytes, window_s: int, now: float
) -> Verdict:
    name = "X-Signature" if profile == "playbook" else "Stripe-Signature"
    header = h.get(name.lower())
    if not header:
        return Verdict(False, f"no {name} header")
    ts, sigs = _t_v1(header)
    if ts is None or not sigs or ts > MAX_TIMESTAMP:
        return Verdict(False, f"malformed {name} header (expected t=<unix time>, v1=<hex>)")
    if profile == "stripe":
        import stripe

        payload = body.decode("utf-8")
        for secret in secrets:
            try:
                stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=window_s)
            except stripe.SignatureVerificationError as exc:
                if "timestamp outside the tolerance zone" in str(exc).lower():
                    return Verdict(False, _fresh(ts, window_s, now) or "stale timestamp", ts)
                continue
            except Exception:  # the library's own parsing of odd headers
                return Verdict(False, f"malformed {name} header", ts)
            # The library refuses old timestamps only; a future one is as suspect.
            stale = _fresh(ts, window_s, now)
            return Verdict(not stale, stale, ts)
        return Verdict(False, "signature does not match (tampered body or wrong secret)", ts)
    for secret in secrets:
        expected = _hmac_hex(secret, f"{ts}.".encode() + body)
        if any(hmac.compare_digest(expected, sig) for sig in sigs):
            stale = _fresh(ts, window_s, now)
            return Verdict(not stale, stale, ts)
    return Verdict(False, "signature does not match (tampered body or wrong secret)", ts)


def _verify_standard(
    secrets: Sequence[str], h: dict[str, str], body: bytes, window_s: int, now: float
) -> Verdict:
    from standardwebhooks.webhooks import Webhook

    msg_id, ts_text, sig_header = (
        h.get("webhook-id"),
        h.get("webhook-timestamp"),
        h.get("webhook-signature"),
    )
    if not (msg_id and ts_text and sig_header):
        return Verdict(False, "missing webhook-id, webhook-timestamp or webhook-signature")
    if not ts_text.isdigit() or int(ts_text) > MAX_TIMESTAMP:
        return Verdict(False, "malformed webhook-timestamp")
    ts = int(ts_text)
    passed = []
    for part in sig_header.split(" "):
        version, _, signature = part.partition(",")
        if version == "v1" and signature:
            passed.append(signature)
    if not passed:
        return Verdict(False, "malformed webhook-signature (expected v1,<base64>)", ts)
    data = body.decode("utf-8")
    when = datetime.fromtimestamp(ts, tz=UTC)
    for secret in secrets:
        expected = Webhook(secret).sign(msg_id, when, data).partition(",")[2]
        if any(hmac.compare_digest(expected, sig) for sig in passed):
            stale = _fresh(ts, window_s, now)
            return Verdict(not stale, stale, ts)
    return Verdict(False, "signature does not match (tampered body or wrong secret)", ts)


def _verify_github(secrets: Sequence[str], h: dict[str, str], body: bytes) -> Verdict:
    header = h.get("x-hub-signature-256", "")
    if not header.startswith("sha256="):
        return Verdict(False, "no X-Hub-Signature-256: sha256=<hex> header")
    given = header[len("sha256=") :]
    for secret in secrets:
        if hmac.compare_digest(_hmac_hex(secret, body), given):
            return Verdict(True)
    return Verdict(False, "signature does not match (tampered body or wrong secret)")


def event_id(profile: str, headers: Mapping[str, str], body: bytes) -> str:
    """The delivery's event id, for dedupe, taken only from what the signature covers (an
    unsigned header could make a replayed delivery look new): Standard Webhooks' signed
    ``webhook-id``; for the playbook and Stripe, the body's ``event_id``/``eventId``/``id``;
    for GitHub, which signs the body only, ``sha256:<hex of the body>``. "" when there is none
    (no dedupe possible). An id over 200 characters is kept as ``sha256:<hex of the id>``."""
    if profile == "standard":
        return _bounded(_lower(headers).get("webhook-id", ""))
    if profile == "github":
        return "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(parsed, dict):
        for key in ("event_id", "eventId", "id"):
            value = parsed.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return _bounded(str(value))
    return ""


def _bounded(value: str) -> str:
    if len(value) <= 200 and "\x00" not in value:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
