"""The demo partner sandbox, driven over real HTTP the way scenario suites drive it.

Every API test runs twice: against the in-memory sandbox and against the PostgreSQL-backed one
(``database_url``), on a throwaway database created for this module. Without PostgreSQL the
PostgreSQL variants are skipped, unless the CI environment variable is set: then they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import selectors
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from demo.sandbox import SandboxServer
from tests.pg import PG_ADMIN_URL, sql_rows, throwaway_database

REPO = Path(__file__).resolve().parents[2]
# The same knob as the dbQuery tests: a server where the tests may create and drop databases.
TWO_WIDGETS = {
    "customerId": 1,
    "items": [{"sku": "WIDGET-001", "quantity": 1}, {"sku": "WIDGET-002", "quantity": 1}],
}
ONE_WIDGET = {"customerId": 1, "items": [{"sku": "WIDGET-001", "quantity": 1}]}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: Any


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 10,
) -> Reply:
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:  # 4xx/5xx are answers here, not failures
        response = error
    with response:
        raw = response.read()
        return Reply(response.status, response.headers, json.loads(raw) if raw else None)


def sign(payload: bytes, timestamp: int, secret: str = "whsec_demo") -> str:
    # Written out here rather than imported, so the test pins the documented header format.
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def charge_succeeded(event_id: str, order_id: int) -> bytes:
    event = {
        "id": event_id,
        "type": "charge.succeeded",
        "data": {"object": {"id": "ch_test_123", "metadata": {"order_id": str(order_id)}}},
    }
    return json.dumps(event).encode()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database("sandbox_test") as database_url:
        yield database_url


@pytest.fixture(scope="module", params=["memory", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory sandbox, else the module's throwaway database."""
    return None if request.param == "memory" else request.getfixturevalue("pg_database")


@pytest.fixture(scope="module")
def server(database_url: str | None) -> Iterator[SandboxServer]:
    with SandboxServer(database_url=database_url) as running:
        yield running


@pytest.fixture
def url(server: SandboxServer) -> str:
    server.reset_state()
    server.reset_timings()
    return server.url


def stock(url: str, sku: str) -> int:
    return call(url, "GET", f"/v1/products/{sku}").body["product"]["stock"]


def new_order(url: str, body: dict[str, Any] = ONE_WIDGET) -> int:
    reply = call(url, "POST", "/v1/orders", body)
    assert reply.status == 201, reply.body
    return reply.body["order"]["id"]


def test_health_answers_ok_with_a_request_id(url: str) -> None:
    reply = call(url, "GET", "/health")
    assert (reply.status, reply.body) == (200, {"status": "ok"})
    assert reply.headers["Content-Type"].startswith("application/json")
    assert len(reply.headers["X-Request-Id"]) == 36


def test_order_for_a_blue_and_a_red_widget_totals_2498(url: str) -> None:
    reply = call(url, "POST", "/v1/orders", TWO_WIDGETS)
    assert reply.status == 201
    order = reply.body["order"]
    assert (order["id"], order["status"], order["totalCents"]) == (11, "pending", 2498)
    assert order["items"] == [
        {"sku": "WIDGET-001", "quantity": 1, "unitPriceCents": 999},
        {"sku": "WIDGET-002", "quantity": 1, "unitPriceCents": 1499},
    ]
    assert call(url, "GET", "/v1/orders/11").body["order"] == order


def test_order_beyond_stock_is_409_insufficient_stock(url: str) -> None:
    body = {"customerId": 1, "items": [{"sku": "GADGET-001", "quantity": 10}]}
    reply = call(url, "POST", "/v1/orders", body)
    assert reply.status == 409
    assert reply.body == {
        "error": "insufficient stock for GADGET-001 (5 left)",
        "code": "insufficient_stock",
    }
    assert stock(url, "GADGET-001") == 5


def test_unknown_sku_is_422(url: str) -> None:
    body = {"customerId": 1, "items": [{"sku": "NOPE-1", "quantity": 1}]}
    reply = call(url, "POST", "/v1/orders", body)
    assert reply.status == 422
    assert reply.body == {"error": "unknown sku 'NOPE-1'", "code": "unknown_sku"}


def test_malformed_order_body_is_400_invalid_request(url: str) -> None:
    for data in (b"{not json", b"[]", json.dumps({"customerId": 1, "items": []}).encode()):
        reply = call(url, "POST", "/v1/orders", data=data)
        assert reply.status == 400, data
        assert reply.body["code"] == "invalid_request"


