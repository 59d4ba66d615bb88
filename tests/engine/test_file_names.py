"""Generated batch-file names, as the playbook writes them: <prefix>_<flow>_<UTC time>_<sequence>
.<ext>, the sequence from the partner's counter (or fixed, or repeated for a duplicate test),
against a real SFTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite
from tests.engine.sftp_server import PASSWORD, USER, SftpServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "root") as running:
        yield running


def _run(server: SftpServer, steps: str, *, counter: bool = True) -> Any:
    numbers = itertools.count(7)

    async def file_sequence(flow: str) -> int:
        return next(numbers)

    endpoint = EndpointConfig(
        name="files", base_url=server.url, kind="sftp", auth_kind="ssh_password",
        auth_config={"username": USER, "host_key": server.host_key_line},
        secrets={"password": PASSWORD},
    )  # fmt: skip
    context = RunContext(
        endpoints={"files": endpoint}, partner={"id": "p_002", "name": "Globex Corp."},
        file_sequence=file_sequence if counter else None,
    )  # fmt: skip
    suite = parse_suite(f"name: t\ntests:\n  - name: s\n    steps:\n{steps}", filename="s.yaml")
    [outcome] = asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"])))
    return outcome


def _upload(extra: str = "") -> str:
    return (
        "      - action:\n          type: sftpUpload\n          endpoint: files\n"
        "          flow: inventory\n          csv: {header: [sku, quantity], rows: [[W, 1]]}\n"
        + "".join(f"          {line}\n" for line in extra.splitlines())
        + "        extract: {seq: file.sequence, name: file.name}\n"
    )


def test_a_generated_name_carries_the_partner_flow_utc_time_and_next_sequence(
    server: SftpServer,
) -> None:
    outcome = _run(server, _upload())
    step = outcome.steps[0]
    assert step.status == "passed", step.failure
    [landed] = (server.root / "inbox").iterdir()
    assert re.fullmatch(r"globexcorp_inventory_\d{8}T\d{6}Z_000007\.csv", landed.name)
    assert step.extracted == {"seq": "000007", "name": landed.name}


def test_each_upload_takes_the_next_sequence_and_repeat_reuses_the_last(
    server: SftpServer,
) -> None:
    outcome = _run(server, _upload() + _upload() + _upload("repeat: true"))
    sequences = [s.data["sent"][0]["name"].rsplit("_", 1)[1] for s in outcome.steps]
    assert sequences == ["000007.csv", "000008.csv", "000008.csv"]


def test_prefix_ext_and_a_fixed_sequence_replace_the_defaults(server: SftpServer) -> None:
    outcome = _run(server, _upload("prefix: acme\next: txt\nsequence: 42"))
    name = outcome.steps[0].data["sent"][0]["name"]
    assert re.fullmatch(r"acme_inventory_\d{8}T\d{6}Z_000042\.txt", name)


def test_repeat_with_no_earlier_upload_of_the_flow_fails_saying_why(server: SftpServer) -> None:
    step = _run(server, _upload("repeat: true")).steps[0]
    assert step.status == "error"
    assert "'repeat' uploads with the sequence of this scenario's previous 'inventory' file" in (
        step.failure.message
    )


def test_without_the_products_counters_a_sequence_must_be_given(server: SftpServer) -> None:
    step = _run(server, _upload(), counter=False).steps[0]
    assert step.status == "error"
    assert "fix the sequence with 'sequence: N'" in step.failure.message
    assert not list((server.root / "inbox").iterdir())
