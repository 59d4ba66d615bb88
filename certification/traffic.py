"""Captured traffic services: recording what a partner's sandbox sent to the hosted mocks and
the webhook inbox, and handing a run's records to the engine.

The views are in ``certification.traffic_views``; the models in ``certification.traffic_models``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F

from certification.engine import signatures
from certification.engine.masking import Masker
from certification.engine.model import Mock, RunContext
from certification.engine.traffic import parse_body
from certification.models import Run
from certification.traffic_models import CapturedRequest, InboxEvent
from partners import crypto
from partners.models import Partner, WebhookSecret

_MASKERS: dict[tuple[int, int | None], tuple[float, Masker]] = {}
_MASKER_TTL_S = 30.0


def mock_base_url(partner: Partner) -> str:
    """Where the partner's sandbox sends its third-party calls: ``<base>/<host>/<path>``."""
    return partner.mock_base_url


def inbox_url(partner: Partner, name: str) -> str:
    return partner.inbox_url(name)


_PARTNERS: dict[str, tuple[float, Partner]] = {}
_PARTNER_TTL_S = 10.0
_MOCKS: dict[int, list[Mock]] = {}  # suite version id -> its mocks (versions never change)


def partner_for_token(token: str) -> Partner | None:
    """The partner a mock or inbox URL names; kept a few seconds in memory (a sandbox calls
    many times a second, and a token never changes)."""
    now = time.monotonic()
    cached = _PARTNERS.get(token)
    if cached is not None and now - cached[0] < _PARTNER_TTL_S:
        return cached[1]
    partner = Partner.objects.filter(public_token=token).first()
    if partner is not None:
        if len(_PARTNERS) > 1024:
            _PARTNERS.clear()
        _PARTNERS[token] = (now, partner)
    return partner


def running_run(partner: Partner, wanted: str | None = None) -> Run | None:
    """The partner's run whose suite answers: the one named by ``X-Certdash-Run`` if it is
    this partner's and running, else the most recently started running run. Looked up on
    every request (a run that has just started must answer at once)."""
    runs = Run.objects.filter(partner=partner, status=Run.Status.RUNNING).only(
        "id", "partner_id", "suite_id", "started_at", "endpoints", "default_endpoint"
    )
    if wanted and wanted.isdigit():
        return runs.filter(pk=int(wanted)).first()
    return runs.order_by("-started_at", "-id").first()


def mocks_of(run: Run | None) -> list[Mock]:
    if run is None:
        return []
    if run.suite_id not in _MOCKS:
        from certification.models import Suite
        from certification.suites import suite_of

        if len(_MOCKS) > 256:
            _MOCKS.clear()
        _MOCKS[run.suite_id] = suite_of(Suite.objects.get(pk=run.suite_id)).mocks
    return _MOCKS[run.suite_id]


_HOST_ADDRESSES: dict[str, tuple[float, frozenset[str]]] = {}
_HOST_TTL_S = 60.0


def _addresses(host: str) -> frozenset[str]:
    import ipaddress
    import socket

    try:
        return frozenset({str(ipaddress.ip_address(host.strip("[]")))})
    except ValueError:
        pass
    now = time.monotonic()
    cached = _HOST_ADDRESSES.get(host)
    if cached is not None and now - cached[0] < _HOST_TTL_S:
        return cached[1]
    try:
        found = frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None))
    except OSError:
        found = frozenset()
    if len(_HOST_ADDRESSES) > 1024:
        _HOST_ADDRESSES.clear()
    _HOST_ADDRESSES[host] = (now, found)
    return found


def origin_of(run: Run | None, address: str | None) -> str:
    """The calling service when the request names none (no ``X-Origin``): the run's one HTTP
    endpoint whose host is the address the request came from; "" when none or several are."""
    if run is None or not address:
        return ""
    from urllib.parse import urlsplit

    names = []
    for name, snap in (run.endpoints or {}).items():
        if snap.get("kind", "http") != "http":
            continue
        host = urlsplit(str(snap.get("base_url", ""))).hostname
        if host and address in _addresses(host):
            names.append(name)
    return names[0] if len(names) == 1 else ""


def masker_for(partner: Partner, run: Run | None) -> Masker:
    """The secrets to mask in what this partner's sandbox sent: the run's endpoint secrets
    (when a run is running) and the partner's webhook secrets. Cached briefly in memory."""
    key = (partner.pk, run.pk if run else None)
    now = time.monotonic()
    cached = _MASKERS.get(key)
    if cached and now - cached[0] < _MASKER_TTL_S:
        return cached[1]
    values: list[str] = []
    if run is not None:
        from certification.engine.runner import context_secrets
        from certification.execution import run_context_cached

        with contextlib.suppress(crypto.SecretDecryptionError):
            values.extend(context_secrets(run_context_cached(run)))
    for row in WebhookSecret.objects.filter(partner=partner):
        try:
            if row.secret_sealed:
                values.extend(
                    v for v in crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad).values()
                )
        except crypto.SecretDecryptionError:
            continue
    masker = Masker([v for v in values if v])
    if len(_MASKERS) > 256:
        _MASKERS.clear()
    _MASKERS[key] = (now, masker)
    return masker


@dataclass
class Captured:
    text: str
    size: int
    sha256: str
    truncated: bool


