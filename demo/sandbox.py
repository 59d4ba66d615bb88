"""Demo partner sandbox: the e-commerce checkout API of the playbook's seed.

`make run` starts it next to the dashboard (``python -m demo.sandbox --port 8001``) so that the
demo partner has a real HTTP API to certify; tests and benchmarks start it in-process through
:class:`SandboxServer`. It is deliberately pure Python and does not import Django: it plays the
*partner's* side, and keeping it independent means it can run anywhere the dashboard's workers can
reach, and that benchmarks measure the dashboard rather than a Django request cycle.

The API mirrors the playbook's checkout flow (orders, payment, Stripe webhook, stock), plus a few
endpoints that exist only to give scenario suites something to probe (202-then-poll jobs, slow
responses, arbitrary status codes).

Where the state lives
---------------------

Handlers reach the state only through a store, in one transaction per request; the two stores
behave identically through the API.

*In memory* (the default). One :class:`SandboxState` per application, only touched from the event
loop. The in-memory store never suspends, so a request's reads and writes cannot interleave with
another request's and a single loop needs no locks.

*PostgreSQL* (``create_app(database_url=...)``, ``SandboxServer(database_url=...)``,
``--database-url postgresql://...``). The database is the source of truth for everything the
seed's schema covers: ``customers``, ``products`` (with ``stock``), ``orders`` (``status``,
``total_cents``) and ``order_items``, created exactly as the seed's CREATE TABLE statements. A
suite's ``dbQuery`` steps therefore see and change the same rows the API does: an order inserted
with SQL can be read through ``GET /v1/orders/{id}`` and paid through the webhook. The sandbox's
own bookkeeping sits beside them in ``sandbox_*`` tables (order line positions, payments,
Idempotency-Key responses, processed webhook event ids, jobs), so a restart loses nothing: paid
orders, replays and redeliveries behave the same afterwards. On startup the schema is created if
missing (under an advisory lock) and seeded only if ``customers``, ``products`` and ``orders``
are all empty; existing data is never touched. A reset (``POST /sandbox/reset``,
:meth:`SandboxServer.reset_state`) truncates these tables and re-runs the seed's INSERTs and
``setval`` calls, so the next order is 11 again.

Connections: one ``psycopg.AsyncConnection`` per application (autocommit, explicit transactions),
guarded by an ``asyncio.Lock``; each request runs in one transaction on it, so requests are
serialised through the database as they are in memory. ``SELECT ... FOR UPDATE`` and advisory
locks on Idempotency-Keys and event ids keep this correct against other writers too (a suite's
``dbQuery`` step, a second sandbox process on the same database). As in memory, changes made
before a request ends in an API error are kept (a declined card leaves the order
``payment_failed``); an unexpected error rolls the transaction back. A dead connection (the
server restarted, an admin terminated it) is replaced when the next request begins its
transaction; while the database cannot be reached, requests that need it answer
``503 database_unavailable`` (``/health`` does not touch the database).

Two differences follow from the seed schema: an order whose total does not fit the INTEGER
``total_cents`` is refused with ``422 amount_too_large``, and a webhook event id or
Idempotency-Key that PostgreSQL text cannot hold (a NUL character, an unpaired surrogate) with
``400 invalid_request``. Everything else answers exactly as in memory.

Switches for running suites against the sandbox
-----------------------------------------------

*Webhook signatures.* ``POST /webhooks/stripe`` requires ``X-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<raw body>" keyed with whsec_demo>`` (see :func:`webhook_signature`), within
a 600 s window. *Stripe test mode* (``create_app(stripe_test_mode=True)``,
``--stripe-test-mode``; OFF by default) additionally accepts a delivery that has no X-Signature
but carries ``Stripe-Signature: whsec_test_signature`` -- exactly that documented test value, as
sent by the playbook's webhook example -- as an unsigned test-mode delivery. Without test mode
that header is refused (401 ``invalid_signature``), as is any other Stripe-Signature value in test
mode; a request with X-Signature is always verified by the HMAC check, test mode or not. Test mode
lets anyone who can reach the sandbox mark orders paid: never enable it outside tests and demos.

*Payment outcome.* ``POST /sandbox/scenario {"payments": "succeed" | "card_declined" |
"rate_limited"}`` sets how every following ``POST /v1/orders/{id}/pay`` of this application
behaves, as if it carried the matching ``X-Sandbox-Scenario`` header (a header on the request
still wins); ``GET /sandbox/scenario`` shows the setting, and a reset returns it to ``succeed``.
This is how an unmodified playbook definition that relies on a hosted mock (such as
``mock-stripe-card-declined``, which the sandbox cannot see) is run: the test switches the
sandbox before running the definition. Per request, ``paymentMethod: pm_card_declined`` (Stripe's
test convention) or ``X-Sandbox-Scenario: card_declined | rate_limited`` do the same.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import inspect
import json
import logging
import math
import random
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import psycopg

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
WEBHOOK_SECRET = "whsec_demo"
WEBHOOK_TOLERANCE_S = 600
# The literal Stripe-Signature of the playbook's webhook example; accepted in Stripe test mode only.
STRIPE_TEST_SIGNATURE = "whsec_test_signature"
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
# What POST /sandbox/scenario accepts for "payments"; "succeed" is the default.
PAYMENT_SCENARIOS = ("succeed", "card_declined", "rate_limited")
RESTOCK_LEVEL = 10**9

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
    customer_id: int | None
    items: tuple[OrderItem, ...]
    total_cents: int
    # None only for a row inserted with SQL and an explicit NULL.
    created_at: str | None
    status: str | None = "pending"
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
    """Everything a demo run can change (in-memory mode); `reset()` returns to the seed."""

    customers: dict[int, Customer] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    idempotency: dict[str, SavedResponse] = field(default_factory=dict)
    webhook_events: set[str] = field(default_factory=set)
    event_orders: dict[str, int] = field(default_factory=dict)  # order.created -> its order
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


@dataclass(slots=True)
class SandboxConfig:
    delay_ms: float
    jitter_ms: float
    api_key: str | None
    stripe_test_mode: bool = False
    # Where Stripe, EasyPost, SendGrid and Twilio are: ``<base>/<host>/<path>`` (Certdash's
    # hosted mocks for this partner). None: payments are decided in-process, nothing is called.
    third_party_base_url: str | None = None


@dataclass(slots=True)
class SandboxSwitches:
    """Run-time switches a suite's harness flips over HTTP; a reset restores the defaults."""

    payments: str = "succeed"


