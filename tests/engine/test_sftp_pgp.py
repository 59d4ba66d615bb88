"""PGP over SFTP against a real SFTP server on 127.0.0.1 and the system gpg: uploads encrypted
to the partner's key (and signed with ours), the partner's encrypted files decrypted and their
signatures checked against its pinned key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certification.engine import pgp, x12
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite
from tests.engine.sftp_server import PASSWORD, USER, SftpServer

# Outside CI a machine without gpg skips these; CI installs it, so there they run.
pytestmark = pytest.mark.skipif(
    not pgp.available() and not os.environ.get("CI"), reason="gpg is not installed"
)
POLICY = AddressPolicy(["127.0.0.0/8"])
NAME = "globex_inventory_20250916T020000Z_001.csv"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {
        "partner": pgp.generate("Partner files", "files@partner.example"),
        "ours": pgp.generate("Certdash QA", "qa@certdash.example"),
        "stranger": pgp.generate("Stranger", "x@stranger.example"),
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "root") as running:
        yield running


def _endpoint(server: SftpServer, keys: dict, *, partner_key: bool = True,
              our_key: bool = True) -> EndpointConfig:  # fmt: skip
    config = {"username": USER, "host_key": server.host_key_line}
    secrets = {"password": PASSWORD}
    if partner_key:
        config["pgp_partner_key"] = keys["partner"][1]
    if our_key:
        secrets["pgp_private_key"] = keys["ours"][0]
    return EndpointConfig(
        name="files",
        base_url=server.url,
        kind="sftp",
        auth_kind="ssh_password",
        auth_config=config,
        secrets=secrets,
    )


def _run(text: str, endpoint: EndpointConfig) -> Any:
    suite = parse_suite(text, filename="s.yaml")
    [outcome] = asyncio.run(
        run_suite(suite, RunContext(endpoints={"files": endpoint}), policy=POLICY)
    )
    return outcome


UPLOAD = f"""
name: t
tests:
  - name: an encrypted inventory file
    steps:
      - action:
          type: sftpUpload
          endpoint: files
          name: {NAME}
          csv: {{header: [sku, quantity], rows: [[WIDGET-001, 50], [WIDGET-002, 30]]}}
          sha256: true
          manifest: true
          PGP_LINE
        assertions:
          - assertions:
              - {{path: file.csv.records, operator: eq, value: 2}}
"""


def test_an_upload_is_encrypted_to_the_partners_key_and_signed_with_ours(
    server: SftpServer, keys: dict
) -> None:
    outcome = _run(UPLOAD.replace("PGP_LINE", ""), _endpoint(server, keys))
    step = outcome.steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])
    inbox = server.root / "inbox"
    uploaded = (inbox / f"{NAME}.pgp").read_bytes()
    assert not (inbox / NAME).exists() and b"WIDGET" not in uploaded
    opened = pgp.decrypt(uploaded, keys["partner"][0], verify_with=keys["ours"][1])
    assert opened.data == b"sku,quantity\nWIDGET-001,50\nWIDGET-002,30\n"
    assert opened.signature_valid
    wire = hashlib.sha256(uploaded).hexdigest()
    assert (inbox / f"{NAME}.pgp.sha256").read_text() == f"{wire}  {NAME}.pgp\n"
    manifest = json.loads((inbox / f"{NAME}.pgp.manifest.json").read_text())
    assert manifest["file"] == f"{NAME}.pgp" and manifest["encryption"] == "pgp"
    assert manifest["sha256"] == hashlib.sha256(opened.data).hexdigest()
    assert manifest["totals"] == {"quantity": 80}


def test_the_evidence_keeps_the_uploaded_bytes_and_the_content(
    server: SftpServer, keys: dict
) -> None:
    step = _run(UPLOAD.replace("PGP_LINE", ""), _endpoint(server, keys)).steps[0]
    [sent] = step.data["sent"]
    uploaded = (server.root / "inbox" / f"{NAME}.pgp").read_bytes()
    assert (sent["name"], sent["sha256"]) == (f"{NAME}.pgp", hashlib.sha256(uploaded).hexdigest())
    assert sent["decrypted"]["text"].startswith("sku,quantity\n")
    assert "PGP-encrypted and signed" in " ".join(step.notes)


def test_pgp_false_uploads_in_clear_even_when_the_partner_has_a_key(
    server: SftpServer, keys: dict
) -> None:
    step = _run(UPLOAD.replace("PGP_LINE", "pgp: false"), _endpoint(server, keys)).steps[0]
    assert step.status == "passed"
    assert (server.root / "inbox" / NAME).read_bytes().startswith(b"sku,quantity")


def test_pgp_true_without_a_partner_key_fails_the_step_saying_so(
    server: SftpServer, keys: dict
) -> None:
    endpoint = _endpoint(server, keys, partner_key=False)
    step = _run(UPLOAD.replace("PGP_LINE", "pgp: true"), endpoint).steps[0]
    assert step.status == "failed" and step.failure.kind == "pgp"
    assert "no partner PGP public key to encrypt to" in step.failure.message
    assert not list((server.root / "inbox").iterdir())


def _wait(extra: str = "") -> str:
    return f"""