def test_unknown_order_is_404_naming_the_order(url: str) -> None:
    reply = call(url, "GET", "/v1/orders/99")
    assert reply.status == 404
    assert reply.body == {"error": "order 99 not found", "code": "not_found"}


def test_declined_card_is_402_marks_order_failed_and_keeps_stock(url: str) -> None:
    order_id = new_order(url)
    reply = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_card_declined"})
    assert reply.status == 402
    assert reply.body == {"error": "Your card was declined.", "code": "card_declined"}
    assert call(url, "GET", f"/v1/orders/{order_id}").body["order"]["status"] == "payment_failed"
    assert stock(url, "WIDGET-001") == 50


def test_scenario_header_declines_any_payment_method(url: str) -> None:
    order_id = new_order(url)
    reply = call(
        url,
        "POST",
        f"/v1/orders/{order_id}/pay",
        {"paymentMethod": "pm_test_visa"},
        headers={"X-Sandbox-Scenario": "card_declined"},
    )
    assert reply.status == 402
    assert stock(url, "WIDGET-001") == 50


def test_successful_payment_marks_paid_and_decrements_stock(url: str) -> None:
    order_id = new_order(url, TWO_WIDGETS)
    reply = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
    assert reply.status == 200
    assert reply.body["order"]["status"] == "paid"
    payment = reply.body["payment"]
    assert payment["id"].startswith("ch_")
    assert (payment["status"], payment["amount"], payment["currency"]) == (
        "succeeded",
        2498,
        "usd",
    )
    assert (stock(url, "WIDGET-001"), stock(url, "WIDGET-002")) == (49, 29)


def test_payment_replay_with_same_key_returns_same_payment_and_charges_once(url: str) -> None:
    order_id = new_order(url)
    pay = f"/v1/orders/{order_id}/pay"
    key = {"Idempotency-Key": "pay-once"}
    first = call(url, "POST", pay, {"paymentMethod": "pm_test_visa"}, headers=key)
    again = call(url, "POST", pay, {"paymentMethod": "pm_test_visa"}, headers=key)
    assert (first.status, again.status) == (200, 200)
    assert again.body["payment"]["id"] == first.body["payment"]["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stock(url, "WIDGET-001") == 49


def test_paying_a_paid_order_with_a_new_key_is_409_already_paid(url: str) -> None:
    order_id = new_order(url)
    pay = f"/v1/orders/{order_id}/pay"
    assert call(url, "POST", pay, {"paymentMethod": "pm_test_visa"}).status == 200
    reply = call(url, "POST", pay, {"paymentMethod": "pm_test_visa"})
    assert (reply.status, reply.body["code"]) == (409, "already_paid")
    assert stock(url, "WIDGET-001") == 49


def test_order_creation_replay_with_same_key_returns_the_same_order(url: str) -> None:
    key = {"Idempotency-Key": "order-once"}
    first = call(url, "POST", "/v1/orders", TWO_WIDGETS, headers=key)
    again = call(url, "POST", "/v1/orders", TWO_WIDGETS, headers=key)
    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert call(url, "GET", "/v1/orders/12").status == 404


def test_idempotency_key_reused_with_a_different_body_is_422(url: str) -> None:
    key = {"Idempotency-Key": "order-once"}
    assert call(url, "POST", "/v1/orders", TWO_WIDGETS, headers=key).status == 201
    reply = call(url, "POST", "/v1/orders", ONE_WIDGET, headers=key)
    assert (reply.status, reply.body["code"]) == (422, "idempotency_key_reused")


def test_signed_webhook_marks_the_order_paid(url: str) -> None:
    order_id = new_order(url)
    payload = charge_succeeded("evt_1", order_id)
    headers = {"X-Signature": sign(payload, int(time.time()))}
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=headers)
    assert (reply.status, reply.body) == (200, {"received": True, "replayed": False})
    assert call(url, "GET", f"/v1/orders/{order_id}").body["order"]["status"] == "paid"


def test_webhook_with_wrong_secret_is_401_invalid_signature(url: str) -> None:
    order_id = new_order(url)
    payload = charge_succeeded("evt_1", order_id)
    headers = {"X-Signature": sign(payload, int(time.time()), secret="whsec_other")}
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=headers)
    assert (reply.status, reply.body["code"]) == (401, "invalid_signature")
    assert call(url, "GET", f"/v1/orders/{order_id}").body["order"]["status"] == "pending"


