"""A file partner end to end: an SFTP endpoint saved through the product (its host key pinned
on save), then a run that uploads an inventory file with sidecar and manifest and waits for
the partner's ACK, against a real SFTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from certification.models import Run, StepResult
from partners import services
from partners.models import Endpoint, Partner
from tests.engine.sftp_server import PASSWORD, USER, SftpServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "root") as running:
        yield running


def _save(partner: Partner, server: SftpServer, **config: str) -> Endpoint:
    return services.endpoint_save(
        partner=partner, by="test", name="files", base_url=server.url, is_default=False,
        auth_kind="ssh_password", auth_config={"username": USER, **config},
        new_secrets={"password": PASSWORD}, kind="sftp",
    )  # fmt: skip


def test_saving_an_sftp_endpoint_pins_the_servers_host_key(
    partner_a: Partner, server: SftpServer
) -> None:
    endpoint = _save(partner_a, server)
    assert endpoint.auth_config["host_key"] == server.host_key_line
    assert endpoint.auth_config["inbox_dir"] == "inbox"


def test_a_given_host_key_must_be_a_key(partner_a: Partner, server: SftpServer) -> None:
    with pytest.raises(ValidationError) as info:
        _save(partner_a, server, host_key="not a key")
    assert "Not an SSH public key" in str(info.value)


def test_credentials_in_the_url_are_refused(partner_a: Partner, server: SftpServer) -> None:
    with pytest.raises(ValidationError) as info:
        services.endpoint_save(
            partner=partner_a, by="test", name="files",
            base_url=server.url.replace("sftp://", "sftp://user:pw@"), is_default=False,
            auth_kind="ssh_password", auth_config={"username": USER},
            new_secrets={"password": PASSWORD}, kind="sftp",
        )  # fmt: skip
    assert "not in the URL" in str(info.value)


def test_an_sftp_endpoint_needs_an_ssh_auth_kind(partner_a: Partner, server: SftpServer) -> None:
    with pytest.raises(ValidationError) as info:
        services.endpoint_save(
            partner=partner_a, by="test", name="files", base_url=server.url, is_default=False,
            auth_kind="bearer", auth_config={}, new_secrets={"token": "x" * 20}, kind="sftp",
        )  # fmt: skip
    assert "does not apply to a sftp endpoint" in str(info.value)


SUITE = """
name: inventory-files
tests:
  - name: SFTP inventory file with manifest
    code: B-003
    kind: alt
    steps:
      - name: upload the inventory file
        action:
          type: sftpUpload
          endpoint: files
          name: globex_inventory_20250916T020000Z_001.csv
          csv:
            header: [sku, quantity]
            rows: [[WIDGET-001, 50], [WIDGET-002, 30]]
          sha256: true
          manifest: true
      - name: the partner acknowledges it
        action: {type: waitForFile, endpoint: files, pattern: "*_001.ack", timeoutMs: 5000,
                 intervalMs: 20}
        assertions:
          - assertions:
              - {path: file.json.records, operator: eq, value: 2}