# --------------------------------------------------------------------------------------------
# Stores: the one interface handlers use, in memory or in PostgreSQL
# --------------------------------------------------------------------------------------------


class StoreTx(Protocol):
    """One request's view of the state. Every method may suspend (PostgreSQL) or not (memory)."""

    async def lock_key(self, namespace: str, key: str) -> None: ...
    async def customer_exists(self, customer_id: int) -> bool: ...
    async def product(self, sku: str, *, lock: bool = False) -> Product | None: ...
    async def products(self) -> list[Product]: ...
    async def insert_order(
        self,
        customer_id: int,
        items: tuple[OrderItem, ...],
        total_cents: int,
        created_at: datetime,
    ) -> Order: ...
    async def order(self, order_id: int, *, lock: bool = False) -> Order | None: ...
    async def set_status(self, order: Order, status: str) -> None: ...
    async def take_stock(self, sku: str, quantity: int) -> None: ...
    async def mark_paid(self, order: Order, payment: dict[str, Any]) -> None: ...
    async def saved_response(self, key: str) -> SavedResponse | None: ...
    async def save_response(self, key: str, saved: SavedResponse) -> None: ...
    async def event_seen(self, event_id: str) -> bool: ...
    async def record_event(self, event_id: str) -> None: ...
    async def record_event_order(self, event_id: str, order_id: int) -> None: ...
    async def event_order(self, event_id: str) -> int | None: ...
    async def create_job(self) -> Job: ...
    async def poll_job(self, job_id: str) -> Job | None: ...
    async def restock(self) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[StoreTx]: ...
    async def reset(self) -> None: ...


def _iso_utc(moment: datetime) -> str:
    """`2026-01-02T03:04:05Z`; a naive datetime (a TIMESTAMP column) is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _MemoryTx:
    """In-memory store and its transaction in one: nothing here ever suspends."""

    __slots__ = ("state",)

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __aenter__(self) -> _MemoryTx:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def lock_key(self, namespace: str, key: str) -> None:
        return None

    async def customer_exists(self, customer_id: int) -> bool:
        return customer_id in self.state.customers

    async def product(self, sku: str, *, lock: bool = False) -> Product | None:
        return self.state.products.get(sku)

    async def products(self) -> list[Product]:
        return list(self.state.products.values())

    async def insert_order(
        self,
        customer_id: int,
        items: tuple[OrderItem, ...],
        total_cents: int,
        created_at: datetime,
    ) -> Order:
        state = self.state
        order = Order(
            id=state.next_order_id,
            customer_id=customer_id,
            items=items,
            total_cents=total_cents,
            created_at=_iso_utc(created_at),
        )
        state.next_order_id += 1
        state.orders[order.id] = order
        return order

    async def order(self, order_id: int, *, lock: bool = False) -> Order | None:
        return self.state.orders.get(order_id)

    async def set_status(self, order: Order, status: str) -> None:
        order.status = status

    async def take_stock(self, sku: str, quantity: int) -> None:
        self.state.products[sku].stock -= quantity

    async def mark_paid(self, order: Order, payment: dict[str, Any]) -> None:
        order.status = "paid"
        order.payment = payment

    async def saved_response(self, key: str) -> SavedResponse | None:
        return self.state.idempotency.get(key)

    async def save_response(self, key: str, saved: SavedResponse) -> None:
        self.state.idempotency[key] = saved

    async def event_seen(self, event_id: str) -> bool:
        return event_id in self.state.webhook_events

    async def record_event(self, event_id: str) -> None:
        self.state.webhook_events.add(event_id)

    async def record_event_order(self, event_id: str, order_id: int) -> None:
        self.state.event_orders[event_id] = order_id

    async def event_order(self, event_id: str) -> int | None:
        return self.state.event_orders.get(event_id)

    async def create_job(self) -> Job:
        state = self.state
        job = Job(id=f"job_{state.next_job_id}")
        state.next_job_id += 1
        state.jobs[job.id] = job
        return job

    async def poll_job(self, job_id: str) -> Job | None:
        job = self.state.jobs.get(job_id)
        if job is not None:
            job.polls += 1
        return job

    async def restock(self) -> None:
        for product in self.state.products.values():
            product.stock = RESTOCK_LEVEL


class MemoryStore:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._tx = _MemoryTx(state)

    def transaction(self) -> _MemoryTx:
        return self._tx

    async def reset(self) -> None:
        self.state.reset()


# The seed's CREATE TABLE statements, verbatim apart from IF NOT EXISTS.
SEED_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS customers (
  id SERIAL PRIMARY KEY,
  email VARCHAR(200) NOT NULL,
  phone VARCHAR(20),
  name VARCHAR(100) NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
  id SERIAL PRIMARY KEY,
  sku VARCHAR(50) UNIQUE NOT NULL,
  name VARCHAR(200) NOT NULL,
  price_cents INTEGER NOT NULL,
  stock INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS orders (
  id SERIAL PRIMARY KEY,
  customer_id INTEGER REFERENCES customers(id),
  status VARCHAR(20) DEFAULT 'pending',
  total_cents INTEGER NOT NULL,
  created_at TIMESTAMP DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS order_items (
  order_id INTEGER REFERENCES orders(id),
  product_id INTEGER REFERENCES products(id),
  quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
"""

