"""``/as2/<partner token>``: where a partner's AS2 server posts its interchanges (997s,
855s …) and asynchronous MDNs to us.

A document is decrypted with our key and its signature checked against the partner's pinned
certificate (``certification.engine.as2``); it is recorded opened (the interchange itself,
``Content-Type`` the inner one, the wire's kept as ``X-AS2-Content-Type``) for the run's
``x12Receive`` steps, and answered with a synchronous MDN, signed when asked and possible. A
Message-ID seen before is recorded as replayed and answered ``processed/warning:
duplicate-document``. An MDN is recorded as what it says (JSON: disposition, MIC, signature),
for an ``x12Send`` waiting for it. Like the inbox, no session and no CSRF: the signature is
the credential.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from certification import traffic
from certification.engine import as2
from certification.engine.signatures import Verdict
from certification.traffic_models import CapturedRequest
from certification.traffic_views import _body_or_refusal, _quiet, _recording, _request_headers
from partners.models import Endpoint, Partner
from partners.services import endpoint_secrets

logger = logging.getLogger("certdash.traffic")


def _endpoint(partner: Partner, as2_from: str) -> Endpoint | None:
    for row in Endpoint.objects.filter(partner=partner, kind="as2"):
        if row.auth_config.get("as2_to", "") == as2_from:
            return row
    return None


def _keys(row: Endpoint) -> as2.Keys:
    return as2.Keys(
        private_key_pem=endpoint_secrets(row).get("as2_private_key_pem", ""),
        certificate_pem=row.auth_config.get("certificate_pem", ""),
        partner_certificate_pem=row.auth_config.get("partner_certificate_pem", ""),
    )


def _micalg(options: str) -> str:
    for part in options.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "signed-receipt-micalg":
            for candidate in value.split(","):
                if candidate.strip().lower() in as2.MIC_ALGORITHMS:
                    return as2.mic_algorithm(candidate)
    return "sha256"


@csrf_exempt
@_recording
def as2_inbound(request: HttpRequest, token: str) -> HttpResponse:
    started = time.perf_counter()
    received_at = timezone.now()
    partner = traffic.partner_for_token(token)
    if partner is None:
        return _quiet(JsonResponse({"error": "no AS2 receiver at this URL"}, status=404))
    if request.method != "POST":
        response = JsonResponse({"error": "AS2 messages are posted"}, status=405)
        response["Allow"] = "POST"
        return _quiet(response)
    body = _body_or_refusal(request, settings.INBOX_MAX_BYTES)
    if isinstance(body, HttpResponse):
        return body
    headers = _request_headers(request)
    as2_from = request.headers.get("AS2-From", "").strip().strip('"')
    message_id = request.headers.get("Message-ID", "").strip()
    wire_type = request.headers.get("Content-Type", "")
    row = _endpoint(partner, as2_from)
    run = traffic.running_run(partner)
    masker = traffic.masker_for(partner, run)

    def save(
        name: str, opened: bytes, opened_type: str, status: int, answer: dict[str, str],
        answer_body: bytes, verdict: Verdict | None,
    ) -> tuple[CapturedRequest, bool]:  # fmt: skip
        """Record the message; and whether its Message-ID was seen before (a resend)."""
        stored = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        stored["Content-Type"], stored["X-AS2-Content-Type"] = opened_type, wire_type
        with transaction.atomic():
            captured = traffic.record(
                partner=partner, run=run, source="as2", name=name, origin=as2_from,
                method="POST", url="as2", headers=stored, body=opened, status=status,
                response_headers=answer,
                response_body=answer_body.decode("utf-8", "replace"), masker=masker,
                received_at=received_at, duration_ms=(time.perf_counter() - started) * 1000,
                signature=verdict, event_id=message_id if name == "document" else "",
            )  # fmt: skip
            seen = name == "document" and bool(message_id)
            duplicate = seen and traffic.inbox_process(captured=captured)
            if duplicate:
                captured.save(update_fields=["replayed"])
            return captured, duplicate

    if row is None:
        problem = {"error": f"no AS2 endpoint of this partner has the AS2 ID '{as2_from}'"}
        logger.warning("as2 %s: message from unknown AS2 ID refused", partner.external_id)
        save("document", body, wire_type, 403, {}, json.dumps(problem).encode(), None)
        return _quiet(JsonResponse(problem, status=403))
    keys = _keys(row)
    our_id = row.auth_config.get("as2_from", "")
    signed_required = row.auth_kind == "as2_smime"
    if "multipart/report" in wire_type.lower() or (
        "multipart/signed" in wire_type.lower() and b"disposition-notification" in body
    ):
        try:
            mdn = as2.read_mdn(wire_type, body, keys=keys)
        except as2.As2Error as exc:
            mdn = {"error": str(exc)}
        verdict = None
        if "signature" in mdn:
            verdict = Verdict(bool(mdn["signature"]["valid"]), mdn["signature"]["reason"])
        opened = json.dumps(mdn).encode()
        save("mdn", opened, "application/json", 200, {}, b"", verdict)
        return HttpResponse(status=200)

    disposition = as2.PROCESSED
    verdict: Verdict | None = None
    opened_type, payload, mic = wire_type, body, ""
    micalg = _micalg(request.headers.get("Disposition-Notification-Options", ""))
    try:
        inbound = as2.open_message(wire_type, body, keys)
    except as2.As2Error as exc:
        kind = "decryption-failed" if "decrypt" in str(exc) else "unexpected-processing-error"
        disposition = f"processed/error: {kind}"
        verdict = Verdict(False, str(exc)[:300])
    else:
        opened_type, payload, mic = inbound.content_type, inbound.payload, inbound.mic(micalg)
        if inbound.signed:
            verdict = Verdict(not inbound.signature_reason, inbound.signature_reason)
            if inbound.signature_reason:
                disposition = "processed/error: authentication-failed"
        elif signed_required:
            verdict = Verdict(False, "the message is not signed, and this endpoint requires it")
            disposition = "processed/error: authentication-failed"
    if verdict is not None and not verdict.valid:
        logger.warning("as2 %s: message refused (%s)", partner.external_id, verdict.reason)
    answer_headers: dict[str, str] = {}
    answer_body = b""
    wants_mdn = bool(request.headers.get("Disposition-Notification-To"))
    options = request.headers.get("Disposition-Notification-Options", "").lower()
    sign_mdn = "signed-receipt-protocol" in options and bool(
        keys.private_key_pem and keys.certificate_pem
    )

    def mdn_for(status_text: str) -> tuple[dict[str, str], bytes]:
        return as2.build_mdn(
            original_message_id=message_id, sender=as2_from, receiver=our_id,
            disposition=status_text, received_mic=mic, sign_with=keys if sign_mdn else None,
            micalg=micalg,
        )  # fmt: skip

    if wants_mdn:
        answer_headers, answer_body = mdn_for(disposition)
    captured, duplicate = save(
        "document", payload, opened_type, 200, answer_headers, answer_body, verdict
    )
    if duplicate and wants_mdn and disposition == as2.PROCESSED:
        answer_headers, answer_body = mdn_for("processed/warning: duplicate-document")
        captured.response_headers = answer_headers
        captured.response_body = answer_body.decode("utf-8", "replace")
        captured.save(update_fields=["response_headers", "response_body"])
    response = HttpResponse(answer_body, status=200)
    for name, value in answer_headers.items():
        response[name] = value
    return response
