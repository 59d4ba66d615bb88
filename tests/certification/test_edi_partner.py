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


ORDER_THEN_ACK = """
name: edi-check
tests:
  - name: order
    steps:
      - name: send
        action:
          type: x12Send
          endpoint: edi
          order: {po: PO-9, date: "20261201", lines: [{sku: W-1, quantity: QTY, price: "1.00"}]}
      - name: ack
        action: {type: x12Receive, endpoint: edi, set: "997", timeoutMs: 10000}
"""


def _inline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_a_997_that_rejects_the_set_fails_the_step_with_the_ak5_and_ak9_reason(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    _onboard(partner_a, initech, live_server)
    run = _run(partner_a, _inline(tmp_path, ORDER_THEN_ACK.replace("QTY", "0")))
    send, ack = _steps(run)
    assert send.status == "passed"
    assert ack.status == "failed"
    assert ack.failure["kind"] == "rejected"
    message = ack.failure["message"]
    assert "AK5 R for set 850 0001: one or more segments in error" in message
    assert "AK9 R (rejected): 0 of 1 sets accepted" in message


def test_an_mdn_stating_another_mic_fails_the_send(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    _onboard(partner_a, initech, live_server)
    initech.partner.faults.add("wrong_mic")
    run = _run(partner_a, _inline(tmp_path, ORDER_THEN_ACK.replace("QTY", "1")))
    send = _steps(run)[0]
    assert send.status == "failed"
    assert "not the MIC of what we sent" in send.failure["message"]
    assert send.data["mdn"]["micMatches"] is False


def test_an_mdn_signed_with_another_certificate_fails_the_send(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    _onboard(partner_a, initech, live_server)
    initech.partner.faults.add("foreign_signature")
    run = _run(partner_a, _inline(tmp_path, ORDER_THEN_ACK.replace("QTY", "1")))
    send = _steps(run)[0]
    assert send.status == "failed"
    assert "signed with another certificate" in send.failure["message"]


def test_no_997_within_the_deadline_fails_and_counts_against_the_ack_sla(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    from partners.models import SLA

    SLA.objects.create(partner=partner_a, name="ack", kind="ack", text="ack<=15m",
                       threshold_ms=900_000)  # fmt: skip
    _onboard(partner_a, initech, live_server)
    initech.partner.faults.add("silent")
    suite = ORDER_THEN_ACK.replace("QTY", "1").replace("timeoutMs: 10000", "timeoutMs: 1500")
    run = _run(partner_a, _inline(tmp_path, suite))
    ack = _steps(run)[1]
    assert ack.status == "failed" and ack.failure["kind"] == "timeout"
    assert "a 997 answering our group" in ack.failure["message"]
    assert ack.data["noAckWithinMs"] >= 1500


def test_the_ack_sla_is_measured_from_the_send_to_the_997(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    from partners.models import SLA

    SLA.objects.create(partner=partner_a, name="ack", kind="ack", text="ack<=15m",
                       threshold_ms=900_000)  # fmt: skip
    _onboard(partner_a, initech, live_server)
    run = _run(partner_a, _inline(tmp_path, ORDER_THEN_ACK.replace("QTY", "1")))
    assert run.status == "passed"
    (verdict,) = [v for v in run.sla_verdicts if v["kind"] == "ack"]
    ack_ms = _steps(run)[1].data["ackMs"]
    assert verdict["verdict"] == "met"
    assert verdict["measured"] == max(ack_ms, _steps(run)[0].data["mdn"]["ms"])
    assert ack_ms >= 200  # Initech answers after 0.2 s


def test_each_send_takes_new_control_numbers_and_repeat_reuses_them(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any
) -> None:
    _onboard(partner_a, initech, live_server)
    run = _run(partner_a, EDI_SUITE)
    sent = [
        record["interchange"]
        for step in _steps(run)
        for record in (step.data or {}).get("sent", [])
    ]
    assert len(sent) == 4
    assert len(set(sent)) == 3  # B-104's repeat is the only one sent twice
    log = json.loads(urllib.request.urlopen(f"{initech.url}/_partner/received").read())
    assert [entry["duplicate"] for entry in log].count(True) == 1


def test_the_run_evidence_holds_every_interchange_with_its_hash_and_the_mdns(
    partner_a: Partner, initech: EdiPartnerServer, live_server: Any, tmp_path: Path
) -> None:
    import hashlib

    from evidence.bundles import build_files
    from evidence.collect import source_for_run

    _onboard(partner_a, initech, live_server)
    run = _run(partner_a, EDI_SUITE)
    source = source_for_run(run)
    build_files(source, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "files.jsonl").read_text().splitlines()]
    sent = [r for r in lines if r["direction"] == "sent"]
    received = [r for r in lines if r["direction"] == "received" and r["kind"] == "interchange"]
    mdns = [r for r in lines if r["kind"] == "mdn"]
    # Received by x12Receive steps: E-01's 997 and 855, B-104's two 997s, E-02's 997 (B-104's
    # 855, which no step waits for, is in traffic.jsonl with the rest).
    assert (len(sent), len(received), len(mdns)) == (4, 5, 4)
    for record in sent + received:
        assert record["sha256"] == hashlib.sha256(record["text"].encode()).hexdigest()
        assert record["text"].startswith("ISA*")
    assert all(m["signature"]["valid"] and m["micMatches"] for m in mdns)
    assert source.summary["files"] == {
        "file": "files.jsonl",
        "records": 13,
        "sent": 4,
        "received": 5,
        "mdns": 4,
    }
    traffic = (tmp_path / "traffic.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["source"] == "as2" for line in traffic) == 6
