"""The demo file partner (an SFTP server whose poller applies the playbook's batch rules) and
the shipped file suite: B-003, B-101 and the negative cases all pass against it, over real
SFTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certification.engine import pgp
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import load_suite_file, parse_suite
from demo.sftp_partner import PASSWORD, USER, SftpPartner, stored_pgp_key

LIBRARY = Path(__file__).resolve().parents[2] / "certification" / "library" / "b2b" / "files.yaml"


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[SftpPartner]:
    with SftpPartner(tmp_path / "sftp") as running:
        yield running


def _endpoint(partner: SftpPartner, **config: str) -> EndpointConfig:
    return EndpointConfig(
        name="files",
        base_url=partner.url,
        kind="sftp",
        auth_kind="ssh_password",
        auth_config={"username": USER, "host_key": partner.server.host_key_line, **config},
        secrets={"password": PASSWORD},
    )


def _run_library(endpoint: EndpointConfig) -> list[Any]:
    suite = load_suite_file(LIBRARY)
    counter = itertools.count(1)

    async def file_sequence(flow: str) -> int:  # the product's counter is in its database
        return next(counter)

    context = RunContext(
        endpoints={"files": endpoint}, partner={"id": "p_002", "name": "Globex"},
        file_sequence=file_sequence,
    )  # fmt: skip
    return asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"]), parallel=8))


def test_the_file_suite_passes_against_the_demo_file_partner(partner: SftpPartner) -> None:
    outcomes = _run_library(_endpoint(partner))
    verdicts = {o.code: o.status for o in outcomes}
    assert verdicts == dict.fromkeys(
        ["B-003", "B-101", "F-01", "F-02", "F-03", "F-04", "F-05"], "passed"
    ), [
        (o.code, s.name, s.failure, [a.message for a in s.assertions if not a.passed])
        for o in outcomes
        for s in o.steps
        if s.status != "passed"
    ]
    root = partner.server.root
    assert len(list((root / "archive").glob("*.csv"))) == 2  # B-003 and B-101's first
    assert len(list((root / "error").glob("*.errors.csv"))) == 5
    assert list((root / "inbox").glob(".*.part"))  # F-05's upload, left untouched


@pytest.fixture
def pgp_partner(tmp_path: Path) -> Iterator[SftpPartner]:
    with SftpPartner(tmp_path / "sftp", pgp_key=stored_pgp_key(tmp_path / "sftp")) as running:
        yield running


def test_the_pgp_partner_publishes_its_public_key_and_keeps_it_across_restarts(
    tmp_path: Path,
) -> None:
    first = stored_pgp_key(tmp_path / "sftp")
    public = (tmp_path / "sftp" / "pub" / "globex_pgp.asc").read_text()
    assert stored_pgp_key(tmp_path / "sftp") == first
    assert pgp.fingerprint(public) == pgp.fingerprint(first, secret=True)


def test_the_file_suite_passes_encrypted_against_the_pgp_partner(
    pgp_partner: SftpPartner,
) -> None:
    public = (pgp_partner.server.root / "pub" / "globex_pgp.asc").read_text()
    outcomes = _run_library(_endpoint(pgp_partner, pgp_partner_key=public))
    failed = [
        (o.code, s.name, s.failure) for o in outcomes for s in o.steps if s.status != "passed"
    ]
    assert not failed
    archived = sorted(p.name for p in (pgp_partner.server.root / "archive").iterdir())
    assert [n for n in archived if n.endswith(".csv.pgp")] and not [
        n for n in archived if n.endswith(".csv")
    ]


CLEAR = """
name: t
tests:
  - name: an inventory file in clear
    steps:
      - action:
          type: sftpUpload
          endpoint: files
          name: globex_inventory_20250916T020000Z_001.csv
          csv: {header: [sku, quantity], rows: [[WIDGET-001, 1]]}
          manifest: true
      - action: {type: waitForFile, endpoint: files, dir: error, pattern: "*_001.errors.csv",
                 timeoutMs: 10000, intervalMs: 20}
        assertions:
          - assertions:
              - {path: "file.csv.rows[0][1]", operator: contains,
                 value: files must be PGP-encrypted to our key}
"""


def test_the_pgp_partner_rejects_a_file_sent_in_clear(pgp_partner: SftpPartner) -> None:
    suite = parse_suite(CLEAR, filename="clear.yaml")
    context = RunContext(endpoints={"files": _endpoint(pgp_partner)})
    [outcome] = asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"])))
    assert outcome.status == "passed", [(s.name, s.failure) for s in outcome.steps]
