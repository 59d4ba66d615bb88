"""The suites volume runs execute: one generated suite per run size, stored through
``certification.suites.suite_store`` (validated like any uploaded suite).

A suite of ``steps`` steps has ``ceil(steps / 20)`` scenarios (at most 50), Main / Alternate /
Exception in turn with codes ``B-001``…; each scenario opens with a latency probe of the
``api`` or ``orders`` endpoint (alternately) and goes on with order-flow HTTP steps. The layout
is a pure function so the step generator and the stored suite always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from certification.models import Suite

SUITE_PREFIX = "volume-orders-"
PROBE_ENDPOINTS = ("api", "orders")
PROBE_REQUESTS = 150
KINDS = ("main", "alt", "exception")
MAX_SCENARIOS = 50
STEPS_PER_SCENARIO = 20
# A suite file is at most 1 MiB (certification.engine.spec.MAX_SUITE_BYTES): past this many
# steps the flow steps are written compactly, a stock read without assertions (~75 bytes).
COMPACT_ABOVE = 2_000


@dataclass(frozen=True)
class StepShape:
    """One step of the generated suite: what it sends and what it expects."""

    kind: str  # probe | product | order | order_get | pay | bad_order
    name: str
    endpoint: str
    method: str
    path: str
    expect: int
    checked: bool = True  # carries a status assertion (compact suites' flow steps do not)


@dataclass(frozen=True)
class ScenarioShape:
    index: int
    code: str
    name: str
    kind: str
    steps: tuple[StepShape, ...]


_FLOWS = {
    "main": ("product", "order", "order_get", "pay"),
    "alt": ("order", "order_get", "pay", "order_get"),
    "exception": ("product", "bad_order"),
}
_NAMES = {
    "main": "Order flow {n}",
    "alt": "Order flow {n} with retries",
    "exception": "Order flow {n} rejects bad input",
}


def _step(kind: str, position: int, probe_endpoint: str) -> StepShape:
    sku = f"SKU-{position % 50:04d}"
    if kind == "probe":
        return StepShape(
            kind, f"{PROBE_REQUESTS} lookups on {probe_endpoint}", probe_endpoint, "GET",
            "/v1/health", 200,
        )  # fmt: skip
    if kind == "product":
        return StepShape(kind, f"read stock of {sku}", "api", "GET", f"/v1/products/{sku}", 200)
    if kind == "bad_order":
        return StepShape(
            kind, f"order with no items ({position})", "api", "POST", "/v1/orders", 422
        )
    if kind == "order":
        return StepShape(kind, f"create order ({position})", "api", "POST", "/v1/orders", 201)
    if kind == "order_get":
        return StepShape(
            kind, f"read order ({position})", "orders", "GET", "/v1/orders/{{orderId}}", 200
        )
    return StepShape(
        kind, f"pay order ({position})", "orders", "POST", "/v1/orders/{{orderId}}/pay", 200
    )


def _compact_step(position: int) -> StepShape:
    sku = f"SKU-{position % 50:04d}"
    return StepShape("product", f"stock {position}", "api", "GET", f"/v1/products/{sku}", 200,
                     checked=False)  # fmt: skip


def suite_layout(steps: int) -> tuple[ScenarioShape, ...]:
    """The scenarios of the ``steps``-step suite, ``steps`` steps in all. Precondition: steps >= 1.

    Scenario ``i`` opens with a probe of ``PROBE_ENDPOINTS[i % 2]``; Main scenarios then read
    stock, order, read the order back and pay; Alternate ones order, read and pay; Exception
    ones read stock and send orders that must be refused (422)."""
    compact = steps > COMPACT_ABOVE
    count = min(MAX_SCENARIOS, max(1, math.ceil(steps / STEPS_PER_SCENARIO)))
    sizes = [steps // count + (1 if i < steps % count else 0) for i in range(count)]
    scenarios = []
    for i, size in enumerate(sizes):
        kind = KINDS[i % len(KINDS)]
        probe = PROBE_ENDPOINTS[i % len(PROBE_ENDPOINTS)]
        shapes = [_step("probe", 0, probe)]
        if compact:
            shapes += [_compact_step(k) for k in range(1, size)]
        else:
            flow = _FLOWS[kind]
            shapes += [_step(flow[(k - 1) % len(flow)], k, probe) for k in range(1, size)]
        scenarios.append(
            ScenarioShape(
                index=i,
                code=f"B-{i + 1:03d}",
                name=_NAMES[kind].format(n=i + 1),
                kind=kind,
                steps=tuple(shapes),
            )
        )
    return tuple(scenarios)


def _yaml_step(step: StepShape) -> str:
    url = f"{step.endpoint}{step.path}"
    if step.kind == "probe":
        return (
            f"      - name: {step.name}\n"
            f"        action: {{type: latencyProbe, method: GET, url: '{url}', "
            f"requests: {PROBE_REQUESTS}, concurrency: 10}}\n"
            "        assertions:\n"
            "          - assertions:\n"
            "              - {path: errors.rate, operator: eq, value: 0}\n"
        )
    if not step.checked:
        action = f"{{type: httpRequest, method: GET, url: {url}}}"
        return f"      - {{name: {step.name}, action: {action}}}\n"
    body = ""
    if step.kind == "order":
        body = ", body: {customerId: 1, items: [{sku: SKU-0001, quantity: 1}]}"
    elif step.kind == "bad_order":
        body = ", body: {customerId: 1, items: []}"
    elif step.kind == "pay":
        body = ", body: {paymentMethod: pm_test_visa}"
    text = (
        f"      - name: '{step.name}'\n"
        f"        action: {{type: httpRequest, method: {step.method}, url: '{url}'{body}}}\n"
        "        assertions:\n"
        "          - assertions:\n"
        f"              - {{path: response.status, operator: eq, value: {step.expect}}}\n"
    )
    if step.kind == "order":
        text += "        extract: {orderId: response.body.order.id}\n"
    return text


def suite_yaml(steps: int) -> str:
    """The suite's YAML source (Dokkimi superset, as ``docs/scenarios.md`` describes)."""
    parts = [
        f"name: {SUITE_PREFIX}{steps}\n",
        f"description: Generated order-flow suite of {steps} steps (manage.py seed_volume).\n",
        "tests:\n",
    ]
    for scenario in suite_layout(steps):
        parts.append(
            f"  - name: {scenario.name}\n    code: {scenario.code}\n    kind: {scenario.kind}\n"
            "    steps:\n"
        )
        parts.extend(_yaml_step(step) for step in scenario.steps)
    return "".join(parts)


def suite_for(steps: int, *, by: Any) -> Suite:
    """The stored ``steps``-step suite (created on first use, the same version afterwards)."""
    from certification.suites import suite_store

    entry = f"{SUITE_PREFIX}{steps}.yaml"
    suite, _ = suite_store(entry=entry, sources={entry: suite_yaml(steps)}, by=by)
    return suite
