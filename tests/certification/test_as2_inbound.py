"""``/as2/<token>``: the partner's AS2 messages to us, opened (decrypted, signature checked
against the pinned certificate), recorded for the run and answered with an MDN."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from certification.engine import as2
from certification.models import CapturedRequest
from demo.as2_keys import self_signed
from partners import services
from partners.models import Partner

pytestmark = pytest.mark.django_db

OURS = self_signed("CERTDASH")
THEIRS = self_signed("INITECH")
INTERCHANGE = (
    b"ISA*00*          *00*          *ZZ*INITECH        *ZZ*CERTDASH       "
    b"*261201*1200*U*00401*000000007*0*T*>~IEA*0*000000007~"
)


@pytest.fixture
def endpoint(partner_a: Partner) -> Any:
    return services.endpoint_save(
        partner=partner_a, by="test", name="edi", base_url="http://127.0.0.1:9/as2",
        is_default=False, auth_kind="as2_smime",
        auth_config={"as2_from": "CERTDASH", "as2_to": "INITECH", "certificate_pem": OURS[1],
                     "partner_certificate_pem": THEIRS[1]},
        new_secrets={"as2_private_key_pem": OURS[0]}, kind="as2",
    )  # fmt: skip


def _post(
    partner: Partner,
    message: as2.Outbound,
    *,
    message_id: str = "<m1@initech>",
    sender: str = "INITECH",
    body: bytes | None = None,
) -> Any:
    return Client().post(
        f"/as2/{partner.public_token}",
        data=message.body if body is None else body,
        content_type=message.content_type,
        headers={
            "AS2-From": sender, "AS2-To": "CERTDASH", "Message-ID": message_id,
            "Disposition-Notification-To": "INITECH",
            "Disposition-Notification-Options": (
                "signed-receipt-protocol=optional, pkcs7-signature; "
                "signed-receipt-micalg=optional, sha256"
            ),
        },
    )  # fmt: skip


def _signed(payload: bytes = INTERCHANGE) -> as2.Outbound:
    keys = as2.Keys(THEIRS[0], THEIRS[1], OURS[1])
    return as2.build_message(payload, keys=keys, signed=True, encrypted=True)


def _mdn(response: Any) -> dict[str, Any]:
    """The MDN as the partner reads it: signed by us, checked against our certificate."""
    return as2.read_mdn(
        response["Content-Type"], response.content, keys=as2.Keys(THEIRS[0], THEIRS[1], OURS[1])
    )


def test_a_signed_encrypted_message_is_recorded_opened_and_answered_with_a_signed_mdn(
    partner_a: Partner, endpoint: Any
) -> None:
    message = _signed()
    response = _post(partner_a, message)
    assert response.status_code == 200
    mdn = _mdn(response)
    assert mdn["processed"] and mdn["signature"]["valid"]
    assert as2.same_mic(mdn["mic"], message.mic)
    row = CapturedRequest.objects.get(source="as2")
    assert row.request_body == INTERCHANGE.decode()
    assert row.signature_valid is True and row.event_id == "<m1@initech>"
    assert row.request_headers["Content-Type"] == "application/edi-x12"


def test_a_message_altered_after_signing_is_refused_in_the_mdn(
    partner_a: Partner, endpoint: Any
) -> None:
    keys = as2.Keys(THEIRS[0], THEIRS[1], OURS[1])
    message = as2.build_message(INTERCHANGE, keys=keys, signed=True, encrypted=False)
    response = _post(partner_a, message, body=message.body.replace(b"000000007", b"000000008"))
    mdn = _mdn(response)
    assert mdn["disposition"].endswith("processed/error: authentication-failed")
    row = CapturedRequest.objects.get(source="as2")
    assert row.signature_valid is False
    assert "altered after signing" in row.signature_reason


def test_an_unsigned_message_is_refused_on_a_signed_endpoint(
    partner_a: Partner, endpoint: Any
) -> None:
    plain = as2.build_message(INTERCHANGE, keys=as2.Keys(), signed=False, encrypted=False)
    mdn = _mdn(_post(partner_a, plain))
    assert "authentication-failed" in mdn["disposition"]


def test_a_message_from_an_unknown_as2_id_is_refused(partner_a: Partner, endpoint: Any) -> None:
    response = _post(partner_a, _signed(), sender="MALLORY")
    assert response.status_code == 403
    assert "MALLORY" in response.json()["error"]


def test_a_resent_message_id_is_recorded_as_replayed_and_answered_duplicate(
    partner_a: Partner, endpoint: Any
) -> None:
    _post(partner_a, _signed())
    mdn = _mdn(_post(partner_a, _signed()))
    assert mdn["disposition"].endswith("processed/warning: duplicate-document")
    first, second = CapturedRequest.objects.filter(source="as2").order_by("id")
    assert (first.replayed, second.replayed) == (False, True)


def test_an_asynchronous_mdn_is_recorded_as_what_it_says(partner_a: Partner, endpoint: Any) -> None:
    headers, body = as2.build_mdn(
        original_message_id="<ours@certdash>", sender="CERTDASH", receiver="INITECH",
        received_mic="abc=, sha256", sign_with=as2.Keys(THEIRS[0], THEIRS[1], OURS[1]),
    )  # fmt: skip
    response = Client().post(
        f"/as2/{partner_a.public_token}", data=body, content_type=headers["Content-Type"],
        headers={"AS2-From": "INITECH", "AS2-To": "CERTDASH", "Message-ID": "<mdn@initech>"},
    )  # fmt: skip
    assert response.status_code == 200
    row = CapturedRequest.objects.get(source="as2")
    assert row.name == "mdn"
    recorded = json.loads(row.request_body)
    assert recorded["originalMessageId"] == "<ours@certdash>"
    assert recorded["signature"]["valid"] is True and row.signature_valid is True


def test_an_unknown_token_is_404_and_a_get_is_405(partner_a: Partner) -> None:
    assert Client().post("/as2/nope", data=b"x", content_type="text/plain").status_code == 404
    assert Client().get(f"/as2/{partner_a.public_token}").status_code == 405