# The sandbox's own bookkeeping. JSON (not JSONB) keeps saved response bodies byte-for-byte in
# key order, so a replayed answer is the same document as the first one.
SANDBOX_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS sandbox_order_item_positions (
  order_id INTEGER NOT NULL,
  product_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id),
  FOREIGN KEY (order_id, product_id) REFERENCES order_items (order_id, product_id)
    ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS sandbox_payments (
  order_id INTEGER PRIMARY KEY REFERENCES orders(id) ON DELETE CASCADE,
  payment JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS sandbox_idempotency (
  key TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL,
  body JSON NOT NULL,
  headers JSON NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS sandbox_webhook_events (
  id TEXT PRIMARY KEY,
  received_at TIMESTAMP NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS sandbox_jobs (
  n SERIAL PRIMARY KEY,
  polls INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS sandbox_event_orders (
  event_id TEXT PRIMARY KEY,
  order_id INTEGER NOT NULL
);
"""

RESET_SQL = """
TRUNCATE customers, products, orders, order_items, sandbox_order_item_positions,
  sandbox_payments, sandbox_idempotency, sandbox_webhook_events, sandbox_jobs,
  sandbox_event_orders RESTART IDENTITY
"""

# The seed's setval() calls, verbatim.
SEED_SEQUENCES_SQL = """
SELECT setval('customers_id_seq', 10);
SELECT setval('products_id_seq', 10);
SELECT setval('orders_id_seq', 10);
"""

SCHEMA_LOCK_ID = 0x53414E44424F58  # "SANDBOX": serialises schema creation across processes
_LOCK_NAMESPACES = {"Idempotency-Key": 1, "webhook event id": 2}
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1
_JOB_ID = re.compile(r"job_([1-9][0-9]{0,9})")


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` unchanged (no NUL, valid UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int4(value: int) -> bool:
    return _INT4_MIN <= value <= _INT4_MAX


async def _seed(conn: psycopg.AsyncConnection[Any]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO customers (id, email, phone, name) VALUES (%s, %s, %s, %s)",
            SEED_CUSTOMERS,
        )
        await cursor.executemany(
            "INSERT INTO products (id, sku, name, price_cents, stock) VALUES (%s, %s, %s, %s, %s)",
            SEED_PRODUCTS,
        )
    await conn.execute(SEED_SEQUENCES_SQL)


async def _ensure_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create what is missing; seed only a database whose seed tables hold no rows at all."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        await conn.execute(SEED_SCHEMA_SQL)
        await conn.execute(SANDBOX_SCHEMA_SQL)
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT FROM customers) OR EXISTS (SELECT FROM products)"
            " OR EXISTS (SELECT FROM orders)"
        )
        row = await cursor.fetchone()
        if row is not None and not row[0]:
            await _seed(conn)


async def _reset_tables(conn: psycopg.AsyncConnection[Any]) -> None:
    """Truncate and re-seed; the caller provides the transaction."""
    await conn.execute(RESET_SQL)
    await _seed(conn)


class _PgTx:
    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def _one(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = await self.conn.execute(sql, params)
        return await cursor.fetchone()

    async def lock_key(self, namespace: str, key: str) -> None:
        if not _storable(key):
            raise _invalid(f"{namespace} must not contain NUL characters or unpaired surrogates")
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACES[namespace], key)
        )

    async def customer_exists(self, customer_id: int) -> bool:
        if not _int4(customer_id):
            return False
        return await self._one("SELECT 1 FROM customers WHERE id = %s", (customer_id,)) is not None

    async def product(self, sku: str, *, lock: bool = False) -> Product | None:
        if not _storable(sku):
            return None
        sql = "SELECT id, sku, name, price_cents, stock FROM products WHERE sku = %s"
        row = await self._one(sql + (" FOR UPDATE" if lock else ""), (sku,))
        return None if row is None else Product(*row)

    async def products(self) -> list[Product]:
        cursor = await self.conn.execute(
            "SELECT id, sku, name, price_cents, stock FROM products ORDER BY id"
        )
        return [Product(*row) for row in await cursor.fetchall()]

    async def insert_order(
        self,
        customer_id: int,
        items: tuple[OrderItem, ...],
        total_cents: int,
        created_at: datetime,
    ) -> Order:
        if total_cents > _INT4_MAX:
            raise ApiError(
                422,
                "amount_too_large",
                f"order total of {total_cents} cents exceeds the largest amount an order can hold",
            )
        # Stored as naive UTC (the column is TIMESTAMP), so it reads back as what was answered.
        stored_at = created_at.astimezone(UTC).replace(tzinfo=None)
        (order_id,) = await self._one(
            "INSERT INTO orders (customer_id, status, total_cents, created_at)"
            " VALUES (%s, 'pending', %s, %s) RETURNING id",
            (customer_id, total_cents, stored_at),
        )
        async with self.conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)"
                " SELECT %s, id, %s, %s FROM products WHERE sku = %s",
                [(order_id, i.quantity, i.unit_price_cents, i.sku) for i in items],
            )
            # order_items' primary key has no order; this keeps the lines as the client sent them.
            await cursor.executemany(
                "INSERT INTO sandbox_order_item_positions (order_id, product_id, position)"
                " SELECT %s, id, %s FROM products WHERE sku = %s",
                [(order_id, n, i.sku) for n, i in enumerate(items)],
            )
        return Order(
            id=order_id,
            customer_id=customer_id,
            items=items,
            total_cents=total_cents,
            created_at=_iso_utc(created_at),
        )

    async def order(self, order_id: int, *, lock: bool = False) -> Order | None:
        if not _int4(order_id):
            return None
        sql = "SELECT id, customer_id, status, total_cents, created_at FROM orders WHERE id = %s"
        row = await self._one(sql + (" FOR UPDATE" if lock else ""), (order_id,))
        if row is None:
            return None
        # Lines inserted with SQL have no position: they follow, in product order.
        cursor = await self.conn.execute(
            "SELECT p.sku, i.quantity, i.unit_price_cents FROM order_items i"
            " JOIN products p ON p.id = i.product_id"
            " LEFT JOIN sandbox_order_item_positions s"
            "   ON s.order_id = i.order_id AND s.product_id = i.product_id"
            " WHERE i.order_id = %s ORDER BY s.position NULLS LAST, i.product_id",
            (order_id,),
        )
        items = tuple(OrderItem(*line) for line in await cursor.fetchall())
        created_at = row[4]
        return Order(
            id=row[0],
            customer_id=row[1],
            items=items,
            total_cents=row[3],
            created_at=None if created_at is None else _iso_utc(created_at),
            status=row[2],
        )

    async def set_status(self, order: Order, status: str) -> None:
        await self.conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order.id))
        order.status = status

    async def take_stock(self, sku: str, quantity: int) -> None:
        await self.conn.execute(
            "UPDATE products SET stock = stock - %s WHERE sku = %s", (quantity, sku)
        )

    async def mark_paid(self, order: Order, payment: dict[str, Any]) -> None:
        from psycopg.types.json import Json

        await self.conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (order.id,))
        await self.conn.execute(
            "INSERT INTO sandbox_payments (order_id, payment) VALUES (%s, %s)"
            " ON CONFLICT (order_id) DO UPDATE SET payment = EXCLUDED.payment",
            (order.id, Json(payment)),
        )
        order.status = "paid"
        order.payment = payment

    async def saved_response(self, key: str) -> SavedResponse | None:
        row = await self._one(
            "SELECT fingerprint, status, body, headers FROM sandbox_idempotency WHERE key = %s",
            (key,),
        )
        if row is None:
            return None
        fingerprint, status, body, headers = row
        return SavedResponse(fingerprint, status, body, tuple((k, v) for k, v in headers))

    async def save_response(self, key: str, saved: SavedResponse) -> None:
        from psycopg.types.json import Json

        await self.conn.execute(
            "INSERT INTO sandbox_idempotency (key, fingerprint, status, body, headers)"
            " VALUES (%s, %s, %s, %s, %s)",
            (
                key,
                saved.fingerprint,
                saved.status,
                Json(saved.body),
                Json([list(h) for h in saved.headers]),
            ),
        )

    async def event_seen(self, event_id: str) -> bool:
        row = await self._one("SELECT 1 FROM sandbox_webhook_events WHERE id = %s", (event_id,))
        return row is not None

    async def record_event(self, event_id: str) -> None:
        await self.conn.execute(
            "INSERT INTO sandbox_webhook_events (id) VALUES (%s) ON CONFLICT DO NOTHING",
            (event_id,),
        )

    async def record_event_order(self, event_id: str, order_id: int) -> None:
        await self.conn.execute(
            "INSERT INTO sandbox_event_orders (event_id, order_id) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            (event_id, order_id),
        )

    async def event_order(self, event_id: str) -> int | None:
        row = await self._one(
            "SELECT order_id FROM sandbox_event_orders WHERE event_id = %s", (event_id,)
        )
        return None if row is None else int(row[0])

    async def create_job(self) -> Job:
        (n,) = await self._one("INSERT INTO sandbox_jobs DEFAULT VALUES RETURNING n", ())
        return Job(id=f"job_{n}")

    async def poll_job(self, job_id: str) -> Job | None:
        match = _JOB_ID.fullmatch(job_id)
        if match is None or not _int4(int(match[1])):
            return None
        row = await self._one(
            "UPDATE sandbox_jobs SET polls = polls + 1 WHERE n = %s RETURNING polls",
            (int(match[1]),),
        )
        return None if row is None else Job(id=job_id, polls=row[0])

    async def restock(self) -> None:
        await self.conn.execute("UPDATE products SET stock = %s", (RESTOCK_LEVEL,))


class PostgresStore:
    """State in PostgreSQL through one connection per application (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._serving = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=5, application_name="demo-sandbox"
        )

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: connect and create the schema before serving."""
        conn = await self._connect()
        try:
            await _ensure_schema(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._serving = True
        try:
            yield
        finally:
            self._serving = False
            await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        from psycopg import pq

        conn = self._conn
        if conn is not None and (
            conn.closed
            or conn.broken
            # A request cancelled mid-query can leave it busy or in a transaction.
            or conn.info.transaction_status != pq.TransactionStatus.IDLE
        ):
            await self._discard()
            conn = None
        if conn is None:
            conn = self._conn = await self._connect()
        return conn

    async def _begin(self) -> psycopg.AsyncConnection[Any]:
        """BEGIN on the connection; once more on a fresh one if the old one turns out dead (the
        server restarted, an admin terminated it): nothing has been done yet, so that is safe."""
        import psycopg

        for attempt in (1, 2):
            conn = await self._connection()
            try:
                await conn.execute("BEGIN")
            except psycopg.OperationalError:
                await self._discard()
                if attempt == 2:
                    raise
            else:
                return conn
        raise AssertionError("unreachable")

    async def _unavailable(self, exc: Exception) -> ApiError:
        await self._discard()
        logger.warning("demo sandbox: database unavailable: %s", exc)
        return ApiError(503, "database_unavailable", "the sandbox database is unavailable")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTx]:
        import psycopg

        async with self._lock:
            try:
                conn = await self._begin()
            except psycopg.OperationalError as exc:
                raise await self._unavailable(exc) from None
            failure: ApiError | None = None
            try:
                try:
                    yield _PgTx(conn)
                except ApiError as exc:
                    # Committed anyway, as in memory: a declined card stays payment_failed.
                    failure = exc
                await conn.execute("COMMIT")
            except BaseException as exc:
                if not conn.closed and not conn.broken:
                    # Fails if a cancelled query left it busy; _connection() then replaces it.
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                if isinstance(exc, psycopg.OperationalError):
                    raise await self._unavailable(exc) from None
                raise
            if failure is not None:
                raise failure

    async def reset(self) -> None:
        if self._serving:
            async with self.transaction() as tx:
                await _reset_tables(tx.conn)
            return
        # Not serving (before start, after stop): a connection of its own, on this loop.
        conn = await self._connect()
        async with conn:
            await _ensure_schema(conn)
            async with conn.transaction():
                await _reset_tables(conn)


STORE_KEY = web.AppKey("sandbox_store", Store)
STATE_KEY = web.AppKey("sandbox_state", SandboxState)  # in-memory mode only
CONFIG_KEY = web.AppKey("sandbox_config", SandboxConfig)
SWITCHES_KEY = web.AppKey("sandbox_switches", SandboxSwitches)
TIMINGS_KEY = web.AppKey("sandbox_timings", deque)
RNG_KEY = web.AppKey("sandbox_rng", random.Random)


async def reset_app_state(app: web.Application) -> None:
    """Back to the seed data, with the switches at their defaults."""
    await app[STORE_KEY].reset()
    app[SWITCHES_KEY].payments = "succeed"


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


Outcome = tuple[int, dict[str, Any], dict[str, str]]


async def _idempotent(
    request: web.Request,
    raw: bytes,
    execute: Callable[[StoreTx], Awaitable[Outcome]],
) -> web.Response:
    """Run `execute` once per Idempotency-Key and replay its answer for the same request.

    Like Stripe, a request that failed validation (400) is not saved: the endpoint never started,
    so the client may fix the body and retry with the same key. Rate limiting is not saved either,
    since the point of a 429 is that the retry should be attempted. The lookup, the work and the
    saved answer share one transaction.
    """
    key = _idempotency_key(request)
    async with request.app[STORE_KEY].transaction() as tx:
        if key is None:
            status, body, headers = await execute(tx)
            return web.json_response(body, status=status, headers=headers)
        await tx.lock_key("Idempotency-Key", key)
        fingerprint = _fingerprint(request, raw)
        saved = await tx.saved_response(key)
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
            status, body, headers = await execute(tx)
        except ApiError as exc:
            if exc.status in (400, 429):
                raise
            status, body, headers = (
                exc.status,
                {"error": exc.message, "code": exc.code},
                exc.headers,
            )
        await tx.save_response(
            key, SavedResponse(fingerprint, status, body, tuple(headers.items()))
        )
    return web.json_response(
        body, status=status, headers={**headers, "Idempotent-Replayed": "false"}
    )


async def _order_or_404(tx: StoreTx, order_id: int, *, lock: bool = False) -> Order:
    order = await tx.order(order_id, lock=lock)
    if order is None:
        raise ApiError(404, "not_found", f"order {order_id} not found")
    return order


async def _check_stock(tx: StoreTx, items: Sequence[OrderItem], *, lock: bool = False) -> None:
    for item in items:
        product = await tx.product(item.sku, lock=lock)
        left = 0 if product is None else product.stock
        if item.quantity > left:
            raise ApiError(
                409,
                "insufficient_stock",
                f"insufficient stock for {item.sku} ({left} left)",
            )


async def _complete_payment(tx: StoreTx, order: Order, payment: dict[str, Any]) -> None:
    # Stock is committed only when the money is: a declined card must leave it untouched, which
    # is exactly the "inventory updated before the payment check" bug the playbook warns about.
    await _check_stock(tx, order.items, lock=True)
    for item in order.items:
        await tx.take_stock(item.sku, item.quantity)
    await tx.mark_paid(order, payment)


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def create_order(request: web.Request) -> web.Response:
    raw, body = await _read_json_object(request)

    async def execute(tx: StoreTx) -> Outcome:
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
        if not await tx.customer_exists(customer_id):
            raise ApiError(422, "unknown_customer", f"unknown customer {customer_id}")
        lines: list[OrderItem] = []
        for sku, quantity in wanted:
            product = await tx.product(sku)
            if product is None:
                raise ApiError(422, "unknown_sku", f"unknown sku '{sku}'")
            lines.append(OrderItem(sku, quantity, product.price_cents))
        # Checked, not reserved: stock is decremented on payment, as in the playbook's flow.
        await _check_stock(tx, lines)
        order = await tx.insert_order(
            customer_id,
            tuple(lines),
            sum(i.quantity * i.unit_price_cents for i in lines),
            datetime.now(UTC).replace(microsecond=0),
        )
        return 201, {"order": order.as_json()}, {"Location": f"/v1/orders/{order.id}"}

    return await _idempotent(request, raw, execute)


async def get_order(request: web.Request) -> web.Response:
    async with request.app[STORE_KEY].transaction() as tx:
        order = await _order_or_404(tx, int(request.match_info["order_id"]))
    return web.json_response({"order": order.as_json()})


async def pay_order(request: web.Request) -> web.Response:
    raw, body = await _read_json_object(request)
    app = request.app
    order_id = int(request.match_info["order_id"])
    scenario = request.headers.get(SCENARIO_HEADER)
    if scenario is not None and scenario not in SCENARIOS:
        raise _invalid(
            f"unknown {SCENARIO_HEADER} {scenario!r}; expected one of {sorted(SCENARIOS)}"
        )
    if scenario is None and app[SWITCHES_KEY].payments != "succeed":
        scenario = app[SWITCHES_KEY].payments  # set through POST /sandbox/scenario

    async def execute(tx: StoreTx) -> Outcome:
        method = body.get("paymentMethod")
        if not isinstance(method, str) or not method:
            raise _invalid("paymentMethod must be a non-empty string")
        order = await _order_or_404(tx, order_id, lock=True)
        if order.status == "paid":
            raise ApiError(409, "already_paid", f"order {order_id} is already paid")
        if scenario == "rate_limited":
            # Mirrors the playbook's mock-stripe-rate-limited: nothing changes, retry later.
            raise ApiError(429, "rate_limited", "Too many requests.", {"Retry-After": "2"})
        third_party = app[CONFIG_KEY].third_party_base_url
        if third_party and scenario is None:
            return await _pay_through_third_parties(tx, app, order, method, third_party)
        if scenario == "card_declined" or method == DECLINED_PAYMENT_METHOD:
            await tx.set_status(order, "payment_failed")
            raise ApiError(402, "card_declined", "Your card was declined.")
        payment = {
            "id": f"ch_{app[RNG_KEY].getrandbits(96):024x}",
            "status": "succeeded",
            "amount": order.total_cents,
            "currency": "usd",
        }
        await _complete_payment(tx, order, payment)
        return 200, {"order": order.as_json(), "payment": dict(payment)}, {}

    return await _idempotent(request, raw, execute)


async def _third_party(
    base: str, origin: str, method: str, target: str, *, json_body: Any = None, form: Any = None
) -> tuple[int, Any]:
    """Call a third-party API the way the partner's services do (through its configured base
    URL), naming the calling service in ``X-Origin``. (status, parsed body); 0 when it could not
    be reached."""
    url = f"{base.rstrip('/')}/{target}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(
                method, url, json=json_body, data=form, headers={"X-Origin": origin}
            ) as response,
        ):
            text = await response.text()
        try:
            return response.status, json.loads(text) if text else {}
        except ValueError:
            return response.status, text
    except (aiohttp.ClientError, TimeoutError):
        return 0, None


async def _pay_through_third_parties(
    tx: StoreTx, app: web.Application, order: Order, method: str, base: str
) -> Outcome:
    """The seed's chain: payment-service charges Stripe; on success shipping-service buys a
    label from EasyPost and notification-service emails (SendGrid) and texts (Twilio)."""
    _, email, phone, name = SEED_CUSTOMERS[0]
    status, charge = await _third_party(
        base, "payment-service", "POST", "api.stripe.com/v1/charges",
        json_body={"amount": order.total_cents, "currency": "usd", "source": method,
                   "metadata": {"order_id": order.id}},
    )  # fmt: skip
    if status == 402:
        await tx.set_status(order, "payment_failed")
        raise ApiError(402, "card_declined", "Your card was declined.")
    if not 200 <= status < 300:
        raise ApiError(502, "payment_provider_error", f"Stripe answered {status or 'nothing'}")
    charge = charge if isinstance(charge, dict) else {}
    payment = {
        "id": str(charge.get("id") or f"ch_{app[RNG_KEY].getrandbits(96):024x}"),
        "status": "succeeded",
        "amount": order.total_cents,
        "currency": "usd",
    }
    await _complete_payment(tx, order, payment)
    _, label = await _third_party(
        base, "shipping-service", "POST", "api.easypost.com/v2/shipments",
        json_body={"shipment": {"reference": str(order.id), "to_address": {"name": name}}},
    )  # fmt: skip
    tracking = str(label.get("tracking_code", "")) if isinstance(label, dict) else ""
    await _third_party(
        base, "notification-service", "POST", "api.sendgrid.com/v3/mail/send",
        json_body={"personalizations": [{"to": [{"email": email}]}],
                   "subject": f"Order {order.id} confirmed",
                   "content": [{"type": "text/plain", "value": f"Tracking {tracking}"}]},
    )  # fmt: skip
    await _third_party(
        base, "notification-service", "POST",
        "api.twilio.com/2010-04-01/Accounts/AC_demo/Messages.json",
        form={"To": phone, "From": "+15550000000",
              "Body": f"Order {order.id} paid. Tracking {tracking}"},
    )  # fmt: skip
    return 200, {"order": order.as_json(), "payment": dict(payment)}, {}


async def get_product(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    async with request.app[STORE_KEY].transaction() as tx:
        product = await tx.product(sku)
    if product is None:
        raise ApiError(404, "not_found", f"product '{sku}' not found")
    return web.json_response({"product": product.as_json()})


async def list_products(request: web.Request) -> web.Response:
    async with request.app[STORE_KEY].transaction() as tx:
        products = await tx.products()
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


def _authenticate_webhook(request: web.Request, payload: bytes) -> None:
    """X-Signature (HMAC) always; the Stripe-Signature test value only in Stripe test mode."""
    x_signature = request.headers.get("X-Signature")
    stripe_signature = request.headers.get("Stripe-Signature")
    if x_signature is None and stripe_signature is not None:
        if not request.app[CONFIG_KEY].stripe_test_mode:
            raise ApiError(
                401,
                "invalid_signature",
                "Stripe-Signature test deliveries are accepted only when the sandbox runs in "
                "Stripe test mode (--stripe-test-mode); sign the payload with X-Signature",
            )
        if stripe_signature != STRIPE_TEST_SIGNATURE:
            raise ApiError(
                401,
                "invalid_signature",
                f"in Stripe test mode the only accepted Stripe-Signature is "
                f"'{STRIPE_TEST_SIGNATURE}'; sign real payloads with X-Signature",
            )
        return
    _verify_signature(x_signature, payload, time.time())


async def _event_order(tx: StoreTx, event: dict[str, Any]) -> Order:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    order_ref = metadata.get("order_id") if isinstance(metadata, dict) else None
    order_id = order_ref if _is_int(order_ref) else _parse_digits(order_ref)
    if order_id is None:
        raise _invalid("data.object.metadata.order_id must be an order id")
    order = await tx.order(order_id, lock=True)
    if order is None:
        # 422 rather than 404 (the route exists); not recorded, so Stripe's retry can succeed.
        raise ApiError(422, "unknown_order", f"order {order_id} not found")
    return order


async def _order_from_event(tx: StoreTx, event: dict[str, Any]) -> Order:
    """``order.created``: ``data.object`` is ``{customerId, items: [{sku, quantity}]}``."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise _invalid("order.created needs data.object with customerId and items")
    customer_id, items = obj.get("customerId"), obj.get("items")
    if not _is_int(customer_id) or not await tx.customer_exists(customer_id):
        raise ApiError(422, "unknown_customer", f"unknown customer {customer_id!r}")
    if not isinstance(items, list) or not items:
        raise _invalid("data.object.items must be a non-empty list")
    lines: list[OrderItem] = []
    for n, item in enumerate(items):
        sku = item.get("sku") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if not isinstance(sku, str) or not _is_int(quantity) or quantity < 1:
            raise _invalid(f"data.object.items[{n}] needs a sku and a positive quantity")
        product = await tx.product(sku)
        if product is None:
            raise ApiError(422, "unknown_sku", f"unknown sku '{sku}'")
        lines.append(OrderItem(sku, quantity, product.price_cents))
    return await tx.insert_order(
        customer_id,
        tuple(lines),
        sum(i.quantity * i.unit_price_cents for i in lines),
        datetime.now(UTC).replace(microsecond=0),
    )


async def stripe_webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    _authenticate_webhook(request, raw)
    try:
        event = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(event, dict):
        raise _invalid("request body must be a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise _invalid("event must have a string id and type")
    async with request.app[STORE_KEY].transaction() as tx:
        await tx.lock_key("webhook event id", event_id)
        # Inbox dedupe (playbook B-002): a redelivered event is acknowledged, never reprocessed.
        if await tx.event_seen(event_id):
            replayed: dict[str, Any] = {"received": True, "replayed": True}
            if (order_id := await tx.event_order(event_id)) is not None:
                replayed["orderId"] = order_id
            return web.json_response(replayed)
        answer: dict[str, Any] = {"received": True, "replayed": False}
        if event_type == "order.created":
            # The playbook's B-002: an order pushed to the partner is created once, whatever
            # the number of deliveries; a replay answers with the order the first one made.
            order = await _order_from_event(tx, event)
            await tx.record_event_order(event_id, order.id)
            answer["orderId"] = order.id
        elif event_type == "charge.succeeded":
            order = await _event_order(tx, event)
            if order.status != "paid":
                obj = event["data"]["object"]
                charge_id = obj.get("id")
                payment = {
                    "id": charge_id
                    if isinstance(charge_id, str)
                    else f"ch_{uuid.uuid4().hex[:24]}",
                    "status": "succeeded",
                    "amount": order.total_cents,
                    "currency": "usd",
                }
                await _complete_payment(tx, order, payment)
        elif event_type == "charge.failed":
            order = await _event_order(tx, event)
            if order.status != "paid":
                await tx.set_status(order, "payment_failed")
        # Other event types are acknowledged and ignored, as Stripe recommends.
        await tx.record_event(event_id)
    return web.json_response(answer)


async def create_job(request: web.Request) -> web.Response:
    async with request.app[STORE_KEY].transaction() as tx:
        job = await tx.create_job()
    return web.json_response(
        {"job": {"id": job.id, "status": "running"}},
        status=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


async def get_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    async with request.app[STORE_KEY].transaction() as tx:
        job = await tx.poll_job(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
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


async def get_third_parties(request: web.Request) -> web.Response:
    return web.json_response({"baseUrl": request.app[CONFIG_KEY].third_party_base_url})


async def set_third_parties(request: web.Request) -> web.Response:
    """``{"baseUrl": "<Certdash>/mock/<token>"}`` (or null): where the partner's services call
    Stripe, EasyPost, SendGrid and Twilio, as a partner configures its sandbox once."""
    _, body = await _read_json_object(request)
    base = body.get("baseUrl")
    if base is not None and not (
        isinstance(base, str) and base.startswith(("http://", "https://"))
    ):
        raise _invalid("baseUrl must be an http(s) URL or null")
    request.app[CONFIG_KEY].third_party_base_url = base or None
    return web.json_response({"baseUrl": base or None})


async def reset(request: web.Request) -> web.Response:
    await reset_app_state(request.app)
    return web.Response(status=204)


async def get_scenario(request: web.Request) -> web.Response:
    return web.json_response({"payments": request.app[SWITCHES_KEY].payments})


async def set_scenario(request: web.Request) -> web.Response:
    """`{"payments": "succeed" | "card_declined" | "rate_limited"}` for every following /pay."""
    _, body = await _read_json_object(request)
    unknown = sorted(set(body) - {"payments"})
    if unknown:
        raise _invalid(f"unknown field(s) {', '.join(unknown)}; expected 'payments'")
    payments = body.get("payments")
    if not isinstance(payments, str) or payments not in PAYMENT_SCENARIOS:
        raise _invalid(f"payments must be one of {', '.join(PAYMENT_SCENARIOS)}")
    request.app[SWITCHES_KEY].payments = payments
    return web.json_response({"payments": payments})


async def timings(request: web.Request) -> web.Response:
    """The server's own handling times (ms) since start or the last reset, so that a benchmark
    running the sandbox in another process can compare what the client measured."""
    return web.json_response({"timings_ms": list(request.app[TIMINGS_KEY])})


async def reset_timings(request: web.Request) -> web.Response:
    request.app[TIMINGS_KEY].clear()
    return web.Response(status=204)


async def restock(request: web.Request) -> web.Response:
    """Benchmarks pay for hundreds of orders: give every product ample stock."""
    async with request.app[STORE_KEY].transaction() as tx:
        await tx.restock()
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
    database_url: str | None = None,
    stripe_test_mode: bool = False,
    third_party_base_url: str | None = None,
) -> web.Application:
    """The sandbox application with fresh seed state (in memory) or the database's state.

    `delay_ms`/`jitter_ms` add a server-side delay drawn uniformly from
    [delay_ms - jitter_ms, delay_ms + jitter_ms] (floored at 0) to every request; `seed` makes
    those draws and the generated payment ids reproducible. With `api_key`, every /v1/ request
    must send it in X-API-Key. With `database_url` (a libpq URL or conninfo string) the state
    lives in that PostgreSQL database, which is connected to, and given the seed's schema if
    missing, when the application starts. `stripe_test_mode` accepts the Stripe-Signature test
    value on the webhook (see the module docstring).
    """
    for name, value in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if database_url is not None and not database_url.strip():
        raise ValueError("database_url must not be empty")
    app = web.Application(middlewares=[sandbox_middleware])
    if database_url is None:
        state = SandboxState()
        app[STATE_KEY] = state
        app[STORE_KEY] = MemoryStore(state)
    else:
        store = PostgresStore(database_url)
        app[STORE_KEY] = store
        app.cleanup_ctx.append(store.lifespan)
    app[CONFIG_KEY] = SandboxConfig(
        delay_ms=delay_ms,
        jitter_ms=jitter_ms,
        api_key=api_key,
        stripe_test_mode=stripe_test_mode,
        third_party_base_url=third_party_base_url or None,
    )
    app[SWITCHES_KEY] = SandboxSwitches()
    app[TIMINGS_KEY] = deque(maxlen=TIMINGS_MAX)
    app[RNG_KEY] = random.Random(seed)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/orders", create_order)
    app.router.add_get(r"/v1/orders/{order_id:\d{1,18}}", get_order)
    app.router.add_post(r"/v1/orders/{order_id:\d{1,18}}/pay", pay_order)
    app.router.add_get("/v1/products", list_products)
    app.router.add_get("/v1/products/{sku}", get_product)
    app.router.add_post("/webhooks/stripe", stripe_webhook)
    # The registry's p_001 endpoint (https://acme.example/webhooks/orders): same verification.
    app.router.add_post("/webhooks/orders", stripe_webhook)
    app.router.add_get("/sandbox/third-parties", get_third_parties)
    app.router.add_post("/sandbox/third-parties", set_third_parties)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_get("/v1/slow", slow)
    app.router.add_get(r"/v1/status/{code:\d{3}}", status_code)
    app.router.add_post("/sandbox/reset", reset)
    app.router.add_post("/sandbox/restock", restock)
    app.router.add_get("/sandbox/scenario", get_scenario)
    app.router.add_post("/sandbox/scenario", set_scenario)
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
        database_url: str | None = None,
        stripe_test_mode: bool = False,
        third_party_base_url: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.database_url = database_url
        self.app = create_app(
            delay_ms=delay_ms,
            jitter_ms=jitter_ms,
            api_key=api_key,
            seed=seed,
            database_url=database_url,
            stripe_test_mode=stripe_test_mode,
            third_party_base_url=third_party_base_url,
        )
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
        """Back to the seed (truncating and re-seeding the database in PostgreSQL mode), with
        the switches at their defaults. Works whether or not the server is running."""
        self._on_loop(lambda: reset_app_state(self.app))

    def _on_loop(self, fn: Callable[[], T | Awaitable[T]]) -> T:
        loop = self._loop
        if loop is None or self._stopping is None or self._stopping.is_set():
            # Not serving: nothing to race with.
            result = fn()
            if inspect.isawaitable(result):
                return asyncio.run(_awaited(result))
            return result

        async def call() -> T:
            result = fn()
            if inspect.isawaitable(result):
                return await result
            return result

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


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


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
        description="Demo partner sandbox: the playbook's e-commerce checkout API, with its "
        "state in memory or (--database-url) in PostgreSQL.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="artificial delay per request")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- around delay")
    parser.add_argument("--api-key", default=None, help="require this X-API-Key on /v1/")
    parser.add_argument(
        "--database-url",
        default=None,
        help="keep the state in this PostgreSQL database (created with the seed's schema and "
        "data if missing); default: in memory",
    )
    parser.add_argument(
        "--stripe-test-mode",
        action="store_true",
        help=f"also accept webhooks carrying 'Stripe-Signature: {STRIPE_TEST_SIGNATURE}' "
        "without an X-Signature (tests and demos only)",
    )
    parser.add_argument(
        "--third-party-base-url",
        default=None,
        help="call Stripe, EasyPost, SendGrid and Twilio at <this>/<host>/<path> (Certdash's "
        "hosted mocks for the partner: python manage.py partner_info p_001); default: decide "
        "payments in-process and call nothing",
    )
    args = parser.parse_args(argv)
    try:
        app = create_app(
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            api_key=args.api_key,
            database_url=args.database_url,
            stripe_test_mode=args.stripe_test_mode,
            third_party_base_url=args.third_party_base_url,
        )
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(app, args.host, args.port))


if __name__ == "__main__":
    main()
