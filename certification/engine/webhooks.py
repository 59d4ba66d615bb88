"""Outbound webhooks: sign an event with the partner's profile and deliver it, retrying per the
retry-policy registry.

A delivery is retried on 429, 5xx, a timeout, a refused or reset connection; never on another
answer (a 4xx is the partner's verdict) or on a failure of our own configuration. Before retry
``n`` (1-based) the wait is full jitter, ``uniform(0, min(cap, base * 2 ** (n - 1)))``, or the
partner's ``Retry-After`` when it asks for longer (a ``Retry-After`` beyond the policy's cap ends
the delivery instead: the step says so). Each attempt is signed afresh (a new timestamp), with
the same event id and body. Pure Python, no Django.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from certification.engine import signatures

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_FAILURES = frozenset({"timeout", "refused", "connection_reset"})


@dataclass(frozen=True)
class RetryRule:
    """A flow of the retry-policy registry (``webhook.delivery``: 8 attempts, 300 s cap)."""

    max_attempts: int = 3
    cap_ms: int = 5_000
    jitter: str = "full"  # full | equal | none (decorrelated is treated as full)
    base_ms: int = 500


@dataclass
class Attempt:
    attempt: int
    status: int | None
    failure: str = ""
    waited_ms: float = 0.0  # before this attempt
    retry_after_ms: float | None = None
    sent_at: str = ""
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status": self.status,
            "failure": self.failure,
            "waitedMs": round(self.waited_ms, 1),
            "retryAfterMs": self.retry_after_ms,
            "sentAt": self.sent_at,
            "durationMs": round(self.duration_ms, 3),
        }


@dataclass
class Delivery:
    attempts: list[Attempt] = field(default_factory=list)
    gave_up: str = ""  # why no further attempt was made, when the last one did not succeed


def backoff_ms(rule: RetryRule, retry: int, rng: random.Random) -> float:
    """The wait before retry ``retry`` (1 = the second attempt)."""
    ceiling = min(rule.cap_ms, rule.base_ms * 2 ** (retry - 1))
    if rule.jitter == "none":
        return float(ceiling)
    if rule.jitter == "equal":
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
    return rng.uniform(0, ceiling)


def retry_after_ms(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as milliseconds: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000.0
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, (when.timestamp() - now) * 1000)


def sign_event(
    profile: str,
    secret: str,
    body: bytes,
    event_id: str,
    *,
    stale_by_s: int = 0,
) -> dict[str, str]:
    """Headers for one attempt: the profile's signature (timestamp now, or ``stale_by_s`` in
    the past for a negative test), ``X-Event-Id`` and the content type."""
    headers = signatures.sign(
        profile, secret, body, timestamp=int(time.time()) - stale_by_s, event_id=event_id
    )
    headers["Content-Type"] = "application/json"
    headers.setdefault("X-Event-Id", event_id)
    return headers


def tampered(body: bytes) -> bytes:
    """The body changed after signing: a JSON object gains ``"tampered": true``; anything else
    gets one byte appended. The signature then no longer matches."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body + b" "
    if isinstance(parsed, dict):
        parsed["tampered"] = True
        return json.dumps(parsed, separators=(",", ":")).encode()
    return body + b" "


Send = Callable[[dict[str, str]], Awaitable[tuple[int | None, str, dict[str, str]]]]


async def deliver(
    send: Send,
    headers_for: Callable[[], dict[str, str]],
    rule: RetryRule,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Delivery:
    """Deliver with retries. ``send(headers)`` returns (status or None, failure kind or "",
    response headers); ``headers_for()`` signs each attempt afresh."""
    rng = rng or random.Random()
    delivery = Delivery()
    waited = 0.0
    for number in range(1, max(1, rule.max_attempts) + 1):
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        started = time.perf_counter()
        status, failure, response_headers = await send(headers_for())
        after = retry_after_ms(_header(response_headers, "retry-after"))
        delivery.attempts.append(
            Attempt(
                attempt=number,
                status=status,
                failure=failure,
                waited_ms=waited,
                retry_after_ms=after,
                sent_at=sent_at,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        )
        retryable = (failure in RETRY_FAILURES) or (not failure and status in RETRY_STATUSES)
        if not retryable:
            return delivery
        if number >= rule.max_attempts:
            delivery.gave_up = f"gave up after {number} attempts (the policy's maximum)"
            return delivery
        wait = backoff_ms(rule, number, rng)
        if after is not None:
            if after > rule.cap_ms:
                delivery.gave_up = (
                    f"Retry-After asks for {after / 1000:g} s, beyond the policy's cap of "
                    f"{rule.cap_ms / 1000:g} s"
                )
                return delivery
            wait = max(wait, after)
        await sleep(wait / 1000)
        waited = wait
    return delivery


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
