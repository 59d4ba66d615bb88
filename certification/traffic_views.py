"""The hosted mocks and the webhook inbox: URLs a partner's sandbox calls, without a session.

``/mock/<partner token>/<host>/<path>`` answers with the running run's MOCK items;
``/inbox/<partner token>/<name>`` receives the partner's signed webhooks. Both record every
request (``certification.traffic``). Neither uses cookies, so CSRF does not apply; the token
only says which partner's traffic it is (it is not a credential: a webhook's signature is).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from certification import traffic
from certification.engine import signatures
from certification.engine.model import MISSING, Mock
from certification.engine.traffic import select_mock
from partners.models import WebhookSecret
from partners.services import webhook_secret_values

logger = logging.getLogger("certdash.traffic")

# Hop-by-hop and proxy headers are not part of what the sandbox sent.
_SKIP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


def _quiet(response: HttpResponse) -> HttpResponse:
    """Keep Django from logging this 4xx/5xx as a server warning: a mock's error status is the
    answer it was written to give and a refused webhook is recorded and logged below, and the
    request line would print the partner's token."""
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _request_headers(request: HttpRequest) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}


def _body_or_refusal(request: HttpRequest, limit: int) -> bytes | HttpResponse:
    """The raw body, or the answer refusing it: 413 over ``limit`` (judged from
    Content-Length before anything is read), 400 for a Content-Length that is no number, 411
    for a chunked body the server cannot hand over (a chunked one is read up to the limit
    where it can: gunicorn sets ``wsgi.input_terminated``)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    too_large = {"error": f"request body over {limit} bytes"}
    if declared:
        if not declared.isdigit():
            return _quiet(JsonResponse({"error": "Content-Length is not a number"}, status=400))
        if int(declared) > limit:
            return _quiet(JsonResponse(too_large, status=413))
        data = request.read(limit + 1)
    elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not request.META.get("wsgi.input_terminated"):
            refusal = {"error": "send a Content-Length: this server cannot read chunked bodies"}
            return _quiet(JsonResponse(refusal, status=411))
        data = request.META["wsgi.input"].read(limit + 1)
    else:
        data = b""
    if len(data) > limit:
        return _quiet(JsonResponse(too_large, status=413))
    return data


def _mock_response(mock: Mock) -> tuple[int, dict[str, str], bytes]:
    headers = dict(mock.headers)
    body = mock.body
    if body is MISSING or body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body, separators=(",", ":")).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return mock.status, headers, data


def _describe(mock: Mock) -> dict[str, Any]:
    out: dict[str, Any] = {"name": mock.name, "target": mock.target, "path": mock.path}
    if mock.body_contains is not None:
        out["bodyContains"] = mock.body_contains
    if mock.body_matches is not None:
        out["bodyMatches"] = mock.body_matches
    return out


def _recording(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A request that cannot be recorded gets 503 (a sender retries) and one log line naming
    the partner's token by its first characters only, never the path or the body."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, token: str, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, token, *args, **kwargs)
        except DatabaseError as exc:
            logger.error("%s for token %s…: not recorded (%s)", view.__name__, token[:4],
                         type(exc).__name__)  # fmt: skip
            refusal = {"error": "the request could not be recorded; try again"}
            return _quiet(JsonResponse(refusal, status=503))

    return wrapped


@csrf_exempt
@_recording
def hosted_mock(request: HttpRequest, token: str, rest: str) -> HttpResponse:
    started = time.perf_counter()
    received_at = timezone.now()
    partner = traffic.partner_for_token(token)
    if partner is None:
        return _quiet(JsonResponse({"error": "no partner has this mock base URL"}, status=404))
    body = _body_or_refusal(request, settings.MOCK_MAX_BYTES)
    if isinstance(body, HttpResponse):
        return body
    host, _, path = rest.partition("/")
    path = "/" + path
    query = request.META.get("QUERY_STRING", "")
    url = f"{host}{path}" + (f"?{query}" if query else "")
    run = traffic.running_run(partner, request.headers.get("X-Certdash-Run"))
    mocks = traffic.mocks_of(run)
    mock = select_mock(mocks, host, path, body.decode("utf-8", errors="replace"))
    masker = traffic.masker_for(partner, run)
    fields: dict[str, Any] = {
        "partner": partner,
        "run": run,
        "source": "mock",
        "origin": request.headers.get("X-Origin")
        or traffic.origin_of(run, request.META.get("REMOTE_ADDR")),
        "method": request.method or "GET",
        "url": url,
        "headers": _request_headers(request),
        "body": body,
        "masker": masker,
        "received_at": received_at,
    }
    if mock is not None:
        status, headers, data = _mock_response(mock)
        if mock.delay_ms:
            # Recorded (answer pending) before the delay: a step that looks while the mock is
            # still waiting counts the request, whatever the delay.
            pending = traffic.record(
                **fields, name=mock.name, status=0, response_headers={}, response_body="",
                duration_ms=0.0,
            )  # fmt: skip
            # On top of the mock's own handling time, as a slow third party would add it.
            time.sleep(mock.delay_ms / 1000)
            traffic.record_answer(
                pending,
                status=status,
                response_headers=headers,
                response_body=data.decode("utf-8", errors="replace"),
                masker=masker,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
            return _answer(status, headers, data)
        name = mock.name
    else:
        status, name = 404, ""
        message = (
            f"no hosted mock matches {request.method} {host}{path}"
            if run is not None
            else "no run is running for this partner, so no hosted mock answers"
        )
        payload = {
            "error": message,
            "run": run.pk if run else None,
            "mocks": [_describe(m) for m in mocks],
        }
        headers = {"Content-Type": "application/json"}
        data = json.dumps(payload).encode()
    traffic.record(
        **fields,
        name=name,
        status=status,
        response_headers=headers,
        response_body=data.decode("utf-8", errors="replace"),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    return _answer(status, headers, data)


def _answer(status: int, headers: dict[str, str], data: bytes) -> HttpResponse:
    response = HttpResponse(data, status=status)
    for key, value in headers.items():
        response[key] = value
    return _quiet(response)


@csrf_exempt
@_recording
def webhook_inbox(request: HttpRequest, token: str, name: str) -> HttpResponse:
    started = time.perf_counter()
    received_at = timezone.now()
    partner = traffic.partner_for_token(token)
    row = (
        WebhookSecret.objects.filter(partner=partner, name=name).first()
        if partner is not None
        else None
    )
    if partner is None or row is None:
        return _quiet(JsonResponse({"error": "no webhook inbox at this URL"}, status=404))
    if request.method != "POST":
        response = JsonResponse({"error": "webhooks are delivered with POST"}, status=405)
        response["Allow"] = "POST"
        return _quiet(response)
    # Oversized bodies are refused before any signature work (and before reading them).
    body = _body_or_refusal(request, settings.INBOX_MAX_BYTES)
    if isinstance(body, HttpResponse):
        logger.warning(
            "inbox %s/%s: body refused (%s)", partner.external_id, name, body.status_code
        )
        return body
    headers = _request_headers(request)
    verdict = signatures.verify(
        row.profile,
        webhook_secret_values(row),
        headers,
        body,
        window_s=row.window_s,
    )
    run = traffic.running_run(partner)
    masker = traffic.masker_for(partner, run)
    event_id = signatures.event_id(row.profile, headers, body) if verdict.valid else ""
    if not verdict.valid:
        # The alert of the playbook's B-102: a delivery whose signature does not verify.
        logger.warning(
            "inbox %s/%s: webhook signature rejected (%s)",
            partner.external_id,
            row.name,
            verdict.reason,
        )
        status, payload = 401, {"error": "invalid signature", "reason": verdict.reason}
    else:
        status, payload = 200, {"status": "accepted", "eventId": event_id or None}
    with transaction.atomic():
        captured = traffic.record(
            partner=partner,
            run=run,
            source="inbox",
            name=row.name,
            origin=request.headers.get("X-Origin", ""),
            method="POST",
            url=f"inbox/{row.name}",
            headers=headers,
            body=body,
            status=status,
            response_headers={"Content-Type": "application/json"},
            response_body=json.dumps(payload),
            masker=masker,
            received_at=received_at,
            duration_ms=(time.perf_counter() - started) * 1000,
            signature=verdict,
            event_id=event_id,
        )
        if verdict.valid and traffic.inbox_process(captured=captured):
            payload = {"status": "duplicate", "eventId": event_id}
            captured.response_body = json.dumps(payload)
            captured.save(update_fields=["replayed", "response_body"])
    return _quiet(JsonResponse(payload, status=status))
