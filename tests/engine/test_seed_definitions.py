"""The playbook seed's four example definitions, unmodified, run by the engine against the demo
sandbox with its state in PostgreSQL, so that their ``dbQuery`` steps read (and the webhook
definition's INSERTs write) the very rows the sandbox's API uses.

What the sandbox cannot provide is switched, never edited into the definitions: the sandbox runs in
Stripe test mode (the webhook definition sends ``stripe-signature: whsec_test_signature``), and
the card-declined definition, which relies on the hosted ``mock-stripe-card-declined``, is run
after ``POST /sandbox/scenario {"payments": "card_declined"}``. Assertion groups with ``match``
check hosted-mock traffic, which this engine version does not evaluate: it says so in a note.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certification.engine.model import (
    EndpointConfig,
    HttpRequest,
    RunContext,
    ScenarioOutcome,
    Suite,
)
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import load_suite_file
from demo.sandbox import SandboxServer
from tests.pg import sql_rows, throwaway_database

DEFINITIONS = (
    Path(__file__).resolve().parents[2] / "certification" / "library" / "seed" / "definitions"
)
POLICY = AddressPolicy(["127.0.0.0/8"])
NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True)
class Expected:
    """What the seed says a definition checks, by step index."""

    file: str
    name: str
    status: dict[int, int]  # HTTP status of httpRequest steps
    data: dict[int, list[dict[str, Any]]]  # rows returned by dbQuery steps
    payments: str = "succeed"  # the sandbox's payment scenario for this run
    body_contains: dict[int, tuple[str, str]] = field(default_factory=dict)


EXPECTED = [
    Expected(
        "checkout-happy-path.yaml",
        "checkout-happy-path",
        status={0: 201, 1: 200},
        data={2: [{"status": "paid", "total_cents": 2498}], 3: [{"stock": 49}]},
    ),
    Expected(
        "checkout-card-declined.yaml",
        "checkout-card-declined",
        status={0: 201, 1: 402},
        data={2: [{"status": "payment_failed"}], 3: [{"stock": 50}]},
        payments="card_declined",
        body_contains={1: ("error", "declined")},
    ),
    Expected(
        "checkout-out-of-stock.yaml",
        "out-of-stock-rejection",
        status={0: 409},
        data={1: [{"stock": 5}]},
        body_contains={0: ("error", "insufficient stock")},
    ),
    Expected(
        "webhook-charge-succeeded.yaml",
        "stripe-webhook-charge-succeeded",
        status={2: 200},
        # The two INSERTs return no rows; the final SELECT sees order 100 paid.
        data={0: [], 1: [], 3: [{"status": "paid"}]},
    ),
]


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("seed_definitions") as url:
        yield url


@pytest.fixture(scope="module")
def sandbox(database: str) -> Iterator[SandboxServer]:
    with SandboxServer(database_url=database, stripe_test_mode=True) as server:
        yield server


def context(sandbox_url: str, database_url: str) -> RunContext:
    return RunContext(
        endpoints={
            "api-gateway": EndpointConfig(name="api-gateway", base_url=sandbox_url),
            "payment-service": EndpointConfig(name="payment-service", base_url=sandbox_url),
            "postgres-db": EndpointConfig(
                name="postgres-db", base_url=database_url, kind="postgresql", writable=True
            ),
        },
        # As a real run has: every POST then carries an Idempotency-Key the sandbox stores.
        run_id=uuid.uuid4().hex,
    )


def run(suite: Suite, sandbox: SandboxServer, database: str) -> ScenarioOutcome:
    (outcome,) = asyncio.run(run_suite(suite, context(sandbox.url, database), policy=POLICY))
    return outcome


def describe(outcome: ScenarioOutcome) -> str:
    return json.dumps(outcome.to_dict(), indent=1, default=str)


def test_the_four_seed_definitions_validate() -> None:
    files = sorted(p.name for p in DEFINITIONS.glob("*.yaml"))
    assert files == sorted(e.file for e in EXPECTED)
    for expected in EXPECTED:
        suite = load_suite_file(DEFINITIONS / expected.file)
        assert suite.name == expected.name
        assert len(suite.scenarios) == 1
        # Only the Dokkimi SERVICE/DATABASE items are set aside; nothing else is wrong.
        assert all("is not used by certification runs" in w for w in suite.warnings)


@pytest.mark.parametrize("expected", EXPECTED, ids=[e.file.removesuffix(".yaml") for e in EXPECTED])
def test_seed_definition_passes_against_the_postgres_sandbox(
    expected: Expected, sandbox: SandboxServer, database: str
) -> None:
    suite = load_suite_file(DEFINITIONS / expected.file)
    sandbox.reset_state()
    if expected.payments != "succeed":
        reply = post(f"{sandbox.url}/sandbox/scenario", {"payments": expected.payments})
        assert reply == (200, {"payments": expected.payments})

    outcome = run(suite, sandbox, database)

    steps = suite.scenarios[0].steps
    # `match` groups check captured traffic, which is not built yet: never reported as passed.
    any_match = any(g.match is not None for step in steps for g in step.groups)
    assert outcome.status == ("unevaluated" if any_match else "passed"), describe(outcome)
    assert len(outcome.steps) == len(steps)
    for index, (step, result) in enumerate(zip(steps, outcome.steps, strict=True)):
        has_match = any(g.match is not None for g in step.groups)
        status = "unevaluated" if has_match else "passed"
        assert (result.status, result.failure) == (status, None), describe(outcome)
        # Every plain assertion was evaluated and passed; each `match` check is not evaluated.
        plain = sum(len(g.assertions) for g in step.groups if g.match is None)
        evaluated = [a for a in result.assertions if a.evaluated]
        assert len(evaluated) == plain, index
        assert all(a.passed for a in evaluated), result.assertions
        unevaluated = [a for a in result.assertions if not a.evaluated]
        assert bool(unevaluated) == has_match, index
        assert all(not a.passed and NOT_EVALUATED in a.message for a in unevaluated), index
    for index, status in expected.status.items():
        assert outcome.steps[index].response.status == status, index
    for index, (key, text) in expected.body_contains.items():
        assert text in json.loads(outcome.steps[index].response.body)[key]
    for index, rows in expected.data.items():
        assert outcome.steps[index].data == rows, index
    assert "Traceback" not in describe(outcome)


def test_webhook_definition_pays_order_100_once(sandbox: SandboxServer, database: str) -> None:
    [expected] = [e for e in EXPECTED if e.file == "webhook-charge-succeeded.yaml"]
    suite = load_suite_file(DEFINITIONS / expected.file)
    sandbox.reset_state()
    outcome = run(suite, sandbox, database)
    assert all(step.status in ("passed", "unevaluated") for step in outcome.steps)
    stocks = "SELECT sku, stock FROM products ORDER BY id"
    assert sql_rows(database, stocks) == [
        ("WIDGET-001", 49),
        ("WIDGET-002", 29),
        ("GADGET-001", 5),
    ]
    # Stripe redelivers the same event: acknowledged, not processed again.
    [webhook] = [s for s in suite.scenarios[0].steps if isinstance(s.action, HttpRequest)]
    status, body = post(
        f"{sandbox.url}/webhooks/stripe", webhook.action.body, headers=webhook.action.headers
    )
    assert (status, body) == (200, {"received": True, "replayed": True})
    assert sql_rows(database, stocks)[:2] == [("WIDGET-001", 49), ("WIDGET-002", 29)]
    assert sql_rows(database, "SELECT id FROM sandbox_webhook_events") == [("evt_test_001",)]
    order = sql_rows(database, "SELECT status, total_cents FROM orders WHERE id = 100")
    assert order == [("paid", 2498)]


def test_card_declined_definition_fails_without_the_scenario_switch(
    sandbox: SandboxServer, database: str
) -> None:
    """The switch is what makes it pass: without it the sandbox charges the card."""
    suite = load_suite_file(DEFINITIONS / "checkout-card-declined.yaml")
    sandbox.reset_state()
    outcome = run(suite, sandbox, database)
    assert outcome.status == "failed"
    assert outcome.steps[1].response.status == 200
    assert [s.status for s in outcome.steps] == ["passed", "failed", "skipped", "skipped"]
