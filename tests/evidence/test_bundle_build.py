"""A signed certification of real runs against the demo sandbox, built into its evidence
bundle by the worker's code: it verifies with verify_bundle and with sha256sum and openssl
alone, holds what an auditor needs, is byte-identical when built again, and carries no secret."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from django.core.management import call_command
from django.utils import timezone

from evidence import bundles, collect, services
from evidence.models import EvidenceBundle
from evidence.review import certification_review
from tests import factories
from tests.evidence import certs

TOP_LEVEL = {
    "certificate.pdf", "results.jsonl", "exchanges.har", "traffic.jsonl", "files.jsonl",
    "certification.json",
    "SHA256SUMS",
    "SHA256SUMS.sig", "signing-key.pem", "VERIFY.txt",
}  # fmt: skip


@pytest.fixture(scope="module")
def built(
    django_db_setup: Any, django_db_blocker: Any, sandbox_server: Any, tmp_path_factory: Any
) -> Any:
    """One signed certification (a failing scenario waived) and its bundle, for the module."""
    with django_db_blocker.unblock():
        acme = factories.PartnerFactory(external_id="p_bundle", name="Acme <b>Bundles</b>")
        certs.add_endpoint(acme, sandbox_server.url)
        certs.add_slas(acme, "p95<=300ms")
        qa, qa2 = factories.qa_lead("qa-b1"), factories.qa_lead("qa-b2")
        certification = certs.open_certification(acme, qa, scope="bundle-v1")
        run = certs.finished_run(acme, passing=False, by=qa)
        _captured(run)
        certs.decide_checklist(certification, qa)
        for item in certification_review(certification).blockers:
            waiver = services.waiver_request(
                certification=certification, item_kind=item.kind, item_key=item.key,
                reason="fixed in 2.1", ends_on=timezone.now().date() + dt.timedelta(days=20),
                by=qa,
            )  # fmt: skip
            services.waiver_decide(waiver=waiver, approve=True, by=qa2)
        services.certification_sign_off(certification=certification, by=qa, note="ok to go")
        bundle = EvidenceBundle.objects.get(certification=certification)
        bundles.bundle_build(bundle_id=bundle.pk)
        bundle.refresh_from_db()
        certification.refresh_from_db()
        data = bundles.storage().open(bundle.file_name, "rb").read()
        path = tmp_path_factory.mktemp("bundle") / "bundle.zip"
        path.write_bytes(data)
        yield {"certification": certification, "bundle": bundle, "path": path, "data": data}
        # A signed certification cannot be deleted (that is the point); empty the tables the
        # way the test runner does between transactional tests.
        call_command("flush", "--no-input")


def _captured(run: Any) -> None:
    """What a sandbox sent to the hosted mock during the run (recorded as the view does)."""
    from certification.engine.masking import Masker
    from certification.traffic import record

    record(
        partner=run.partner, run=run, source="mock", name="stripe", origin="payment-service",
        method="POST", url="api.stripe.com/v1/charges", headers={"Content-Type":
        "application/json", "Authorization": "Bearer sk_live_secret_0123456789"},
        body=b'{"amount":2498,"currency":"usd"}', status=200, response_headers={},
        response_body='{"id":"ch_1"}', masker=Masker([]), received_at=run.started_at,
        duration_ms=3.0,
    )  # fmt: skip


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.django_db
def test_the_bundle_is_ready_and_its_hash_is_recorded_on_the_certification(built: Any) -> None:
    assert built["bundle"].status == "ready" and built["bundle"].progress == 100
    assert built["certification"].bundle_sha256 == built["bundle"].sha256


@pytest.mark.django_db
def test_the_top_level_holds_exactly_the_documented_files(built: Any) -> None:
    names = set(_members(built["data"]))
    assert {n for n in names if "/" not in n} == TOP_LEVEL
    assert {n for n in names if "/" in n} == {"suite/orders-api-v2/orders.yaml"}


@pytest.mark.django_db
def test_traffic_jsonl_holds_what_the_sandbox_sent_during_the_evidence_runs(built: Any) -> None:
    members = _members(built["data"])
    lines = members["traffic.jsonl"].decode().splitlines()
    (record,) = [json.loads(line) for line in lines]
    assert (record["origin"], record["method"], record["url"]) == (
        "payment-service", "POST", "api.stripe.com/v1/charges",
    )  # fmt: skip
    assert record["request"]["body"] == '{"amount":2498,"currency":"usd"}'
    assert "sk_live_secret" not in members["traffic.jsonl"].decode()
    summary = json.loads(members["certification.json"])
    assert summary["traffic"] == {"file": "traffic.jsonl", "records": 1}


@pytest.mark.django_db
def test_verify_bundle_accepts_it(built: Any, capsys: Any) -> None:
    call_command("verify_bundle", str(built["path"]))
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert "The bundle says: CERTIFIED until" in out and "with 1 waiver" in out


@pytest.mark.django_db
def test_sha256sum_and_openssl_alone_verify_it(built: Any, tmp_path: Path) -> None:
    with zipfile.ZipFile(built["path"]) as archive:
        archive.extractall(tmp_path)
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                          text=True)  # fmt: skip
    assert sums.returncode == 0, sums.stdout + sums.stderr
    signature = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing-key.pem", "-rawin",
         "-in", "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert "Signature Verified Successfully" in signature.stdout


@pytest.mark.django_db
def test_building_again_gives_the_same_bytes(built: Any) -> None:
    again = io.BytesIO()
    sha256 = bundles.write_bundle(collect.source_for_certification(built["certification"]), again)
    assert sha256 == built["bundle"].sha256
    assert again.getvalue() == built["data"]


@pytest.mark.django_db
def test_certification_json_says_who_signed_what_with_which_verdicts(built: Any) -> None:
    summary = json.loads(_members(built["data"])["certification.json"])
    assert summary["certifiedBy"]["username"] == "qa-b1"
    assert (
        summary["certifiedBy"]["role"] == "QA lead" and summary["certifiedBy"]["note"] == "ok to go"
    )
    assert summary["verdict"]["headline"].startswith("CERTIFIED until ")
    (sla,) = summary["sla"]
    assert sla["verdict"] == "met" and sla["samples"] == 60
    assert summary["percentileMethod"].startswith("nearest rank")
    (waiver,) = summary["waivers"]
    assert waiver["itemLabel"] == "B-101 duplicate order rejected" and waiver["inForce"]
    assert waiver["approvedBy"]["username"] == "qa-b2"
    assert [c["state"] for c in summary["checklist"]] == ["met"] * 11
    assert summary["suites"][0]["contentHash"] and summary["suites"][0]["version"] == 2


@pytest.mark.django_db
def test_results_hold_the_histogram_to_recompute_the_percentile(built: Any) -> None:
    lines = _members(built["data"])["results.jsonl"].decode().splitlines()
    records = [json.loads(line) for line in lines]
    (latency,) = [r for r in records if r["type"] == "latency"]
    assert latency["histogram"]["count"] == 60
    assert records[-1]["type"] == "end" and records[-1]["records"] == len(records) - 1


@pytest.mark.django_db
def test_the_certificate_is_pdf_a_3b_with_the_raw_files_attached(
    built: Any, tmp_path: Path
) -> None:
    pdf_path = tmp_path / "certificate.pdf"
    pdf_path.write_bytes(_members(built["data"])["certificate.pdf"])
    check = subprocess.run(["qpdf", "--check", str(pdf_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with pikepdf.open(pdf_path) as pdf:
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "3" and meta["pdfaid:conformance"] == "B"
        attached = set(pdf.attachments.keys())
    assert {"certification.json", "results.jsonl", "suite/orders-api-v2/orders.yaml"} <= attached


@pytest.mark.django_db
def test_no_secret_of_the_partner_appears_anywhere_in_the_bundle(
    built: Any, tmp_path: Path
) -> None:
    secret = certs.API_KEY.encode()
    pieces = {secret[i : i + 10] for i in range(len(secret) - 9)}
    texts = list(_members(built["data"]).values())
    pdf_path = tmp_path / "certificate.pdf"
    pdf_path.write_bytes(_members(built["data"])["certificate.pdf"])
    with pikepdf.open(pdf_path) as pdf:
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Stream):
                try:
                    texts.append(obj.read_bytes())
                except pikepdf.PdfError:
                    continue
    found = [p for text in texts for p in pieces if p in text]
    assert found == []


@pytest.mark.django_db
def test_build_evidence_command_writes_the_same_bundle(built: Any, tmp_path: Path) -> None:
    out = tmp_path / "cli.zip"
    call_command("build_evidence", "--certification", str(built["certification"].pk),
                 "--out", str(out))  # fmt: skip
    assert out.read_bytes() == built["data"]


@pytest.mark.django_db
def test_a_run_bundle_builds_and_verifies(built: Any, tmp_path: Path, capsys: Any) -> None:
    run = built["certification"].evidence_runs.get().run
    out = tmp_path / "run.zip"
    call_command("build_evidence", "--run", str(run.pk), "--out", str(out))
    call_command("verify_bundle", str(out))
    summary = json.loads(_members(out.read_bytes())["certification.json"])
    assert summary["kind"] == "run" and summary["certification"] is None
    assert summary["verdict"]["headline"] == "RUN FAILED"


@pytest.mark.django_db
def test_build_evidence_names_a_missing_run(db: Any, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no run with id 999999"):
        call_command("build_evidence", "--run", "999999", "--out", str(tmp_path / "x.zip"))
