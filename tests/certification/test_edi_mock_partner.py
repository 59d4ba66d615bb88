"""Unsigned AS2 against a third-party counterparty: the product's x12Send and x12Receive with
``mock-edi`` (a mock X12 trading partner on 127.0.0.1 that speaks unsigned AS2 only), its
997 posted back to the partner's Certdash AS2 URL on Django's live server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from mockedi.testing import Mock

from certification.models import CapturedRequest, Run, StepResult
from partners import services
from partners.models import Partner

pytestmark = pytest.mark.django_db(transaction=True)

SUITE = """
name: edi-unsigned
tests:
  - name: an order to mock-edi
    steps:
      - name: send the 850
        action:
          type: x12Send
          endpoint: edi
          order:
            po: "4500000042"
            date: "20261201"
            lines: [{sku: WIDGET-001, quantity: 100, price: "12.50"}]
        assertions:
          - assertions:
              - {path: mdn.processed, operator: eq, value: true}
              - {path: mdn.micMatches, operator: eq, value: true}
              - {path: mdn.signed, operator: eq, value: false}
      - name: its 997
        action: {type: x12Receive, endpoint: edi, set: "997", timeoutMs: 20000}
        assertions:
          - assertions:
              - {path: ack.accepted, operator: eq, value: true}
              - {path: "ack.groups[0].sets[0].set", operator: eq, value: "850"}
"""


@pytest.fixture
def mock_edi() -> Iterator[Mock]:
    with Mock.start() as mock:
        yield mock


def _certify(partner: Partner, mock: Mock, live_server: Any, tmp_path: Path) -> Run:
    services.endpoint_save(
        partner=partner, by="test", name="edi", base_url=f"{mock.base}/as2", is_default=False,
        auth_kind="as2_plain", auth_config={"as2_from": "ACME", "as2_to": "MOCKEDI"},
        new_secrets={}, kind="as2",
    )  # fmt: skip
    inbound = partner.as2_url.replace("http://127.0.0.1:8000", live_server.url)
    mock.patch("/_mock/partners/ACME", {"as2_url": inbound})
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    with contextlib.suppress(SystemExit):
        call_command("run_suite", "--partner", partner.external_id, "--suite", str(suite),
                     "--inline")  # fmt: skip
    return Run.objects.get(partner=partner)


def test_an_unsigned_850_gets_mock_edis_mdn_and_997(
    partner_a: Partner, mock_edi: Mock, live_server: Any, tmp_path: Path
) -> None:
    run = _certify(partner_a, mock_edi, live_server, tmp_path)
    steps = list(StepResult.objects.filter(scenario_run__run=run).order_by("step_index"))
    assert run.status == "passed", [(s.name, s.failure) for s in steps]
    assert steps[0].data["mdn"]["disposition"].endswith("; processed")
    received = CapturedRequest.objects.filter(run=run, source="as2", name="document")
    assert received.exists()
    assert all(row.signature_valid is None for row in received)  # unsigned, as configured
