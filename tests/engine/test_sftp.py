"""SFTP file actions against a real SFTP server on 127.0.0.1: atomic uploads with sidecar and
manifest, waiting for an ACK, listing, the pinned host key, credentials, the address policy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import SuiteInvalid, parse_suite
from tests.engine.sftp_server import PASSWORD, USER, SftpServer

POLICY = AddressPolicy(["127.0.0.0/8"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "root") as running:
        yield running


def _endpoint(server: SftpServer, **config: str) -> EndpointConfig:
    return EndpointConfig(
        name="files",
        base_url=server.url,
        kind="sftp",
        auth_kind="ssh_password",
        auth_config={"username": USER, "host_key": server.host_key_line, **config},
        secrets={"password": PASSWORD},
    )


def _run(text: str, endpoint: EndpointConfig, policy: AddressPolicy = POLICY) -> Any:
    suite = parse_suite(text, filename="s.yaml")
    context = RunContext(endpoints={"files": endpoint})
    [outcome] = asyncio.run(run_suite(suite, context, policy=policy))
    return outcome


UPLOAD = """
name: t
variables: {seq: "001"}
tests:
  - name: inventory file with manifest
    steps:
      - name: upload
        action:
          type: sftpUpload
          endpoint: files
          name: "globex_inventory_20250916T020000Z_{{seq}}.csv"
          csv:
            header: [sku, quantity, price_cents]
            rows:
              - [WIDGET-001, 50, 999]
              - [WIDGET-002, "30", 1499]
          sha256: true
          manifest: {partner: p_002}
        assertions:
          - assertions:
              - {path: manifest.records, operator: eq, value: 2}
              - {path: manifest.totals.quantity, operator: eq, value: 80}
              - {path: file.csv.records, operator: eq, value: 2}
"""


def test_an_upload_lands_under_its_final_name_with_sidecar_and_manifest(
    server: SftpServer,
) -> None:
    outcome = _run(UPLOAD, _endpoint(server))
    step = outcome.steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])
    inbox = server.root / "inbox"
    name = "globex_inventory_20250916T020000Z_001.csv"
    data = (inbox / name).read_bytes()
    assert data == b"sku,quantity,price_cents\nWIDGET-001,50,999\nWIDGET-002,30,1499\n"
    assert (inbox / f"{name}.sha256").read_text() == f"{hashlib.sha256(data).hexdigest()}  {name}\n"
    manifest = json.loads((inbox / f"{name}.manifest.json").read_text())
    assert manifest == {
        "file": name, "records": 2, "bytes": len(data), "partner": "p_002",
        "sha256": hashlib.sha256(data).hexdigest(),
        "totals": {"quantity": 80, "price_cents": 2498},
    }  # fmt: skip
    assert not [p for p in inbox.iterdir() if p.name.endswith(".part")]


WAIT = """
name: t
tests:
  - name: the partner acknowledges
    steps:
      - action: {type: waitForFile, endpoint: files, pattern: "*.ack", timeoutMs: 3000,
                 intervalMs: 20}
        assertions:
          - assertions:
              - {path: file.json.status, operator: eq, value: accepted}
              - {path: file.name, operator: matches, value: '^inv_\\d+\\.ack$'}
