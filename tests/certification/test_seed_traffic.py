"""The seed's checkout happy path and card-declined definitions, unchanged, run by the product
(``run_suite --inline``) against the demo sandbox, whose services call the partner's hosted
mocks on Django's live server: every ``match`` and ``count`` is judged on recorded traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from certification.models import CapturedRequest, Run, StepResult
from certification.traffic import mock_base_url
from demo.sandbox import SandboxServer
from partners import services
from partners.models import Partner
from tests.pg import throwaway_database

pytestmark = pytest.mark.django_db(transaction=True)

DEFINITIONS = (
    Path(__file__).resolve().parents[2] / "certification" / "library" / "seed" / "definitions"
)


@pytest.fixture
def sandbox_db() -> Iterator[str]:
    with throwaway_database("seed_traffic") as url:
        yield url


def _certify(partner: Partner, live_server: Any, database: str, definition: str) -> Run:
    base = mock_base_url(partner).replace("http://127.0.0.1:8000", live_server.url)
    with SandboxServer(database_url=database, third_party_base_url=base) as sandbox:
        for name in ("api-gateway", "payment-service"):
            services.endpoint_save(
                partner=partner, by="test", name=name, base_url=sandbox.url,
                is_default=name == "api-gateway", auth_kind="none", auth_config={},
                new_secrets={},
            )  # fmt: skip
        services.endpoint_save(
            partner=partner, by="test", name="postgres-db", base_url=database,
            is_default=False, auth_kind="none", auth_config={}, new_secrets={},
            kind="postgresql", writable=True,
        )  # fmt: skip
        try:
            call_command("run_suite", "--partner", partner.external_id, "--suite",
                         str(DEFINITIONS / definition), "--inline")  # fmt: skip
        except SystemExit as exc:
            assert exc.code == 0
    return Run.objects.get()


def _checks(run: Run) -> list[tuple[str, str, bool, bool]]:
    return [
        (step.name, a["path"], a["passed"], a.get("evaluated", True))
        for step in StepResult.objects.filter(scenario_run__run=run).order_by("step_index")
        for a in step.assertions
    ]


def test_the_happy_path_passes_with_every_match_judged_on_recorded_traffic(
    live_server: Any, partner_a: Partner, sandbox_db: str
) -> None:
    run = _certify(partner_a, live_server, sandbox_db, "checkout-happy-path.yaml")
    assert run.status == "passed", run.reasons
    checks = _checks(run)
    assert all(evaluated for *_, evaluated in checks)
    paths = [path for _, path, _, _ in checks]
    for path in ("request.body.amount", "request.body.currency", "response.body.tracking_code",
                 "request.body.personalizations[0].to[0].email", "request.body.To",
                 "request.body.Body"):  # fmt: skip
        assert path in paths
    origins = set(CapturedRequest.objects.filter(run=run).values_list("origin", flat=True))
    assert origins == {"payment-service", "shipping-service", "notification-service"}


def test_card_declined_passes_with_no_label_and_no_email_counted_on_real_traffic(
    live_server: Any, partner_a: Partner, sandbox_db: str
) -> None:
    run = _certify(partner_a, live_server, sandbox_db, "checkout-card-declined.yaml")
    assert run.status == "passed", run.reasons
    counts = [(passed, evaluated) for _, path, passed, evaluated in _checks(run) if path == "count"]
    assert counts == [(True, True), (True, True)]
    stripe = CapturedRequest.objects.get(run=run)
    assert (stripe.url, stripe.response_status) == ("api.stripe.com/v1/charges", 402)
