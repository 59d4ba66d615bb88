"""dbQuery against a real PostgreSQL: a scratch database standing in for a partner's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite
from tests.pg import throwaway_database


@pytest.fixture(scope="module")
def partner_db() -> Iterator[str]:
    import psycopg

    with throwaway_database("partner_sandbox") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE products (sku text primary key, stock int, price numeric(10,2))"
            )
            conn.execute(
                "INSERT INTO products VALUES ('WIDGET-001', 50, 9.99), ('GADGET-001', 5, 49.99)"
            )
        yield url


def _run(url: str, steps: str, *, writable: bool = False, timeout_ms: int = 30_000) -> Any:
    text = f"name: t\ntests:\n  - name: s\n    steps:\n{steps}"
    context = RunContext(
        endpoints={
            "orders-db": EndpointConfig(
                name="orders-db", base_url=url, kind="postgresql", writable=writable
            )
        },
        request_timeout_ms=timeout_ms,
    )
    suite = parse_suite(text, filename="t.yaml")
    (outcome,) = asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"])))
    return outcome


def test_query_rows_are_available_as_data(partner_db: str) -> None:
    outcome = _run(
        partner_db,
        """      - action: {type: dbQuery, database: orders-db,
                 query: "SELECT stock, price FROM products WHERE sku = 'GADGET-001'"}
        assertions:
          - assertions:
              - {path: "data[0].stock", operator: eq, value: 5}
              - {path: "data[0].price", operator: eq, value: 49.99}
""",
    )
    assert outcome.status == "passed", outcome.steps[0]


def test_query_parameters_and_templates_are_bound(partner_db: str) -> None:
    outcome = _run(
        partner_db,
        """      - action: {type: dbQuery, database: orders-db,
                 query: "SELECT stock FROM products WHERE sku = %s", params: ["WIDGET-001"]}
        assertions: [{assertions: [{path: "data[0].stock", operator: eq, value: 50}]}]
""",
    )
    assert outcome.status == "passed", outcome.steps[0]


def test_writes_are_refused_unless_the_endpoint_is_writable(partner_db: str) -> None:
    outcome = _run(
        partner_db,
        """      - action: {type: dbQuery, database: orders-db,
                 query: "UPDATE products SET stock = 0"}
""",
    )
    failure = outcome.steps[0].failure
    assert failure.kind == "db_error"
    assert "read-only" in failure.message


def test_writable_endpoint_commits(partner_db: str) -> None:
    steps = """      - action: {type: dbQuery, database: orders-db,
                 query: "UPDATE products SET stock = 49 WHERE sku = 'WIDGET-001' RETURNING stock"}
        assertions: [{assertions: [{path: "data[0].stock", operator: eq, value: 49}]}]
"""
    assert _run(partner_db, steps, writable=True).status == "passed"
    check = """      - action: {type: dbQuery, database: orders-db,
                 query: "SELECT stock FROM products WHERE sku = 'WIDGET-001'"}
        assertions: [{assertions: [{path: "data[0].stock", operator: eq, value: 49}]}]
"""
    assert _run(partner_db, check).status == "passed"


def test_unknown_database_endpoint_is_an_error(partner_db: str) -> None:
    outcome = _run(
        partner_db, "      - action: {type: dbQuery, database: postgres-db, query: SELECT 1}\n"
    )
    assert outcome.steps[0].status == "error"
    assert "orders-db" in outcome.steps[0].failure.message


def test_database_on_a_refused_address_is_not_contacted() -> None:
    outcome = _run(
        "postgresql://u@169.254.169.254:5432/x",
        "      - action: {type: dbQuery, database: orders-db, query: SELECT 1}\n",
    )
    assert "not a public address" in outcome.steps[0].failure.message


def test_slow_query_is_cut_by_the_statement_timeout(partner_db: str) -> None:
    outcome = _run(
        partner_db,
        "      - action: {type: dbQuery, database: orders-db, query: SELECT pg_sleep(5)}\n",
        timeout_ms=300,
    )
    assert outcome.steps[0].failure.kind == "db_error"
    assert "statement timeout" in outcome.steps[0].failure.message
    assert outcome.steps[0].duration_ms < 3000


def test_supported_connection_parameters_in_the_url_are_honoured(partner_db: str) -> None:
    outcome = _run(
        f"{partner_db}?application_name=certdash-probe&sslmode=disable",
        """      - action: {type: dbQuery, database: orders-db,
                 query: "SELECT current_setting('application_name') AS name"}
        assertions:
          - assertions:
              - {path: "data[0].name", operator: eq, value: certdash-probe}
""",
    )
    assert outcome.status == "passed", outcome.steps[0]


def test_a_connection_parameter_that_could_bypass_the_policy_is_refused(partner_db: str) -> None:
    outcome = _run(
        f"{partner_db}?hostaddr=10.0.0.1",
        "      - action: {type: dbQuery, database: orders-db, query: SELECT 1}\n",
    )
    failure = outcome.steps[0].failure
    assert failure.kind == "db_error"
    assert "connection parameter 'hostaddr' is not supported" in failure.message
