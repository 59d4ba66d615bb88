"""Captured traffic: choosing the hosted mock that answers a request, and selecting recorded
requests for a ``match`` group.

Pure Python, no Django. The web process records each request a partner's sandbox sends to a
hosted mock or the webhook inbox; the runner asks for the records of a step's window and
evaluates ``match`` / ``count`` / per-request assertions here.

A record, as the Django side hands it over (JSON-friendly)::

    {"id": 7, "source": "mock" | "inbox", "name": "mock-stripe", "origin": "payment-service",
     "method": "POST", "url": "api.stripe.com/v1/charges?expand=x",
     "request": {"headers": {...}, "body": <JSON, form fields as an object, or text>},
     "response": {"status": 200, "headers": {...}, "body": ...},
     "signature": {"valid": true, "reason": ""}, "replayed": false, "eventId": "evt_1",
     "receivedAt": "2026-12-03T08:00:00.000Z"}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from certification.engine.model import Mock


@lru_cache(maxsize=1024)
def _path_regex(pattern: str) -> re.Pattern[str]:
    """``*`` is one path segment (or part of one), ``**`` any number of segments."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def path_matches(pattern: str, path: str) -> bool:
    """Whether a request path (no query) matches a ``mockPath``: ``/v1/charges``,
    ``/2010-04-01/Accounts/*/Messages.json``; a trailing ``/`` is not significant."""
    pattern = "/" + pattern.strip("/")
    path = "/" + path.strip("/")
    return _path_regex(pattern).fullmatch(path) is not None


def _body_condition(mock: Mock, body_text: str) -> bool | None:
    """True/False when the mock has a body condition and it holds or not; None without one."""
    if mock.body_contains is not None:
        return mock.body_contains.lower() in body_text.lower()
    if mock.body_matches is not None:
        return re.search(mock.body_matches, body_text) is not None
    return None


def select_mock(mocks: Sequence[Mock], host: str, path: str, body_text: str) -> Mock | None:
    """The mock that answers: among those for ``host`` whose path matches, the first whose body
    condition holds, else the first without a body condition (the fallback); None if neither."""
    host = host.lower()
    candidates = [m for m in mocks if m.target.lower() == host and path_matches(m.path, path)]
    for mock in candidates:
        if _body_condition(mock, body_text):
            return mock
    for mock in candidates:
        if _body_condition(mock, body_text) is None:
            return mock
    return None


def parse_body(body: str, content_type: str) -> Any:
    """A recorded body as assertions see it: JSON parsed, form fields as an object (a field
    sent twice becomes a list), anything else as text."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields: dict[str, Any] = {}
        for key, value in parse_qsl(body, keep_blank_values=True):
            if key not in fields:
                fields[key] = value
            elif isinstance(fields[key], list):
                fields[key].append(value)
            else:
                fields[key] = [fields[key], value]
        return fields
    try:
        return json.loads(body)
    except ValueError:
        return body


def _strip_scheme(url: str) -> str:
    for scheme in ("https://", "http://"):
        if url.lower().startswith(scheme):
            return url[len(scheme) :]
    return url


def url_matches(prefix: str, url: str) -> bool:
    """``api.twilio.com`` matches ``api.twilio.com/2010-04-01/...``; ``api.stripe.com/v1/charges``
    matches itself with a query or a sub-path, never ``api.stripe.com.example`` or
    ``/v1/chargesX``. The host compares without case, the path with it."""
    prefix, url = _strip_scheme(prefix).rstrip("/"), _strip_scheme(url)
    p_host, _, p_rest = prefix.partition("/")
    u_host, _, u_rest = url.partition("/")
    if "?" in u_host:  # "host?query" without a path
        u_host, _, query = u_host.partition("?")
        u_rest = "?" + query
    if p_host.lower() != u_host.lower():
        return False
    if not p_rest:
        return True
    if not u_rest.startswith(p_rest):
        return False
    after = u_rest[len(p_rest) :]
    return after == "" or after[0] in "/?#" or p_rest.endswith("/")


def record_matches(match: dict[str, Any], record: dict[str, Any]) -> bool:
    if "origin" in match and str(record.get("origin") or "").lower() != match["origin"].lower():
        return False
    if "method" in match and str(record.get("method") or "").upper() != match["method"].upper():
        return False
    return not ("url" in match and not url_matches(match["url"], str(record.get("url") or "")))


def select(match: dict[str, Any], records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a ``match`` selects, oldest first."""
    return [r for r in records if record_matches(match, r)]


def describe(match: dict[str, Any]) -> str:
    """``POST api.stripe.com/v1/charges from payment-service`` for messages."""
    parts = [match.get("method", "any method"), match.get("url", "any URL")]
    text = " ".join(parts)
    if "origin" in match:
        text += f" from {match['origin']}"
    return text


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """What a step result keeps of a matched request (the full record stays in its table)."""
    return {
        "id": record.get("id"),
        "source": record.get("source"),
        "origin": record.get("origin") or "",
        "method": record.get("method"),
        "url": record.get("url"),
        "status": (record.get("response") or {}).get("status"),
        "receivedAt": record.get("receivedAt"),
        "replayed": bool(record.get("replayed")),
        "signatureValid": (record.get("signature") or {}).get("valid"),
    }
