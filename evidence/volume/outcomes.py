"""Generated results of one run: step rows, scenario statuses, and the run's verdict.

Pure functions of a seeded ``random.Random``: no database. Latency probes record lognormal
samples into real ``Histogram``s and are summarised as the engine's ``LatencySummary`` is;
the run's per-endpoint latency, SLA verdicts, reasons and status then come from the same
functions ``certification.results.run_finalize`` uses (``rollup_by_endpoint``,
``sla_verdicts``, ``failing_reasons``, the engine's ``worst_status``), so every page shows
figures consistent with the steps behind them.

The mix: about 80 % of runs pass; 15 % fail (a failed assertion, then the scenario's remaining
steps skipped; or a probe with failed requests); 5 % end in error (a step timed out). A slow
endpoint (its median latency is drawn per endpoint) misses its latency SLA in every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from certification.engine.histogram import Histogram
from certification.engine.runner import worst_status
from certification.verdicts import failing_reasons, rollup_by_endpoint, sla_verdicts
from evidence.volume.suites import PROBE_REQUESTS, ScenarioShape, StepShape
from partners.sla import SLATarget

PASS, FAIL, ERROR = "pass", "fail", "error"
MASK = "••••••••"
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class EndpointProfile:
    """How an endpoint answers: lognormal latency with median ``median_ms``."""

    name: str
    base_url: str
    median_ms: float
    sigma: float = 0.35


@dataclass
class ScenarioResult:
    index: int
    status: str
    started_at: datetime
    duration_ms: float
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunResult:
    status: str
    started_at: datetime
    finished_at: datetime
    scenarios: list[ScenarioResult]
    latency: dict[str, Any]
    sla_verdicts: list[dict[str, Any]]
    reasons: list[str]

    @property
    def step_count(self) -> int:
        return sum(len(s.steps) for s in self.scenarios)


def run_plan(rng: random.Random) -> str:
    roll = rng.random()
    return PASS if roll < 0.80 else FAIL if roll < 0.95 else ERROR


def _sample(rng: random.Random, profile: EndpointProfile) -> float:
    return rng.lognormvariate(math.log(profile.median_ms), profile.sigma)


def probe_summary(
    rng: random.Random, profile: EndpointProfile, *, failures: int = 0
) -> dict[str, Any]:
    """A latency probe's summary as the engine stores it (``LatencySummary``)."""
    histogram = Histogram()
    ok = PROBE_REQUESTS - failures
    histogram.record_many(_sample(rng, profile) for _ in range(ok))
    errors_by_kind = {"status 503": failures} if failures else {}
    statuses = {"200": ok, **({"503": failures} if failures else {})}

    def pct(value: float) -> float | None:
        return round(histogram.percentile(value), 3) if ok else None

    return {
        "endpoint": profile.name,
        "requests": PROBE_REQUESTS,
        "ok": ok,
        "errors": failures,
        "success_ratio": round(ok / PROBE_REQUESTS, 6),
        "p50": pct(50),
        "p90": pct(90),
        "p95": pct(95),
        "p99": pct(99),
        "max": round(histogram.max, 3) if ok else None,
        "wall_ms": round(histogram.total / 10, 3),
        "errors_by_kind": errors_by_kind,
        "status": statuses,
        "histogram": histogram.to_dict(),
        "flow": "",
        "timeout_ms": TIMEOUT_MS,
        "client_lag_ms": 0.0,
    }


def _capture(body: str, headers: dict[str, str]) -> dict[str, Any]:
    raw = body.encode()
    return {
        "headers": headers,
        "body": body,
        "body_size": len(raw),
        "body_sha256": hashlib.sha256(raw).hexdigest(),
        "truncated": False,
    }


_REQUEST_BODIES = {
    "order": json.dumps({"customerId": 1, "items": [{"sku": "SKU-0001", "quantity": 1}]}),
    "bad_order": json.dumps({"customerId": 1, "items": []}),
    "pay": json.dumps({"paymentMethod": "pm_test_visa"}),
}


def _response_body(step: StepShape, status: int, order_id: int) -> str:
    if status >= 500:
        return json.dumps({"error": "internal", "message": "upstream unavailable"})
    if step.kind == "bad_order":
        return json.dumps({"error": "validation", "message": "items: at least one item"})
    if step.kind == "product":
        return json.dumps({"product": {"sku": step.path.rsplit("/", 1)[-1], "stock": 40}})
    if step.kind == "pay":
        return json.dumps(
            {"order": {"id": order_id, "status": "paid"}, "payment": {"amount": 1299}}
        )
    return json.dumps({"order": {"id": order_id, "status": "created", "totalCents": 1299}})