def test_webhook_signed_outside_the_window_is_401_signature_expired(url: str) -> None:
    order_id = new_order(url)
    payload = charge_succeeded("evt_1", order_id)
    headers = {"X-Signature": sign(payload, int(time.time()) - 601)}
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=headers)
    assert (reply.status, reply.body["code"]) == (401, "signature_expired")


def test_redelivered_webhook_is_acknowledged_without_reprocessing(url: str) -> None:
    order_id = new_order(url)
    payload = charge_succeeded("evt_1", order_id)
    headers = {"X-Signature": sign(payload, int(time.time()))}
    assert call(url, "POST", "/webhooks/stripe", data=payload, headers=headers).status == 200
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=headers)
    assert (reply.status, reply.body) == (200, {"received": True, "replayed": True})
    assert stock(url, "WIDGET-001") == 49


def test_concurrent_payments_charge_once(url: str) -> None:
    """Requests racing for one order: one payment, whether they share a key or not."""

    async def race(order_id: int, headers: dict[str, str]) -> list[tuple[int, Any]]:
        async with aiohttp.ClientSession() as session:

            async def one() -> tuple[int, Any]:
                body = {"paymentMethod": "pm_test_visa"}
                pay = f"{url}/v1/orders/{order_id}/pay"
                async with session.post(pay, json=body, headers=headers) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(one() for _ in range(10)))

    keyed = asyncio.run(race(new_order(url), {"Idempotency-Key": "race"}))
    assert {status for status, _ in keyed} == {200}
    assert len({body["payment"]["id"] for _, body in keyed}) == 1
    unkeyed = asyncio.run(race(new_order(url), {}))
    assert sorted(status for status, _ in unkeyed) == [200] + [409] * 9
    assert stock(url, "WIDGET-001") == 48


def test_job_is_done_on_the_third_poll(url: str) -> None:
    created = call(url, "POST", "/v1/jobs", {})
    assert (created.status, created.body["job"]["status"]) == (202, "running")
    location = created.headers["Location"]
    assert location == f"/v1/jobs/{created.body['job']['id']}"
    polls = [call(url, "GET", location).body["job"]["status"] for _ in range(3)]
    assert polls == ["running", "running", "done"]


def test_slow_endpoint_outlasts_a_short_client_timeout(url: str) -> None:
    with pytest.raises(TimeoutError):
        call(url, "GET", "/v1/slow?ms=2000", timeout=0.2)


def test_status_endpoint_answers_with_the_requested_code(url: str) -> None:
    reply = call(url, "GET", "/v1/status/503")
    assert (reply.status, reply.body) == (503, {"status": 503})


def test_unknown_route_is_a_json_404(url: str) -> None:
    reply = call(url, "GET", "/v2/nothing-here")
    assert reply.status == 404
    assert reply.body == {"error": "not found", "code": "not_found"}
    assert reply.headers["X-Request-Id"]


def test_wrong_method_is_a_json_405(url: str) -> None:
    reply = call(url, "DELETE", "/v1/orders")
    assert (reply.status, reply.body["code"]) == (405, "method_not_allowed")
    assert "POST" in reply.headers["Allow"]


def test_reset_state_returns_to_the_seed(server: SandboxServer, url: str) -> None:
    order_id = new_order(url, TWO_WIDGETS)
    call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
    server.reset_state()
    assert (stock(url, "WIDGET-001"), stock(url, "WIDGET-002")) == (50, 30)
    assert call(url, "GET", f"/v1/orders/{order_id}").status == 404
    assert new_order(url) == 11


def test_reset_endpoint_returns_204_and_restores_stock(url: str) -> None:
    order_id = new_order(url)
    call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
    reply = call(url, "POST", "/sandbox/reset")
    assert reply.status == 204
    assert stock(url, "WIDGET-001") == 50


def test_server_timings_record_every_request_until_reset(server: SandboxServer, url: str) -> None:
    for _ in range(5):
        call(url, "GET", "/health")
    timings = server.server_timings()
    assert len(timings) == 5
    assert all(t >= 0 for t in timings)
    server.reset_timings()
    assert server.server_timings() == []


