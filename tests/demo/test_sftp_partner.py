"""The demo file partner (an SFTP server whose poller applies the playbook's batch rules) and
the shipped file suite: B-003, B-101 and the negative cases all pass against it, over real
SFTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import load_suite_file
from demo.sftp_partner import PASSWORD, USER, SftpPartner

LIBRARY = Path(__file__).resolve().parents[2] / "certification" / "library" / "b2b" / "files.yaml"


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[SftpPartner]:
    with SftpPartner(tmp_path / "sftp") as running:
        yield running


def test_the_file_suite_passes_against_the_demo_file_partner(partner: SftpPartner) -> None:
    endpoint = EndpointConfig(
        name="files",
        base_url=partner.url,
        kind="sftp",
        auth_kind="ssh_password",
        auth_config={"username": USER, "host_key": partner.server.host_key_line},
        secrets={"password": PASSWORD},
    )
    suite = load_suite_file(LIBRARY)
    context = RunContext(endpoints={"files": endpoint})
    outcomes = asyncio.run(
        run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"]), parallel=8)
    )
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