"""


def test_a_run_uploads_and_waits_for_the_ack(
    partner_a: Partner, server: SftpServer, tmp_path: Path
) -> None:
    from partners.models import SLA

    SLA.objects.create(partner=partner_a, name="ack", kind="ack", text="ack<=15m",
                       threshold_ms=900_000)  # fmt: skip
    _save(partner_a, server)
    stop = threading.Event()

    def partner_side() -> None:  # a poller that acknowledges what lands in the inbox
        inbox, outbox = server.root / "inbox", server.root / "outbox"
        while not stop.is_set():
            for path in inbox.glob("*.csv"):
                if (inbox / f"{path.name}.manifest.json").exists():
                    records = len(path.read_text().splitlines()) - 1
                    (outbox / path.name.replace(".csv", ".ack")).write_text(
                        f'{{"file": "{path.name}", "records": {records}}}'
                    )
                    path.rename(server.root / "archive" / path.name)
            time.sleep(0.02)

    thread = threading.Thread(target=partner_side, daemon=True)
    thread.start()
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    try:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(suite),
                     "--inline")  # fmt: skip
    except SystemExit as exc:
        assert exc.code == 0, [s.failure for s in StepResult.objects.all()]
    finally:
        stop.set()
        thread.join(5)
    run = Run.objects.get()
    assert run.status == "passed"
    assert run.endpoints["files"]["kind"] == "sftp"
    (ack,) = [v for v in run.sla_verdicts if v["kind"] == "ack"]
    assert ack["verdict"] == "met" and 0 < ack["measured"] < 5000 and ack["samples"] == 1
    step = StepResult.objects.get(step_index=1)
    assert step.notes == ["outbox/globex_inventory_20250916T020000Z_001.ack appeared (67 bytes)"]
    assert step.data["received"]["name"] == "globex_inventory_20250916T020000Z_001.ack"
    sent = StepResult.objects.get(step_index=0).data["sent"][0]
    assert sent["sha256"] and sent["text"].startswith("sku,quantity\n")
    assert (server.root / "archive" / "globex_inventory_20250916T020000Z_001.csv").exists()


def test_the_password_is_not_in_the_run_snapshot_or_results(
    partner_a: Partner, server: SftpServer, tmp_path: Path
) -> None:
    _save(partner_a, server)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.split("      - name: the partner acknowledges it")[0])
    call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(suite),
                 "--inline")  # fmt: skip
    run = Run.objects.get()
    stored = str(run.endpoints) + str(list(StepResult.objects.values()))
    assert PASSWORD not in stored
    assert asyncssh  # the server really ran: the file is there
    assert (server.root / "inbox" / "globex_inventory_20250916T020000Z_001.csv").exists()


@pytest.fixture(scope="module")
def pgp_keys() -> tuple[str, str]:
    from certification.engine import pgp

    return pgp.generate("Partner files", "files@partner.example")


def test_pgp_keys_are_kept_the_partners_in_the_settings_ours_sealed(
    partner_a: Partner, server: SftpServer, pgp_keys: tuple[str, str]
) -> None:
    private, public = pgp_keys
    endpoint = services.endpoint_save(
        partner=partner_a, by="test", name="files", base_url=server.url, is_default=False,
        auth_kind="ssh_password", auth_config={"username": USER, "pgp_partner_key": public},
        new_secrets={"password": PASSWORD, "pgp_private_key": private}, kind="sftp",
    )  # fmt: skip
    assert endpoint.auth_config["pgp_partner_key"] == public.strip()
    assert services.endpoint_secrets(endpoint)["pgp_private_key"] == private
    assert "PRIVATE KEY" not in str(endpoint.auth_config) + str(endpoint.secrets_sealed)


@pytest.mark.parametrize(
    ("field", "given", "message"),
    [
        ("pgp_partner_key", "not a key", "The partner's PGP key is not an ASCII-armored PGP"),
        ("pgp_private_key", "PUBLIC", "Our PGP key is not an ASCII-armored PGP private key"),
    ],
)
def test_a_pgp_key_that_is_not_one_is_refused_naming_the_field(
    partner_a: Partner, server: SftpServer, pgp_keys: tuple[str, str], field: str, given: str,
    message: str,
) -> None:  # fmt: skip
    value = pgp_keys[1] if given == "PUBLIC" else given
    config, secrets = {"username": USER}, {"password": PASSWORD}
    (secrets if field == "pgp_private_key" else config)[field] = value
    with pytest.raises(ValidationError) as info:
        services.endpoint_save(
            partner=partner_a, by="test", name="files", base_url=server.url, is_default=False,
            auth_kind="ssh_password", auth_config=config, new_secrets=secrets, kind="sftp",
        )  # fmt: skip
    assert message in " ".join(info.value.message_dict[field])
    assert not Endpoint.objects.exists()


FLOW_SUITE = """
name: flow-files
tests:
  - name: a generated name
    steps:
      - action:
          type: sftpUpload
          endpoint: files
          flow: inventory
          csv: {header: [sku, quantity], rows: [[WIDGET-001, 1]]}
"""


@pytest.mark.django_db(transaction=True)  # the counter is taken on a connection of its own
def test_runs_take_file_sequences_from_the_partners_counter_never_twice(
    partner_a: Partner, server: SftpServer, tmp_path: Path
) -> None:
    _save(partner_a, server)
    suite = tmp_path / "flow.yaml"
    suite.write_text(FLOW_SUITE)
    for _ in range(2):
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(suite),
                     "--inline")  # fmt: skip
    names = sorted(p.name for p in (server.root / "inbox").iterdir())
    assert [name.rsplit("_", 1)[1] for name in names] == ["000001.csv", "000002.csv"]
    assert all(name.startswith("alphafreight_inventory_") for name in names)


def test_a_private_key_pasted_into_a_setting_is_refused_and_not_stored(
    partner_a: Partner, server: SftpServer, pgp_keys: tuple[str, str]
) -> None:
    private, public = pgp_keys
    with pytest.raises(ValidationError) as info:
        _save(partner_a, server, pgp_partner_key=public + "\n" + private)
    assert "holds a private key. Settings are not secret" in " ".join(
        info.value.message_dict["pgp_partner_key"]
    )
    assert not Endpoint.objects.exists()