def test_delay_is_honoured_and_shows_in_server_timings(database_url: str | None) -> None:
    with SandboxServer(delay_ms=50, database_url=database_url) as server:
        started = time.perf_counter()
        call(server.url, "GET", "/health")
        elapsed_ms = (time.perf_counter() - started) * 1000
        [timing] = server.server_timings()
    assert timing >= 50
    assert elapsed_ms >= timing


def test_jittered_delay_stays_within_its_band(database_url: str | None) -> None:
    with SandboxServer(delay_ms=30, jitter_ms=20, seed=7, database_url=database_url) as server:
        for _ in range(5):
            call(server.url, "GET", "/health")
        timings = server.server_timings()
    assert len(timings) == 5
    assert min(timings) >= 10
    assert max(timings) < 50 + 500  # generous: a loaded machine may wake the loop late


def test_delay_does_not_serialize_concurrent_requests(database_url: str | None) -> None:
    async def burst(url: str) -> float:
        async with aiohttp.ClientSession() as session:

            async def one() -> int:
                async with session.get(url + "/health") as response:
                    await response.read()
                    return response.status

            started = time.perf_counter()
            statuses = await asyncio.gather(*(one() for _ in range(50)))
            assert statuses == [200] * 50
            return time.perf_counter() - started

    with SandboxServer(delay_ms=100, database_url=database_url) as server:
        elapsed = asyncio.run(burst(server.url))
        assert len(server.server_timings()) == 50
    assert elapsed < 2.0  # 50 x 100 ms one after the other would take 5 s


def test_api_key_is_required_on_v1_when_configured(database_url: str | None) -> None:
    with SandboxServer(api_key="demo-sandbox-key", database_url=database_url) as server:
        missing = call(server.url, "GET", "/v1/products/WIDGET-001")
        wrong = call(server.url, "GET", "/v1/products/WIDGET-001", headers={"X-API-Key": "nope"})
        right = call(
            server.url, "GET", "/v1/products/WIDGET-001", headers={"X-API-Key": "demo-sandbox-key"}
        )
        health = call(server.url, "GET", "/health")
    assert (missing.status, missing.body["error"]) == (401, "invalid api key")
    assert wrong.status == 401
    assert right.status == 200
    assert health.status == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_line_starts_a_server_that_answers_health(database_url: str | None) -> None:
    port = _free_port()
    extra = [] if database_url is None else ["--database-url", database_url]
    with subprocess.Popen(
        [sys.executable, "-m", "demo.sandbox", "--port", str(port), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=15), "the sandbox printed nothing"
            line = process.stdout.readline().strip()
            assert line == f"Demo sandbox listening on http://127.0.0.1:{port}", (
                line or process.stderr.read()
            )
            reply = call(f"http://127.0.0.1:{port}", "GET", "/health")
            assert (reply.status, reply.body) == (200, {"status": "ok"})
        finally:
            process.terminate()
            process.wait(timeout=15)
    # SIGTERM (what `make run` sends on Ctrl-C) is a clean shutdown, not a crash.
    assert process.returncode == 0


# --------------------------------------------------------------------------------------------
# Switches for running unmodified playbook definitions (both modes)
# --------------------------------------------------------------------------------------------

STRIPE_TEST = {"Stripe-Signature": "whsec_test_signature"}


def test_payment_scenario_switch_applies_to_every_payment_until_reset(
    server: SandboxServer, url: str
) -> None:
    assert call(url, "GET", "/sandbox/scenario").body == {"payments": "succeed"}
    reply = call(url, "POST", "/sandbox/scenario", {"payments": "card_declined"})
    assert (reply.status, reply.body) == (200, {"payments": "card_declined"})
    for _ in range(2):
        order_id = new_order(url)
        pay = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
        assert pay.status == 402
        assert pay.body == {"error": "Your card was declined.", "code": "card_declined"}
        order = call(url, "GET", f"/v1/orders/{order_id}").body["order"]
        assert order["status"] == "payment_failed"
    assert stock(url, "WIDGET-001") == 50
    # A scenario header on the request still wins over the switch.
    order_id = new_order(url)
    headers = {"X-Sandbox-Scenario": "rate_limited"}
    pay = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "x"}, headers=headers)
    assert (pay.status, pay.headers["Retry-After"]) == (429, "2")
    assert call(url, "POST", "/sandbox/reset").status == 204
    assert call(url, "GET", "/sandbox/scenario").body == {"payments": "succeed"}
    order_id = new_order(url)
    pay = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
    assert pay.status == 200
    call(url, "POST", "/sandbox/scenario", {"payments": "rate_limited"})
    server.reset_state()
    assert call(url, "GET", "/sandbox/scenario").body == {"payments": "succeed"}