name: t
tests:
  - name: the partner's encrypted ACK
    steps:
      - action: {{type: waitForFile, endpoint: files, pattern: "*.ack.pgp", timeoutMs: 3000,
                 intervalMs: 20}}
        assertions:
          - assertions:
              - {{path: file.json.status, operator: eq, value: accepted}}
              {extra}
"""


def _drop_ack(server: SftpServer, data: bytes) -> None:
    (server.root / "outbox" / "inv_001.ack.pgp").write_bytes(data)


def test_the_partners_encrypted_file_is_decrypted_and_its_signature_checked(
    server: SftpServer, keys: dict
) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["ours"][1],
                                  signer=keys["partner"][0]))  # fmt: skip
    check = "- {path: file.pgp.signatureValid, operator: eq, value: true}"
    step = _run(_wait(check), _endpoint(server, keys)).steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])
    assert step.data["received"]["name"] == "inv_001.ack.pgp"
    assert step.data["received"]["decrypted"]["text"] == '{"status": "accepted"}'


def test_a_file_signed_by_another_key_fails_the_step(server: SftpServer, keys: dict) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["ours"][1],
                                  signer=keys["stranger"][0]))  # fmt: skip
    step = _run(_wait(), _endpoint(server, keys)).steps[0]
    assert step.status == "failed" and step.failure.kind == "pgp"
    assert "PGP-signed, but not by the partner's pinned key" in step.failure.message


def test_asserting_on_the_signature_replaces_the_built_in_check(
    server: SftpServer, keys: dict
) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["ours"][1],
                                  signer=keys["stranger"][0]))  # fmt: skip
    check = "- {path: file.pgp.signatureValid, operator: eq, value: false}"
    step = _run(_wait(check), _endpoint(server, keys)).steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])


def test_a_file_not_encrypted_to_our_key_fails_with_the_reason(
    server: SftpServer, keys: dict
) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["stranger"][1]))
    step = _run(_wait(), _endpoint(server, keys)).steps[0]
    assert step.status == "failed" and step.failure.kind == "pgp"
    assert "outbox/inv_001.ack.pgp: cannot decrypt: it is not encrypted to our PGP key" in (
        step.failure.message
    )


def test_without_our_key_an_encrypted_file_is_reported_undecrypted(
    server: SftpServer, keys: dict
) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["ours"][1]))
    text = _wait().replace("file.json.status, operator: eq, value: accepted",
                           "file.pgp.decrypted, operator: eq, value: false")  # fmt: skip
    step = _run(text, _endpoint(server, keys, our_key=False)).steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])
    assert "no PGP private key to decrypt it" in " ".join(step.notes)


X12_SUITE = """
name: t
tests:
  - name: an 850 dropped on SFTP, its 997 picked up
    steps:
      - name: send
        action:
          type: x12Send
          endpoint: files
          control: {interchange: 41, group: 41, set: 1}
          order: {po: PO-1, date: "20261201", lines: [{sku: W-1, quantity: 2, price: "1.00"}]}
        assertions:
          - assertions:
              - {path: file.pgp.encrypted, operator: eq, value: ENCRYPTED}
      - name: the 997
        action: {type: x12Receive, endpoint: files, set: "997", pattern: "*.997*",
                 timeoutMs: 5000, intervalMs: 20}
        assertions:
          - assertions:
              - {path: ack.accepted, operator: eq, value: true}