"""


def test_wait_for_file_reads_the_ack_when_it_appears(server: SftpServer) -> None:
    def drop() -> None:  # once the step has logged in to poll: the file appears mid-wait
        server.logged_in.wait(10)
        (server.root / "outbox" / "inv_001.ack").write_text('{"status": "accepted"}')

    threading.Thread(target=drop).start()
    step = _run(WAIT, _endpoint(server)).steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])


def test_wait_for_file_times_out_naming_the_pattern_and_directory(server: SftpServer) -> None:
    step = _run(WAIT.replace("3000", "200"), _endpoint(server)).steps[0]
    assert step.status == "failed" and step.failure.kind == "timeout"
    assert "no file matching '*.ack' appeared in outbox within 200 ms" in step.failure.message


def test_a_csv_file_reports_its_structure_and_line_level_errors(server: SftpServer) -> None:
    (server.root / "outbox" / "errors_001.csv").write_text("line,error\n3,bad sku\n4\n")
    text = WAIT.replace('"*.ack"', '"errors_*.csv"').split("        assertions:")[0] + (
        "        assertions:\n          - assertions:\n"
        "              - {path: file.csv.header, operator: eq, value: [line, error]}\n"
        "              - {path: file.csv.records, operator: eq, value: 2}\n"
        "              - {path: 'file.csv.errors[0]', operator: eq,"
        " value: 'line 3: 1 values, the header has 2'}\n"
    )
    step = _run(text, _endpoint(server)).steps[0]
    assert step.status == "passed", (step.failure, [a.message for a in step.assertions])


def test_list_counts_the_files_of_a_directory(server: SftpServer) -> None:
    (server.root / "archive" / "a.csv").write_text("x")
    (server.root / "archive" / ".hidden.part").write_text("x")
    text = """
name: t
tests:
  - name: s
    steps:
      - action: {type: sftpList, endpoint: files, dir: archive}
        assertions: [{assertions: [{path: count, operator: eq, value: 1},
                                   {path: 'files[0].name', operator: eq, value: a.csv}]}]
"""
    assert _run(text, _endpoint(server)).steps[0].status == "passed"


def test_a_host_key_other_than_the_pinned_one_is_refused(server: SftpServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    step = _run(UPLOAD, _endpoint(server, host_key=other)).steps[0]
    assert step.status == "failed" and step.failure.kind == "tls_error"
    assert "host key other than the pinned one" in step.failure.message
    assert not list((server.root / "inbox").iterdir())


def test_wrong_credentials_fail_the_step(server: SftpServer) -> None:
    endpoint = _endpoint(server)
    endpoint.secrets = {"password": "not-the-password-at-all"}
    step = _run(UPLOAD, endpoint).steps[0]
    assert step.status == "failed" and step.failure.kind == "auth"


def test_key_login_works(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with SftpServer(tmp_path / "k", client_key=key) as server:
        endpoint = _endpoint(server)
        endpoint.auth_kind = "ssh_key"
        endpoint.secrets = {"private_key_pem": key.export_private_key().decode()}
        assert _run(UPLOAD, endpoint).steps[0].status == "passed"


def test_the_address_policy_applies_to_sftp_hosts(server: SftpServer) -> None:
    step = _run(UPLOAD, _endpoint(server), policy=AddressPolicy([])).steps[0]
    assert step.status == "error" and step.failure.kind == "blocked_address"


def test_an_endpoint_that_is_not_sftp_is_an_error() -> None:
    endpoint = EndpointConfig(name="files", base_url="http://127.0.0.1:9")
    step = _run(UPLOAD, endpoint).steps[0]
    assert step.status == "error" and "is not an SFTP endpoint" in step.failure.message


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{type: sftpUpload, endpoint: files, name: a.csv}", "exactly one of 'content' or 'csv'"),
        ("{type: sftpUpload, endpoint: files, name: a/b.csv, content: x}", "without '/'"),
        ("{type: sftpUpload, endpoint: files, name: a.csv, content: x, manifest: true}",
         "control totals of a 'csv' upload"),
        ("{type: sftpUpload, endpoint: files, name: a.csv, csv: {header: [a, b], rows: [[1]]}}",
         "row 1 has 1 values, the header 2 columns"),
        ("{type: sftpList, endpoint: files, dir: ../etc}", "no '..'"),
        ("{type: waitForFile, endpoint: files}", "missing 'pattern'"),
    ],
)  # fmt: skip
def test_file_actions_are_checked_when_the_suite_is_read(action: str, message: str) -> None:
    text = f"name: t\ntests:\n  - name: s\n    steps:\n      - action: {action}\n"
    with pytest.raises(SuiteInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_suite(text, filename="s.yaml")