def http_step(
    rng: random.Random,
    step: StepShape,
    profile: EndpointProfile,
    *,
    index: int,
    at: datetime,
    order_id: int,
    failing: bool,
) -> dict[str, Any]:
    """One recorded HTTP exchange; ``failing``: the partner answered with the wrong status."""
    total = round(_sample(rng, profile), 3)
    path = step.path.replace("{{orderId}}", str(order_id))
    request_headers = {"Accept": "application/json", "X-API-Key": MASK}
    body = _REQUEST_BODIES.get(step.kind, "")
    if body:
        request_headers["Content-Type"] = "application/json"
    status = (500 if step.expect < 400 else 201) if failing else step.expect
    response_body = _response_body(step, status, order_id)
    assertions = []
    if step.checked:
        message = "" if status == step.expect else f"expected {step.expect}, got {status}"
        assertions = [
            {"path": "response.status", "operator": "eq", "expected": step.expect,
             "actual": status, "passed": status == step.expect, "message": message,
             "evaluated": True}
        ]  # fmt: skip
    return {
        "step_index": index,
        "name": step.name,
        "status": "failed" if assertions and not assertions[0]["passed"] else "passed",
        "request": {**_capture(body, request_headers), "method": step.method,
                    "url": f"{profile.base_url}{path}"},
        "response": {**_capture(response_body, {"Content-Type": "application/json",
                                                "Content-Length": str(len(response_body))}),
                     "status": status, "redirects": []},
        "timings": {"connect_ms": round(total * 0.05, 3), "tls_ms": None,
                    "ttfb_ms": round(total * 0.9, 3), "total_ms": total},
        "assertions": assertions,
        "failure": None,
        "extracted": {"orderId": order_id} if step.kind == "order" and not failing else {},
        "latency": None,
        "notes": [], "traffic": [],
        "started_at": at,
        "duration_ms": total,
    }  # fmt: skip


def error_step(step: StepShape, profile: EndpointProfile, *, index: int, at: datetime) -> dict:
    return {
        "step_index": index, "name": step.name, "status": "error",
        "request": None, "response": None, "timings": None, "assertions": [],
        "failure": {"kind": "timeout",
                    "message": f"no response from {profile.base_url} within {TIMEOUT_MS} ms"},
        "extracted": {}, "latency": None, "notes": [], "traffic": [], "started_at": at,
        "duration_ms": float(TIMEOUT_MS),
    }  # fmt: skip


def probe_step(
    rng: random.Random, step: StepShape, profile: EndpointProfile, *, index: int, at: datetime,
    failures: int,
) -> dict[str, Any]:  # fmt: skip
    latency = probe_summary(rng, profile, failures=failures)
    rate = failures / PROBE_REQUESTS
    notes = []
    if failures:
        notes.append(
            f"{failures} of {PROBE_REQUESTS} requests failed and are not latency samples: "
            f"status 503 x{failures}"
        )
    return {
        "step_index": index, "name": step.name, "status": "failed" if failures else "passed",
        "request": None, "response": None, "timings": None,
        "assertions": [{"path": "errors.rate", "operator": "eq", "expected": 0, "actual": rate,
                        "passed": not failures,
                        "message": f"expected 0, got {rate}" if failures else "",
                        "evaluated": True}],
        "failure": None, "extracted": {}, "latency": latency, "notes": notes, "traffic": [],
        "started_at": at, "duration_ms": latency["wall_ms"],
    }  # fmt: skip


def skipped_step(step: StepShape, *, index: int) -> dict[str, Any]:
    return {
        "step_index": index, "name": step.name, "status": "skipped", "request": None,
        "response": None, "timings": None, "assertions": [], "failure": None, "extracted": {},
        "latency": None, "notes": [], "traffic": [], "started_at": None, "duration_ms": 0.0,
    }  # fmt: skip


