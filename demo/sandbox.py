"""Demo partner sandbox: the e-commerce checkout API of the playbook's seed, in memory.

`make run` starts it next to the dashboard (``python -m demo.sandbox --port 8001``) so that the
demo partner has a real HTTP API to certify; tests and benchmarks start it in-process through
:class:`SandboxServer`. It is deliberately pure Python and does not import Django: it plays the
*partner's* side, and keeping it independent means it can run anywhere the dashboard's workers can
reach, and that benchmarks measure the dashboard rather than a Django request cycle.

The API mirrors the playbook's checkout flow (orders, payment, Stripe webhook, stock), plus a few
endpoints that exist only to give scenario suites something to probe (202-then-poll jobs, slow
responses, arbitrary status codes). All state lives in one :class:`SandboxState` per application
and is only touched from the event loop; every mutation happens synchronously after the request
body has been read, so a single loop needs no locks.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
WEBHOOK_SECRET = "whsec_demo"
WEBHOOK_TOLERANCE_S = 600
SLOW_CAP_MS = 30_000
JOB_RUNNING_POLLS = 2
# Bounded so a long-running `make run` sandbox cannot grow without limit; far above what one
# benchmark or latency probe sends between resets.
TIMINGS_MAX = 100_000
# Stripe's limit; longer keys are almost certainly a client bug worth reporting.
IDEMPOTENCY_KEY_MAX = 255
# Short, because only the /v1/slow endpoint can be in flight for long and nobody waits for it.
SHUTDOWN_TIMEOUT_S = 1.0
DECLINED_PAYMENT_METHOD = "pm_card_declined"  # Stripe's test-mode convention
SCENARIO_HEADER = "X-Sandbox-Scenario"
SCENARIOS = frozenset({"card_declined", "rate_limited"})

# The playbook's seed.sql, verbatim: suites assert exact prices, stock and contact details.
SEED_CUSTOMERS: tuple[tuple[int, str, str, str], ...] = (
    (1, "buyer@example.com", "+15551234567", "Jane Doe"),
)
SEED_PRODUCTS: tuple[tuple[int, str, str, int, int], ...] = (
    (1, "WIDGET-001", "Blue Widget", 999, 50),
    (2, "WIDGET-002", "Red Widget", 1499, 30),
    (3, "GADGET-001", "Turbo Gadget", 4999, 5),
)
# setval('orders_id_seq', 10): the first order created gets id 11.
FIRST_ORDER_ID = 11


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    email: str
    phone: str
    name: str


@dataclass(slots=True)
class Product:
    id: int
    sku: str
    name: str
    price_cents: int
    stock: int

    def as_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "priceCents": self.price_cents,
            "stock": self.stock,
        }


@dataclass(frozen=True, slots=True)
class OrderItem:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(slots=True)
class Order:
    id: int
    customer_id: int
    items: tuple[OrderItem, ...]
    total_cents: int
    created_at: str
    status: str = "pending"
    payment: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        # Built fresh each time: saved idempotent responses hold these dicts and must not change
        # when the order later does.
        return {
            "id": self.id,
            "status": self.status,
            "totalCents": self.total_cents,
            "customerId": self.customer_id,
            "items": [
                {"sku": i.sku, "quantity": i.quantity, "unitPriceCents": i.unit_price_cents}
                for i in self.items
            ],
            "createdAt": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class SavedResponse:
    """What an Idempotency-Key is bound to: the request's fingerprint and the first answer."""

    fingerprint: str
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Job:
    id: str
    polls: int = 0


@dataclass(slots=True)
class SandboxState:
    """Everything a demo run can change; `reset()` returns to the seed."""

    customers: dict[int, Customer] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    idempotency: dict[str, SavedResponse] = field(default_factory=dict)
    webhook_events: set[str] = field(default_factory=set)
    jobs: dict[str, Job] = field(default_factory=dict)
    next_order_id: int = FIRST_ORDER_ID
    next_job_id: int = 1

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.customers = {c[0]: Customer(*c) for c in SEED_CUSTOMERS}
        self.products = {p[1]: Product(*p) for p in SEED_PRODUCTS}
        self.orders = {}
        self.idempotency = {}
        self.webhook_events = set()
        self.jobs = {}
        self.next_order_id = FIRST_ORDER_ID
        self.next_job_id = 1


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    delay_ms: float
    jitter_ms: float
    api_key: str | None