def test_payment_scenario_switch_rejects_what_it_does_not_know(url: str) -> None:
    for body in ({"payments": "explode"}, {"payment": "card_declined"}, {"payments": None}, []):
        reply = call(url, "POST", "/sandbox/scenario", body)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request"), body
    assert call(url, "GET", "/sandbox/scenario").body == {"payments": "succeed"}


def test_stripe_test_signature_is_refused_outside_stripe_test_mode(url: str) -> None:
    order_id = new_order(url)
    payload = charge_succeeded("evt_test_001", order_id)
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=STRIPE_TEST)
    assert (reply.status, reply.body["code"]) == (401, "invalid_signature")
    assert "--stripe-test-mode" in reply.body["error"]
    assert call(url, "GET", f"/v1/orders/{order_id}").body["order"]["status"] == "pending"


def test_stripe_test_mode_accepts_only_the_test_value_and_still_verifies_x_signature(
    database_url: str | None,
) -> None:
    with SandboxServer(database_url=database_url, stripe_test_mode=True) as server:
        server.reset_state()
        url = server.url
        order_id = new_order(url, TWO_WIDGETS)
        payload = charge_succeeded("evt_test_001", order_id)
        first = call(url, "POST", "/webhooks/stripe", data=payload, headers=STRIPE_TEST)
        again = call(url, "POST", "/webhooks/stripe", data=payload, headers=STRIPE_TEST)
        assert (first.status, first.body) == (200, {"received": True, "replayed": False})
        assert (again.status, again.body) == (200, {"received": True, "replayed": True})
        assert call(url, "GET", f"/v1/orders/{order_id}").body["order"]["status"] == "paid"
        assert (stock(url, "WIDGET-001"), stock(url, "WIDGET-002")) == (49, 29)

        other = new_order(url)
        payload = charge_succeeded("evt_2", other)
        wrong = call(
            url, "POST", "/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=0"}
        )
        assert (wrong.status, wrong.body["code"]) == (401, "invalid_signature")
        # With X-Signature the HMAC check decides, whatever Stripe-Signature says.
        forged = {**STRIPE_TEST, "X-Signature": sign(payload, int(time.time()), "whsec_other")}
        reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=forged)
        assert (reply.status, reply.body["code"]) == (401, "invalid_signature")
        assert call(url, "GET", f"/v1/orders/{other}").body["order"]["status"] == "pending"
        signed = {"X-Signature": sign(payload, int(time.time()))}
        assert call(url, "POST", "/webhooks/stripe", data=payload, headers=signed).status == 200
        assert call(url, "GET", f"/v1/orders/{other}").body["order"]["status"] == "paid"


def test_order_lines_keep_the_order_they_were_sent_in(url: str) -> None:
    body = {
        "customerId": 1,
        "items": [{"sku": "GADGET-001", "quantity": 2}, {"sku": "WIDGET-001", "quantity": 1}],
    }
    created = call(url, "POST", "/v1/orders", body).body["order"]
    assert [i["sku"] for i in created["items"]] == ["GADGET-001", "WIDGET-001"]
    assert call(url, "GET", f"/v1/orders/{created['id']}").body["order"] == created


def test_out_of_range_ids_are_not_found_rather_than_errors(url: str) -> None:
    huge = 999_999_999_999_999_999
    assert call(url, "GET", f"/v1/orders/{huge}").status == 404
    pay = call(url, "POST", f"/v1/orders/{huge}/pay", {"paymentMethod": "pm_test_visa"})
    assert (pay.status, pay.body["code"]) == (404, "not_found")
    assert call(url, "POST", "/v1/jobs", {}).body["job"]["id"] == "job_1"
    for job in ("job_01", "job_99999999999", "job_x"):
        assert call(url, "GET", f"/v1/jobs/{job}").status == 404, job
    assert call(url, "GET", "/v1/products/WIDGET-001%00").status == 404
    order = {"customerId": 2**40, "items": [{"sku": "WIDGET-001", "quantity": 1}]}
    reply = call(url, "POST", "/v1/orders", order)
    assert (reply.status, reply.body["code"]) == (422, "unknown_customer")
    payload = charge_succeeded("evt_huge", huge)
    headers = {"X-Signature": sign(payload, int(time.time()))}
    reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=headers)
    assert (reply.status, reply.body["code"]) == (422, "unknown_order")


