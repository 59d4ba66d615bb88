"""An EDI partner end to end: an AS2 endpoint saved through the product (certificates checked),
then the shipped EDI suite run by the product against the demo EDI partner (Initech) on
127.0.0.1, which answers over real signed and encrypted AS2: MDNs synchronously, 997s and
855s posted to the partner's Certdash AS2 URL on Django's live server."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from certification.models import CapturedRequest, Run, StepResult
from demo.as2_keys import self_signed
from demo.edi_partner import EdiPartnerServer
from partners import services
from partners.models import Endpoint, Partner

pytestmark = pytest.mark.django_db(transaction=True)

EDI_SUITE = Path(__file__).resolve().parents[2] / "certification" / "library" / "b2b" / "edi.yaml"
OURS = self_signed("CERTDASH")


@pytest.fixture
def initech(tmp_path: Path) -> Iterator[EdiPartnerServer]:
    with EdiPartnerServer(tmp_path / "keys") as server:
        yield server


def _save(partner: Partner, server: EdiPartnerServer, **config: str) -> Endpoint:
    key, certificate = OURS
    settings = {
        "as2_from": "CERTDASH", "as2_to": "INITECH", "certificate_pem": certificate,
        "partner_certificate_pem": server.partner.certificate_pem, **config,
    }  # fmt: skip
    return services.endpoint_save(
        partner=partner, by="test", name="edi", base_url=f"{server.url}/as2", is_default=False,
        auth_kind="as2_smime", auth_config=settings,
        new_secrets={"as2_private_key_pem": key}, kind="as2",
    )  # fmt: skip


def _onboard(partner: Partner, server: EdiPartnerServer, live_server: Any) -> None:
    _save(partner, server)
    url = partner.as2_url.replace("http://127.0.0.1:8000", live_server.url)
    profile = {"as2_id": "CERTDASH", "url": url, "certificate_pem": OURS[1]}
    request = urllib.request.Request(
        f"{server.url}/_partner/profile", data=json.dumps(profile).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _run(partner: Partner, suite: str | Path) -> Run:
    with contextlib.suppress(SystemExit):
        call_command("run_suite", "--partner", partner.external_id, "--suite", str(suite),
                     "--inline")  # fmt: skip
    return Run.objects.filter(partner=partner).latest("id")


def _steps(run: Run) -> list[StepResult]:
    return list(
        StepResult.objects.filter(scenario_run__run=run).order_by(
            "scenario_run__index", "step_index"
        )
    )


def test_an_as2_endpoint_refuses_a_key_that_is_not_our_certificates(
    partner_a: Partner, initech: EdiPartnerServer
) -> None:
    other_key, _ = self_signed("SOMEONE")
    with pytest.raises(ValidationError) as info:
        services.endpoint_save(
            partner=partner_a, by="test", name="edi", base_url=f"{initech.url}/as2",
            is_default=False, auth_kind="as2_smime",
            auth_config={"as2_from": "CERTDASH", "as2_to": "INITECH",
                         "certificate_pem": OURS[1],
                         "partner_certificate_pem": initech.partner.certificate_pem},
            new_secrets={"as2_private_key_pem": other_key}, kind="as2",
        )  # fmt: skip
    assert "not the one of our certificate" in str(info.value)


def test_an_as2_endpoint_refuses_a_certificate_that_is_not_one(
    partner_a: Partner, initech: EdiPartnerServer
) -> None:
    with pytest.raises(ValidationError) as info:
        _save(partner_a, initech, partner_certificate_pem="-----BEGIN CERTIFICATE-----\nx\n")
    assert "not a PEM certificate" in str(info.value)


def test_the_edi_suite_passes_against_the_demo_edi_partner(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any
) -> None:
    _onboard(partner_a, initech, live_server)
    run = _run(partner_a, EDI_SUITE)
    failures = [(s.name, s.failure) for s in _steps(run) if s.status != "passed"]
    assert run.status == "passed", failures
    # The 997s and the 855 arrived over AS2, signed, and were recorded opened.
    received = CapturedRequest.objects.filter(run=run, source="as2", name="document")
    # 997 + 855 for each accepted order (E-01, B-104's first), a 997 for the duplicate and
    # for the order in error.
    assert received.count() == 6
    assert all(row.signature_valid for row in received)