"""


def _edi_partner(server: SftpServer, keys: dict, stop: threading.Event, *, encrypted: bool) -> None:
    """The partner's side: each interchange in the inbox answered by a 997 in the outbox
    (both PGP when ``encrypted``)."""
    inbox, outbox = server.root / "inbox", server.root / "outbox"
    while not stop.is_set():
        for path in inbox.glob("*.x12*"):
            if path.name.startswith("."):  # an upload in progress (pathlib's glob shows those)
                continue
            data = path.read_bytes()
            if encrypted:
                data = pgp.decrypt(data, keys["partner"][0]).data
            ack = x12.functional_ack(x12.parse(data.decode()), interchange_control=900)
            body = ack.encode()
            if encrypted:
                body = pgp.encrypt(body, keys["ours"][1], signer=keys["partner"][0])
            (outbox / f"{path.name.split('.')[0]}.997{'.pgp' if encrypted else ''}").write_bytes(
                body
            )
            path.rename(server.root / "archive" / path.name)
        stop.wait(0.02)


@pytest.mark.parametrize("encrypted", [True, False], ids=["pgp", "clear"])
def test_an_interchange_goes_over_sftp_and_its_997_comes_back(
    server: SftpServer, keys: dict, encrypted: bool
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_edi_partner, args=(server, keys, stop),
                              kwargs={"encrypted": encrypted})  # fmt: skip
    worker.start()
    try:
        endpoint = _endpoint(server, keys, partner_key=encrypted)
        text = X12_SUITE.replace("ENCRYPTED", "true" if encrypted else "false")
        outcome = _run(text, endpoint)
    finally:
        stop.set()
        worker.join(10)
    assert outcome.status == "passed", [
        (s.name, s.failure, [a.message for a in s.assertions if not a.passed])
        for s in outcome.steps
    ]
    [archived] = list((server.root / "archive").iterdir())
    assert archived.name.endswith(".x12.pgp" if encrypted else ".x12")
    sent = outcome.steps[0].data["sent"][0]
    assert sent["text"].startswith("ISA*") and sent["interchange"] == "000000041"
    received = outcome.steps[1].data["received"]
    assert received["text"].startswith("ISA*")  # the 997 as decrypted, in the evidence


RECEIVE_997 = """
name: t
tests:
  - name: a 997 picked up
    steps:
      - action: {type: x12Receive, endpoint: files, set: "997", pattern: "*.997*",
                 timeoutMs: 500, intervalMs: 20}
"""
ACK_997 = x12.build(
    [("997", [["AK1", "PO", "41"], ["AK2", "850", "0001"], ["AK5", "A"],
              ["AK9", "A", "1", "1", "1"]])],
    interchange_control=900, group_control=900, first_set_control=1,
).encode()  # fmt: skip


def test_a_997_signed_by_another_key_fails_the_receive(server: SftpServer, keys: dict) -> None:
    forged = pgp.encrypt(ACK_997, keys["ours"][1], signer=keys["stranger"][0])
    (server.root / "outbox" / "po41.997.pgp").write_bytes(forged)
    step = _run(RECEIVE_997, _endpoint(server, keys)).steps[0]
    assert step.status == "failed" and step.failure.kind == "pgp"
    assert "po41.997.pgp: the file is PGP-signed, but not by the partner's pinned key" in (
        step.failure.message
    )


def test_an_encrypted_997_without_our_key_is_named_in_the_timeout(
    server: SftpServer, keys: dict
) -> None:
    (server.root / "outbox" / "po41.997.pgp").write_bytes(pgp.encrypt(ACK_997, keys["ours"][1]))
    step = _run(RECEIVE_997, _endpoint(server, keys, our_key=False)).steps[0]
    assert step.status == "failed" and step.failure.kind == "timeout"
    assert "po41.997.pgp: PGP-encrypted, and the endpoint has no PGP private key" in (
        step.failure.message
    )


def test_a_file_not_for_us_is_passed_over_and_the_997_beside_it_taken(
    server: SftpServer, keys: dict
) -> None:
    outbox = server.root / "outbox"
    (outbox / "a-other.997.pgp").write_bytes(pgp.encrypt(ACK_997, keys["stranger"][1]))
    (outbox / "b-po41.997.pgp").write_bytes(
        pgp.encrypt(ACK_997, keys["ours"][1], signer=keys["partner"][0])
    )
    step = _run(RECEIVE_997, _endpoint(server, keys)).steps[0]
    assert step.status == "passed", step.failure
    assert step.data["received"]["name"] == "b-po41.997.pgp"
    assert step.data["received"]["text"].startswith("ISA*")


def test_without_our_key_an_encrypted_file_fails_the_step_unless_it_asserts_on_that(
    server: SftpServer, keys: dict
) -> None:
    _drop_ack(server, pgp.encrypt(b'{"status": "accepted"}', keys["ours"][1]))
    text = _wait().replace("file.json.status, operator: eq, value: accepted",
                           "file.size, operator: gt, value: 0")  # fmt: skip
    step = _run(text, _endpoint(server, keys, our_key=False)).steps[0]
    assert step.status == "failed" and step.failure.kind == "pgp"
    assert "no PGP private key to decrypt it" in step.failure.message