# --------------------------------------------------------------------------------------------
# PostgreSQL mode only
# --------------------------------------------------------------------------------------------

# The playbook seed's data model, verbatim (deliberately not imported from demo.sandbox).
SEED_DDL = """
CREATE TABLE customers (
  id SERIAL PRIMARY KEY,
  email VARCHAR(200) NOT NULL,
  phone VARCHAR(20),
  name VARCHAR(100) NOT NULL
);

CREATE TABLE products (
  id SERIAL PRIMARY KEY,
  sku VARCHAR(50) UNIQUE NOT NULL,
  name VARCHAR(200) NOT NULL,
  price_cents INTEGER NOT NULL,
  stock INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
  id SERIAL PRIMARY KEY,
  customer_id INTEGER REFERENCES customers(id),
  status VARCHAR(20) DEFAULT 'pending',
  total_cents INTEGER NOT NULL,
  created_at TIMESTAMP DEFAULT NOW()
);

CREATE TABLE order_items (
  order_id INTEGER REFERENCES orders(id),
  product_id INTEGER REFERENCES products(id),
  quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
"""
SEED_TABLES = ("customers", "products", "orders", "order_items")
COLUMNS_SQL = """
SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,
       replace(column_default, 'seed.', '')
FROM information_schema.columns
WHERE table_schema = %s AND table_name = ANY(%s)
ORDER BY table_name, ordinal_position
"""
CONSTRAINTS_SQL = """
SELECT cl.relname, co.conname, replace(pg_get_constraintdef(co.oid), 'seed.', '')
FROM pg_constraint co
JOIN pg_class cl ON cl.oid = co.conrelid
JOIN pg_namespace ns ON ns.oid = cl.relnamespace
WHERE ns.nspname = %s AND cl.relname = ANY(%s)
ORDER BY 1, 2
"""


def test_postgres_mode_gives_an_empty_database_the_seeds_schema_and_data() -> None:
    with throwaway_database("sandbox_test") as db, SandboxServer(database_url=db) as server:
        sql_rows(db, "CREATE SCHEMA seed; SET search_path TO seed;" + SEED_DDL)
        tables = list(SEED_TABLES)
        for query in (COLUMNS_SQL, CONSTRAINTS_SQL):
            created = sql_rows(db, query, ("public", tables))
            assert created
            assert created == sql_rows(db, query, ("seed", tables))
        assert sql_rows(db, "SELECT * FROM customers") == [
            (1, "buyer@example.com", "+15551234567", "Jane Doe")
        ]
        assert sql_rows(db, "SELECT * FROM products ORDER BY id") == [
            (1, "WIDGET-001", "Blue Widget", 999, 50),
            (2, "WIDGET-002", "Red Widget", 1499, 30),
            (3, "GADGET-001", "Turbo Gadget", 4999, 5),
        ]
        for sequence in ("customers_id_seq", "products_id_seq", "orders_id_seq"):
            assert sql_rows(db, f"SELECT last_value, is_called FROM {sequence}") == [(10, True)]
        assert new_order(server.url) == 11


def test_postgres_state_survives_a_restart() -> None:
    with throwaway_database("sandbox_test") as db:
        with SandboxServer(database_url=db) as first:
            url = first.url
            order_id = new_order(url, TWO_WIDGETS)
            key = {"Idempotency-Key": "pay-once"}
            pay = f"/v1/orders/{order_id}/pay"
            paid = call(url, "POST", pay, {"paymentMethod": "pm_test_visa"}, headers=key)
            assert paid.status == 200
            other = new_order(url)
            payload = charge_succeeded("evt_before_restart", other)
            signed = {"X-Signature": sign(payload, int(time.time()))}
            assert call(url, "POST", "/webhooks/stripe", data=payload, headers=signed).status == 200
            job = call(url, "POST", "/v1/jobs", {}).headers["Location"]
            assert call(url, "GET", job).body["job"]["status"] == "running"
        with SandboxServer(database_url=db) as second:
            url = second.url
            assert call(url, "GET", f"/v1/orders/{order_id}").body["order"] == paid.body["order"]
            again = call(url, "POST", pay, {"paymentMethod": "pm_test_visa"}, headers=key)
            assert (again.status, again.headers["Idempotent-Replayed"]) == (200, "true")
            assert again.body == paid.body
            redelivered = call(url, "POST", "/webhooks/stripe", data=payload, headers=signed)
            assert redelivered.body == {"received": True, "replayed": True}
            assert (stock(url, "WIDGET-001"), stock(url, "WIDGET-002")) == (48, 29)
            polls = [call(url, "GET", job).body["job"]["status"] for _ in range(2)]
            assert polls == ["running", "done"]
            assert new_order(url) == other + 1