STATE_KEY = web.AppKey("sandbox_state", SandboxState)
CONFIG_KEY = web.AppKey("sandbox_config", SandboxConfig)
TIMINGS_KEY = web.AppKey("sandbox_timings", deque)
RNG_KEY = web.AppKey("sandbox_rng", random.Random)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An expected client error; the middleware turns it into the JSON error shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status, headers=headers)


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `"quantity": true` is a malformed request, not quantity 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_digits(value: object) -> int | None:
    # ASCII only: str.isdigit() also accepts characters such as "²" that int() rejects.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


async def _read_json(request: web.Request) -> tuple[bytes, Any]:
    raw = await request.read()
    if not raw.strip():
        raise _invalid("request body must be a JSON object")
    try:
        return raw, json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _invalid("request body is not valid JSON") from None


async def _read_json_object(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    raw, body = await _read_json(request)
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    return raw, body


def _fingerprint(request: web.Request, raw: bytes) -> str:
    # Parsed and re-serialised so that key order and whitespace do not count as a different body;
    # the method and path are included because, as at Stripe, a key belongs to one request.
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (UnicodeDecodeError, ValueError):
        canonical = raw
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise _invalid(f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters")
    return key


def _idempotent(
    request: web.Request,
    raw: bytes,
    execute: Callable[[], tuple[int, dict[str, Any], dict[str, str]]],
) -> web.Response:
    """Run `execute` once per Idempotency-Key and replay its answer for the same request.

    Like Stripe, a request that failed validation (400) is not saved: the endpoint never started,
    so the client may fix the body and retry with the same key. Rate limiting is not saved either,
    since the point of a 429 is that the retry should be attempted.
    """
    state = request.app[STATE_KEY]
    key = _idempotency_key(request)
    if key is None:
        status, body, headers = execute()
        return web.json_response(body, status=status, headers=headers)
    fingerprint = _fingerprint(request, raw)
    saved = state.idempotency.get(key)
    if saved is not None:
        if saved.fingerprint != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "Idempotency-Key was already used with a different request",
            )
        headers = dict(saved.headers)
        headers["Idempotent-Replayed"] = "true"
        return web.json_response(saved.body, status=saved.status, headers=headers)
    try:
        status, body, headers = execute()
    except ApiError as exc:
        if exc.status in (400, 429):
            raise
        status, body, headers = (
            exc.status,
            {"error": exc.message, "code": exc.code},
            exc.headers,
        )
    state.idempotency[key] = SavedResponse(fingerprint, status, body, tuple(headers.items()))
    return web.json_response(
        body, status=status, headers={**headers, "Idempotent-Replayed": "false"}
    )


def _order_or_404(state: SandboxState, order_id: int) -> Order:
    order = state.orders.get(order_id)
    if order is None:
        raise ApiError(404, "not_found", f"order {order_id} not found")
    return order


def _check_stock(state: SandboxState, items: Sequence[OrderItem]) -> None:
    for item in items:
        product = state.products[item.sku]
        if item.quantity > product.stock:
            raise ApiError(
                409,
                "insufficient_stock",
                f"insufficient stock for {item.sku} ({product.stock} left)",
            )


def _complete_payment(state: SandboxState, order: Order, payment: dict[str, Any]) -> None:
    # Stock is committed only when the money is: a declined card must leave it untouched, which
    # is exactly the "inventory updated before the payment check" bug the playbook warns about.
    _check_stock(state, order.items)
    for item in order.items:
        state.products[item.sku].stock -= item.quantity
    order.status = "paid"
    order.payment = payment


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def create_order(request: web.Request) -> web.Response:
    raw, body = await _read_json_object(request)
    state = request.app[STATE_KEY]

    def execute() -> tuple[int, dict[str, Any], dict[str, str]]:
        customer_id = body.get("customerId")
        if not _is_int(customer_id):
            raise _invalid("customerId must be an integer")
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise _invalid("items must be a non-empty list")
        wanted: list[tuple[str, int]] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise _invalid(f"items[{n}] must be an object")
            sku, quantity = item.get("sku"), item.get("quantity")
            if not isinstance(sku, str) or not sku:
                raise _invalid(f"items[{n}].sku must be a non-empty string")
            if not _is_int(quantity) or quantity < 1:
                raise _invalid(f"items[{n}].quantity must be a positive integer")
            # order_items has PRIMARY KEY (order_id, product_id): one line per product.
            if sku in seen:
                raise _invalid(f"duplicate sku '{sku}' in items")
            seen.add(sku)
            wanted.append((sku, quantity))
        if customer_id not in state.customers:
            raise ApiError(422, "unknown_customer", f"unknown customer {customer_id}")
        lines: list[OrderItem] = []
        for sku, quantity in wanted:
            product = state.products.get(sku)
            if product is None:
                raise ApiError(422, "unknown_sku", f"unknown sku '{sku}'")
            lines.append(OrderItem(sku, quantity, product.price_cents))
        # Checked, not reserved: stock is decremented on payment, as in the playbook's flow.
        _check_stock(state, lines)
        order = Order(
            id=state.next_order_id,
            customer_id=customer_id,
            items=tuple(lines),
            total_cents=sum(i.quantity * i.unit_price_cents for i in lines),
            created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        state.next_order_id += 1
        state.orders[order.id] = order
        return 201, {"order": order.as_json()}, {"Location": f"/v1/orders/{order.id}"}

    return _idempotent(request, raw, execute)


async def get_order(request: web.Request) -> web.Response:
    order = _order_or_404(request.app[STATE_KEY], int(request.match_info["order_id"]))
    return web.json_response({"order": order.as_json()})


async def pay_order(request: web.Request) -> web.Response:
    raw, body = await _read_json_object(request)
    app = request.app
    state = app[STATE_KEY]
    order_id = int(request.match_info["order_id"])
    scenario = request.headers.get(SCENARIO_HEADER)
    if scenario is not None and scenario not in SCENARIOS:
        raise _invalid(
            f"unknown {SCENARIO_HEADER} {scenario!r}; expected one of {sorted(SCENARIOS)}"
        )

    def execute() -> tuple[int, dict[str, Any], dict[str, str]]:
        method = body.get("paymentMethod")
        if not isinstance(method, str) or not method:
            raise _invalid("paymentMethod must be a non-empty string")
        order = _order_or_404(state, order_id)
        if order.status == "paid":
            raise ApiError(409, "already_paid", f"order {order_id} is already paid")
        if scenario == "rate_limited":
            # Mirrors the playbook's mock-stripe-rate-limited: nothing changes, retry later.
            raise ApiError(429, "rate_limited", "Too many requests.", {"Retry-After": "2"})
        if scenario == "card_declined" or method == DECLINED_PAYMENT_METHOD:
            order.status = "payment_failed"
            raise ApiError(402, "card_declined", "Your card was declined.")
        payment = {
            "id": f"ch_{app[RNG_KEY].getrandbits(96):024x}",
            "status": "succeeded",
            "amount": order.total_cents,
            "currency": "usd",
        }
        _complete_payment(state, order, payment)
        return 200, {"order": order.as_json(), "payment": dict(payment)}, {}

    return _idempotent(request, raw, execute)


async def get_product(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    product = request.app[STATE_KEY].products.get(sku)
    if product is None:
        raise ApiError(404, "not_found", f"product '{sku}' not found")
    return web.json_response({"product": product.as_json()})


async def list_products(request: web.Request) -> web.Response:
    products = request.app[STATE_KEY].products.values()
    return web.json_response({"products": [p.as_json() for p in products]})


def webhook_signature(payload: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    """The `X-Signature` header value for `payload` signed at `timestamp` (for suites, demos)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _verify_signature(header: str | None, payload: bytes, now: float) -> None:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and (parsed := _parse_digits(value)) is not None:
            timestamp = parsed
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise ApiError(401, "invalid_signature", "missing or malformed X-Signature header")
    expected = webhook_signature(payload, timestamp).partition(",v1=")[2]
    # Several v1 entries are allowed, as during a Stripe secret rotation.
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise ApiError(401, "invalid_signature", "signature does not match the payload")
    # Checked after the MAC so that an attacker cannot learn anything from the timestamp alone,
    # and in both directions so that a skewed-forward timestamp cannot extend a replay window.
    if abs(now - timestamp) > WEBHOOK_TOLERANCE_S:
        raise ApiError(
            401,
            "signature_expired",
            f"signature timestamp is outside the {WEBHOOK_TOLERANCE_S} s tolerance window",
        )


def _event_order(state: SandboxState, event: dict[str, Any]) -> Order:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    order_ref = metadata.get("order_id") if isinstance(metadata, dict) else None
    order_id = order_ref if _is_int(order_ref) else _parse_digits(order_ref)
    if order_id is None:
        raise _invalid("data.object.metadata.order_id must be an order id")
    order = state.orders.get(order_id)
    if order is None:
        # 422 rather than 404 (the route exists); not recorded, so Stripe's retry can succeed.
        raise ApiError(422, "unknown_order", f"order {order_id} not found")
    return order


async def stripe_webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    _verify_signature(request.headers.get("X-Signature"), raw, time.time())
    try:
        event = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(event, dict):
        raise _invalid("request body must be a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise _invalid("event must have a string id and type")
    state = request.app[STATE_KEY]
    # Inbox dedupe (playbook B-002): a redelivered event is acknowledged, never reprocessed.
    if event_id in state.webhook_events:
        return web.json_response({"received": True, "replayed": True})
    if event_type == "charge.succeeded":
        order = _event_order(state, event)
        if order.status != "paid":
            obj = event["data"]["object"]
            charge_id = obj.get("id")
            payment = {
                "id": charge_id if isinstance(charge_id, str) else f"ch_{uuid.uuid4().hex[:24]}",
                "status": "succeeded",
                "amount": order.total_cents,
                "currency": "usd",
            }
            _complete_payment(state, order, payment)
    elif event_type == "charge.failed":
        order = _event_order(state, event)
        if order.status != "paid":
            order.status = "payment_failed"
    # Other event types are acknowledged and ignored, as Stripe recommends.
    state.webhook_events.add(event_id)
    return web.json_response({"received": True, "replayed": False})


async def create_job(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    job = Job(id=f"job_{state.next_job_id}")
    state.next_job_id += 1
    state.jobs[job.id] = job
    return web.json_response(
        {"job": {"id": job.id, "status": "running"}},
        status=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


async def get_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    job = request.app[STATE_KEY].jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
    job.polls += 1
    status = "running" if job.polls <= JOB_RUNNING_POLLS else "done"
    return web.json_response({"job": {"id": job.id, "status": status}})


async def slow(request: web.Request) -> web.Response:
    requested = _parse_digits(request.query.get("ms"))
    if requested is None:
        raise _invalid("query parameter ms must be a non-negative integer")
    ms = min(requested, SLOW_CAP_MS)
    await asyncio.sleep(ms / 1000)
    return web.json_response({"sleptMs": ms})


async def status_code(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        raise _invalid("status code must be between 200 and 599")
    if code in (204, 304):
        return web.Response(status=code)  # these must not carry a body
    headers = {"Retry-After": "2"} if code == 429 else None
    return web.json_response({"status": code}, status=code, headers=headers)


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.Response(status=204)


async def timings(request: web.Request) -> web.Response:
    """The server's own handling times (ms) since start or the last reset, so that a benchmark
    running the sandbox in another process can compare what the client measured."""
    return web.json_response({"timings_ms": list(request.app[TIMINGS_KEY])})


async def reset_timings(request: web.Request) -> web.Response:
    request.app[TIMINGS_KEY].clear()
    return web.Response(status=204)


async def restock(request: web.Request) -> web.Response:
    """Benchmarks pay for hundreds of orders: give every product ample stock."""
    for product in request.app[STATE_KEY].products.values():
        product.stock = 10**9
    return web.Response(status=204)


# --------------------------------------------------------------------------------------------
# Middleware and application
# --------------------------------------------------------------------------------------------

_HTTP_CODES = {
    404: ("not found", "not_found"),
    405: ("method not allowed", "method_not_allowed"),
    413: ("request body too large", "request_too_large"),
}


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    message, code = _HTTP_CODES.get(
        exc.status, (exc.reason.lower(), exc.reason.lower().replace(" ", "_"))
    )
    # Allow (405) is the only header of aiohttp's own exceptions a client needs.
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return _error(exc.status, code, message, headers)


@web.middleware
async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Delay, API key, JSON errors, request id and timing, in one layer to keep requests cheap."""
    app = request.app
    start = time.perf_counter()
    config = app[CONFIG_KEY]
    response: web.StreamResponse
    try:
        if config.delay_ms or config.jitter_ms:
            low = max(0.0, config.delay_ms - config.jitter_ms)
            delay_ms = app[RNG_KEY].uniform(low, config.delay_ms + config.jitter_ms)
            # asyncio.sleep, never time.sleep: latency probes send 50 requests at once.
            await asyncio.sleep(delay_ms / 1000)
        if (
            config.api_key is not None
            and request.path.startswith("/v1/")
            and not hmac.compare_digest(
                # surrogateescape: a garbage header must be a 401, not an encoding error.
                request.headers.get("X-API-Key", "").encode("utf-8", "surrogateescape"),
                config.api_key.encode(),
            )
        ):
            response = _error(401, "invalid_api_key", "invalid api key")
        else:
            response = await handler(request)
    except ApiError as exc:
        response = _error(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except Exception:
        # Logged (rare by construction) but never sent: the client only learns that it failed.
        logger.exception("demo sandbox: unhandled error in %s %s", request.method, request.path)
        response = _error(500, "internal_error", "internal server error")
    response.headers["X-Request-Id"] = str(uuid.uuid4())
    # Preparing here (aiohttp skips an already prepared response) makes the measurement end where
    # the documented one does; headers are only buffered, so this does no I/O of its own.
    await response.prepare(request)
    app[TIMINGS_KEY].append((time.perf_counter() - start) * 1000)
    return response


def create_app(
    *,
    delay_ms: float = 0,
    jitter_ms: float = 0,
    api_key: str | None = None,
    seed: int | None = None,
) -> web.Application:
    """The sandbox application with fresh seed state.

    `delay_ms`/`jitter_ms` add a server-side delay drawn uniformly from
    [delay_ms - jitter_ms, delay_ms + jitter_ms] (floored at 0) to every request; `seed` makes
    those draws and the generated payment ids reproducible. With `api_key`, every /v1/ request
    must send it in X-API-Key.
    """
    for name, value in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    app = web.Application(middlewares=[sandbox_middleware])
    app[STATE_KEY] = SandboxState()
    app[CONFIG_KEY] = SandboxConfig(delay_ms=delay_ms, jitter_ms=jitter_ms, api_key=api_key)
    app[TIMINGS_KEY] = deque(maxlen=TIMINGS_MAX)
    app[RNG_KEY] = random.Random(seed)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/orders", create_order)
    app.router.add_get(r"/v1/orders/{order_id:\d{1,18}}", get_order)
    app.router.add_post(r"/v1/orders/{order_id:\d{1,18}}/pay", pay_order)
    app.router.add_get("/v1/products", list_products)
    app.router.add_get("/v1/products/{sku}", get_product)
    app.router.add_post("/webhooks/stripe", stripe_webhook)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_get("/v1/slow", slow)
    app.router.add_get(r"/v1/status/{code:\d{3}}", status_code)
    app.router.add_post("/sandbox/reset", reset)
    app.router.add_post("/sandbox/restock", restock)
    app.router.add_get("/sandbox/timings", timings)
    app.router.add_post("/sandbox/timings/reset", reset_timings)
    return app


def _url(address: Any) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _runner(app: web.Application) -> web.AppRunner:
    # access_log=None: per-request logging would dominate the cost of a request. Handler
    # cancellation stops /v1/slow sleeping on for a client that has already timed out.
    return web.AppRunner(
        app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S, handler_cancellation=True
    )


# --------------------------------------------------------------------------------------------
# In-process server
# --------------------------------------------------------------------------------------------


class SandboxServer:
    """The sandbox on a background thread with its own event loop, for tests and benchmarks.

    The accessors below run on the server's loop, so reading timings or resetting state never
    races a request being handled.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        delay_ms: float = 0,
        jitter_ms: float = 0,
        api_key: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.app = create_app(delay_ms=delay_ms, jitter_ms=jitter_ms, api_key=api_key, seed=seed)
        self._url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("SandboxServer is not started")
        return self._url

    def start(self, timeout: float = 10.0) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("SandboxServer can only be started once")
        self._thread = threading.Thread(target=self._run, name="demo-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"demo sandbox did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError(f"demo sandbox failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout=SHUTDOWN_TIMEOUT_S + 10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def server_timings(self) -> list[float]:
        """Server-side handling time (ms) of every request since start or the last reset."""
        timings = self.app[TIMINGS_KEY]
        return self._on_loop(lambda: list(timings))

    def reset_timings(self) -> None:
        self._on_loop(self.app[TIMINGS_KEY].clear)

    def reset_state(self) -> None:
        self._on_loop(self.app[STATE_KEY].reset)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._stopping is None or self._stopping.is_set():
            return fn()  # not serving: nothing to race with

        async def call() -> T:
            return fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(call(), loop)
        return future.result(timeout=10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # reported to start(); a thread has nobody else to tell
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        runner = _runner(self.app)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self._url = _url(runner.addresses[0])
            self._stopping = asyncio.Event()
            self._loop = loop
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


async def _serve_forever(app: web.Application, host: str, port: int) -> None:
    runner = _runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM (make run's `kill 0`, container stops) should shut down as cleanly as Ctrl-C.
    with contextlib.suppress(NotImplementedError):  # no add_signal_handler on Windows
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"Demo sandbox listening on {_url(runner.addresses[0])}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.sandbox",
        description="Demo partner sandbox: the playbook's e-commerce checkout API, in memory.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="artificial delay per request")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- around delay")
    parser.add_argument("--api-key", default=None, help="require this X-API-Key on /v1/")
    args = parser.parse_args(argv)
    try:
        app = create_app(delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, api_key=args.api_key)
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(app, args.host, args.port))


if __name__ == "__main__":
    main()