def _scenario(
    rng: random.Random,
    shape: ScenarioShape,
    profiles: dict[str, EndpointProfile],
    *,
    at: datetime,
    trouble: str,
    order_base: int,
) -> ScenarioResult:
    """``trouble``: "" (all pass), "assert" (one step fails), "probe" (the probe has failed
    requests), "error" (one step times out)."""
    shapes = shape.steps
    troubled = len(shapes) > 1 and trouble in ("assert", "error")
    bad_at = rng.randrange(1, len(shapes)) if troubled else -1
    if bad_at < 0 and trouble in ("assert", "error"):
        trouble = "probe"  # a one-step scenario: its probe is what goes wrong
    elif trouble == "assert" and not shapes[bad_at].checked:
        trouble = "probe"  # a compact step has no assertion to fail
    steps: list[dict[str, Any]] = []
    clock = at
    stopped = False
    order_id = order_base
    for index, step in enumerate(shapes):
        profile = profiles[step.endpoint]
        if stopped:
            steps.append(skipped_step(step, index=index))
            continue
        if step.kind == "probe":
            failures = rng.randint(1, 4) if trouble == "probe" else 0
            row = probe_step(rng, step, profile, index=index, at=clock, failures=failures)
        elif index == bad_at and trouble == "error":
            row = error_step(step, profile, index=index, at=clock)
        else:
            if step.kind == "order":
                order_id += 1
            row = http_step(
                rng, step, profile, index=index, at=clock, order_id=order_id,
                failing=index == bad_at and trouble == "assert",
            )  # fmt: skip
        steps.append(row)
        clock += timedelta(milliseconds=row["duration_ms"])
        stopped = row["status"] in ("failed", "error")
    duration = (clock - at).total_seconds() * 1000
    return ScenarioResult(
        index=shape.index,
        status=worst_status(s["status"] for s in steps),
        started_at=at,
        duration_ms=round(duration, 3),
        steps=steps,
    )


def run_result(
    rng: random.Random,
    layout: Sequence[ScenarioShape],
    profiles: dict[str, EndpointProfile],
    slas: Sequence[tuple[SLATarget, str]],
    http_endpoints: Sequence[str],
    *,
    started_at: datetime,
    plan: str,
    order_base: int = 1000,
) -> RunResult:
    """A finished run of ``layout``. ``profiles`` must name every endpoint the layout uses."""
    troubled: dict[int, str] = {}
    if plan != PASS and layout:
        count = 1 if plan == ERROR else rng.randint(1, min(2, len(layout)))
        for i in rng.sample(range(len(layout)), count):
            troubled[i] = "error" if plan == ERROR else rng.choice(("assert", "assert", "probe"))
    scenarios = []
    clock = started_at
    for i, shape in enumerate(layout):
        result = _scenario(
            rng, shape, profiles, at=clock, trouble=troubled.get(i, ""),
            order_base=order_base + i * 1000,
        )  # fmt: skip
        scenarios.append(result)
        clock += timedelta(milliseconds=result.duration_ms)
    return run_verdict(scenarios, slas, http_endpoints, started_at=started_at, finished_at=clock)


def run_verdict(
    scenarios: list[ScenarioResult],
    slas: Sequence[tuple[SLATarget, str]],
    http_endpoints: Sequence[str],
    *,
    started_at: datetime,
    finished_at: datetime,
) -> RunResult:
    """Latency roll-up, SLA verdicts, reasons and status, by ``run_finalize``'s rules (the runs
    seeded here are never cancelled)."""
    latencies = [s["latency"] for sc in scenarios for s in sc.steps if s["latency"] is not None]
    rollups = rollup_by_endpoint(latencies)
    verdicts = [v.to_dict() for v in sla_verdicts(slas, endpoints=http_endpoints, rollups=rollups)]
    counts: dict[str, int] = {}
    for scenario in scenarios:
        counts[scenario.status] = counts.get(scenario.status, 0) + 1
    reasons = []
    for value, label in (
        ("error", "errored"),
        ("failed", "failed"),
        ("unevaluated", "had checks that were not evaluated"),
    ):
        if counts.get(value):
            reasons.append(f"{counts[value]} scenario{'s' if counts[value] > 1 else ''} {label}")
    reasons += failing_reasons(verdicts)
    if counts.get("error"):
        status = "error"
    elif set(counts) <= {"passed"} and not reasons:
        status = "passed"
    else:
        status = "failed"
    return RunResult(
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        scenarios=scenarios,
        latency={name: rollup.to_dict() for name, rollup in rollups.items()},
        sla_verdicts=verdicts,
        reasons=reasons,
    )