def test_rows_written_with_sql_and_through_the_api_are_the_same_rows(pg_database: str) -> None:
    with SandboxServer(database_url=pg_database) as server:
        server.reset_state()
        url = server.url
        sql_rows(
            pg_database,
            "INSERT INTO orders (id, customer_id, status, total_cents)"
            " VALUES (100, 1, 'payment_pending', 2498)",
        )
        sql_rows(
            pg_database,
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)"
            " VALUES (100, 2, 1, 1499), (100, 1, 1, 999)",
        )
        order = call(url, "GET", "/v1/orders/100").body["order"]
        assert (order["status"], order["totalCents"], order["customerId"]) == (
            "payment_pending",
            2498,
            1,
        )
        assert order["items"] == [
            {"sku": "WIDGET-001", "quantity": 1, "unitPriceCents": 999},
            {"sku": "WIDGET-002", "quantity": 1, "unitPriceCents": 1499},
        ]
        assert order["createdAt"].endswith("Z")
        payload = charge_succeeded("evt_sql_order", 100)
        signed = {"X-Signature": sign(payload, int(time.time()))}
        for replayed in (False, True):
            reply = call(url, "POST", "/webhooks/stripe", data=payload, headers=signed)
            assert reply.body == {"received": True, "replayed": replayed}
        assert sql_rows(pg_database, "SELECT status FROM orders WHERE id = 100") == [("paid",)]
        assert sql_rows(pg_database, "SELECT sku, stock FROM products ORDER BY id") == [
            ("WIDGET-001", 49),
            ("WIDGET-002", 29),
            ("GADGET-001", 5),
        ]
        order_id = new_order(url)
        assert sql_rows(
            pg_database,
            "SELECT customer_id, status, total_cents FROM orders WHERE id = %s",
            (order_id,),
        ) == [(1, "pending", 999)]
        sql_rows(pg_database, "UPDATE products SET stock = 0 WHERE sku = 'WIDGET-001'")
        pay = call(url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "pm_test_visa"})
        assert (pay.status, pay.body["code"]) == (409, "insufficient_stock")


def test_postgres_reset_works_before_start_and_after_stop(pg_database: str) -> None:
    server = SandboxServer(database_url=pg_database)
    sql_rows(pg_database, "UPDATE products SET stock = 1")
    server.reset_state()  # not started yet
    assert sql_rows(pg_database, "SELECT sum(stock) FROM products") == [(85,)]
    with server:
        order_id = new_order(server.url)
        assert order_id == 11
        pay = call(server.url, "POST", f"/v1/orders/{order_id}/pay", {"paymentMethod": "p"})
        assert pay.status == 200
    server.reset_state()  # stopped
    assert sql_rows(pg_database, "SELECT count(*) FROM orders") == [(0,)]


def test_lost_connection_is_replaced_and_a_vanished_database_is_a_503() -> None:
    with throwaway_database("sandbox_test") as db, SandboxServer(database_url=db) as server:
        url = server.url
        terminated = sql_rows(
            db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'demo-sandbox'",
        )
        assert terminated == [(True,)]
        assert stock(url, "WIDGET-001") == 50  # a new connection, transparently
        name = urlsplit(db).path.lstrip("/")
        sql_rows(PG_ADMIN_URL, f'DROP DATABASE "{name}" WITH (FORCE)')
        reply = call(url, "GET", "/v1/products")
        assert (reply.status, reply.body["code"]) == (503, "database_unavailable")
        assert call(url, "GET", "/health").status == 200


def test_unreachable_database_stops_startup_with_a_clear_error() -> None:
    server = SandboxServer(database_url=f"postgresql://postgres@127.0.0.1:{_free_port()}/none")
    with pytest.raises(RuntimeError, match="demo sandbox failed to start"):
        server.start()