def capture(data: bytes, masker: Masker) -> Captured:
    """A body as recorded: cut to the capture cap, masked, with the full body's size and hash;
    bytes that are not UTF-8 text kept as ``base64:``."""
    cap = settings.RESULT_BODY_CAPTURE_BYTES
    truncated = len(data) > cap
    prefix = data[:cap]
    text = _utf8(prefix, cut=truncated)
    if text is None or "\x00" in text:  # binary (a database text column holds no NUL)
        text = "base64:" + base64.b64encode(prefix).decode("ascii")
    masked = masker.mask_truncated(text) if truncated else masker.mask(text)
    return Captured(masked, len(data), hashlib.sha256(data).hexdigest(), truncated)


def _utf8(data: bytes, *, cut: bool) -> str | None:
    """``data`` as UTF-8 text, or None; a prefix ``cut`` from a longer body may end inside a
    character, whose partial bytes are dropped."""
    for drop in range(4 if cut else 1):
        try:
            return data[: len(data) - drop].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _text(value: str) -> str:
    """A URL or header as a text column can hold it (no NUL)."""
    return value.replace("\x00", "%00")


def record(
    *,
    partner: Partner,
    run: Run | None,
    source: str,
    name: str,
    origin: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    response_headers: dict[str, str],
    response_body: str,
    masker: Masker,
    received_at: datetime,
    duration_ms: float,
    signature: signatures.Verdict | None = None,
    event_id: str = "",
) -> CapturedRequest:
    body_capture = capture(body, masker)
    return CapturedRequest.objects.create(
        partner=partner,
        run=run,
        source=source,
        name=name[:200],
        origin=_text(origin)[:200],
        method=method[:10],
        url=_text(masker.mask(url))[:2000],
        request_headers=masker.mask_headers({_text(k): _text(v) for k, v in headers.items()}),
        request_body=body_capture.text,
        request_body_size=body_capture.size,
        request_body_sha256=body_capture.sha256,
        request_truncated=body_capture.truncated,
        response_status=status,
        response_headers=masker.mask_headers(response_headers),
        response_body=masker.mask(response_body[: settings.RESULT_BODY_CAPTURE_BYTES]),
        signature_valid=None if signature is None else signature.valid,
        signature_reason="" if signature is None else signature.reason[:300],
        event_id=event_id[:200],
        received_at=received_at,
        duration_ms=round(duration_ms, 3),
    )


def record_answer(
    row: CapturedRequest,
    *,
    status: int,
    response_headers: dict[str, str],
    response_body: str,
    masker: Masker,
    duration_ms: float,
) -> None:
    """Complete a request recorded before its answer (a mock with ``mockDelayMs``)."""
    row.response_status = status
    row.response_headers = masker.mask_headers(response_headers)
    row.response_body = masker.mask(response_body[: settings.RESULT_BODY_CAPTURE_BYTES])
    row.duration_ms = round(duration_ms, 3)
    row.save(update_fields=["response_status", "response_headers", "response_body", "duration_ms"])


def inbox_process(*, captured: CapturedRequest) -> bool:
    """Process a verified delivery once per partner + event id; True when it was a replay.

    Runs inside the transaction that recorded ``captured``. One ``INSERT … ON CONFLICT DO
    NOTHING RETURNING``: under the unique constraint a concurrent duplicate waits for the first
    transaction, then inserts nothing and is a replay (no savepoint, no lookup before).
    """
    if not captured.event_id:
        return False
    table = InboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (partner_id, event_id, first_id, deliveries, received_at) "
            "VALUES (%s, %s, %s, 1, %s) ON CONFLICT (partner_id, event_id) DO NOTHING "
            "RETURNING id",
            [captured.partner_id, captured.event_id, captured.pk, captured.received_at],
        )
        if cursor.fetchone() is not None:
            return False
    InboxEvent.objects.filter(partner_id=captured.partner_id, event_id=captured.event_id).update(
        deliveries=F("deliveries") + 1
    )
    captured.replayed = True
    return True


def record_dict(row: CapturedRequest) -> dict[str, Any]:
    """A captured request as the engine's ``match`` groups see it (see engine/traffic.py)."""
    request_type = _header(row.request_headers, "content-type")
    response_type = _header(row.response_headers, "content-type")
    return {
        "id": row.pk,
        "source": row.source,
        "name": row.name,
        "origin": row.origin,
        "method": row.method,
        "url": row.url,
        "request": {
            "headers": row.request_headers,
            "body": parse_body(row.request_body, request_type),
            "bodySize": row.request_body_size,
            "bodySha256": row.request_body_sha256,
        },
        "response": {
            # 0: recorded before the mock answered (mockDelayMs still running).
            "status": row.response_status or None,
            "headers": row.response_headers,
            "body": parse_body(row.response_body, response_type),
        },
        "signature": {"valid": row.signature_valid, "reason": row.signature_reason},
        "replayed": row.replayed,
        "eventId": row.event_id,
        "receivedAt": row.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""


def run_traffic(run_id: int, since: str, until: str) -> tuple[list[dict[str, Any]], int]:
    """The run's captured requests received in [since, until], and how many it has in all."""
    start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
    rows = CapturedRequest.objects.filter(
        run_id=run_id, received_at__gte=start, received_at__lte=end
    ).order_by("received_at", "id")
    records = [record_dict(row) for row in rows]
    total = CapturedRequest.objects.filter(run_id=run_id).count()
    return records, total


def attach_recorder(context: RunContext, run: Run) -> None:
    """Give the engine this run's captured traffic (queried on a worker thread: the engine's
    event loop must not block on the database)."""
    from certification.off_loop import off_the_loop

    run_id = run.pk
    context.traffic = off_the_loop(lambda since, until: run_traffic(run_id, since, until))
    context.traffic_settle_ms = settings.TRAFFIC_SETTLE_MS
