"""Synthetic evidence bundles for the certificate tests and ``bench/pdf.py``: a
:class:`BundleSource` as ``evidence.collect`` would gather it, without a database.

Everything is derived from the arguments and a seeded random generator, so the same call gives
the same source. SLA verdicts and latency roll-ups come from the real ``certification.verdicts``
functions over generated histograms, so their fields are the ones a real run has.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certification.engine.histogram import Histogram
from certification.verdicts import PERCENTILE_METHOD, EndpointRollup, latency_verdict, sla_label
from certification.verdicts import uptime_verdict as _uptime_verdict
from evidence.bundle_source import FORMAT, BundleSource
from partners.sla import LATENCY, parse_sla_text

FIXED_TIME = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
KINDS = ("main", "alt", "exception")
BAD_STATUSES = ("failed", "error", "unevaluated")
SUITE_NAMES = ("orders", "payments", "returns")


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint of the synthetic run and the latency its probes saw.

    ``profile``: "normal" (log-normal around ``median_ms``), "none" (every request failed),
    "single" (one sample), "flat" (every sample in one histogram bucket).
    """

    name: str
    profile: str = "normal"
    median_ms: float = 80.0
    samples: int = 1500
    slas: str = "p95<=300ms, p99<=120ms, uptime 99.9%"


DEFAULT_ENDPOINTS = (EndpointSpec("orders-api"),)


def _body(rng: random.Random, size: int) -> str:
    items = []
    while len(json.dumps(items)) < size:
        n = len(items)
        items.append(
            {"sku": f"WIDGET-{rng.randrange(1000):03d}", "quantity": 1 + n % 5, "note": "x" * 24}
        )
    return json.dumps({"order": {"id": f"ord_{rng.randrange(10**8):08d}"}, "items": items})


def make_step(
    rng: random.Random, run_id: int, scenario: int, index: int, status: str, body_size: int
) -> dict[str, Any]:
    """A step dict shaped like ``certification.selectors.step_as_json``."""
    request_body = json.dumps({"customerId": scenario, "items": [{"sku": "WIDGET-001"}]})
    response_body = _body(rng, body_size)
    ok = status == "passed"
    assertions = [
        {
            "path": "response.status",
            "operator": "eq",
            "expected": 201,
            "actual": 201 if ok else 422,
            "passed": ok,
            "evaluated": True,
            "message": None if ok else "expected 201, got 422",
        },
        {
            "path": "response.body.order.id",
            "operator": "exists",
            "expected": None,
            "actual": "ord_1",
            "passed": True,
            "evaluated": True,
            "message": None,
        },
    ]
    if status == "unevaluated":
        assertions.append(
            {
                "path": "response.body.order.totalCents",
                "operator": "eq",
                "expected": 999,
                "actual": None,
                "passed": False,
                "evaluated": False,
                "message": "response.body.order.totalCents is missing",
            }
        )
    failure = None
    if status == "error":
        failure = {"kind": "timeout", "message": "no response within 5000 ms"}
    elif status == "failed":
        failure = {"kind": "assertion", "message": "1 of 2 assertions failed"}
    return {
        "name": f"step {index}: create order",
        "status": status,
        "iteration": 0,
        "request": {
            "method": "POST",
            "url": f"https://sandbox.partner.example/v3/orders?run={run_id}&s={scenario}",
            "headers": {"Content-Type": "application/json", "Authorization": "Bearer ****"},
            "body": request_body,
            "body_size": len(request_body),
            "body_sha256": hashlib.sha256(request_body.encode()).hexdigest(),
            "truncated": False,
        },
        "response": None
        if status == "error"
        else {
            "status": 201 if ok else 422,
            "headers": {"Content-Type": "application/json"},
            "body": response_body,
            "body_size": len(response_body),
            "body_sha256": hashlib.sha256(response_body.encode()).hexdigest(),
            "truncated": False,
            "redirects": [],
        },
        "timings": {"connect_ms": 1.2, "tls_ms": None, "ttfb_ms": 30.5, "total_ms": 31.0},
        "assertions": assertions,
        "failure": failure,
        "extracted": {"orderId": "ord_1"},
        "data": None,
        "latency": None,
        "notes": [],
        "durationMs": round(20 + rng.random() * 40, 3),
    }


def _histogram(rng: random.Random, spec: EndpointSpec) -> Histogram:
    histogram = Histogram()
    if spec.profile == "normal":
        for _ in range(spec.samples):
            histogram.record(rng.lognormvariate(0, 0.45) * spec.median_ms)
    elif spec.profile == "single":
        histogram.record(spec.median_ms)
    elif spec.profile == "flat":
        for _ in range(spec.samples):
            histogram.record(spec.median_ms)
    return histogram


def _rollup(rng: random.Random, spec: EndpointSpec) -> EndpointRollup:
    histogram = _histogram(rng, spec)
    failed = 20 if spec.profile == "none" else 3
    rollup = EndpointRollup()
    rollup.add(
        {
            "endpoint": spec.name,
            "requests": histogram.count + failed,
            "ok": histogram.count,
            "errors_by_kind": {"refused": failed},
            "histogram": histogram.to_dict(),
        }
    )
    return rollup


@dataclass
class Shape:
    """How big the synthetic bundle is."""

    scenarios: int = 10
    steps_per_scenario: int = 10
    failing_scenarios: int = 2
    failing_steps_per_scenario: int = 1
    body_size: int = 1200
    runs: int = 1
    kind: str = "certification"
    signed: bool = True
    endpoints: tuple[EndpointSpec, ...] = DEFAULT_ENDPOINTS
    seed: int = 7


def _scenario_status(shape: Shape, index: int) -> str:
    if index < shape.failing_scenarios:
        return BAD_STATUSES[index % len(BAD_STATUSES)]
    return "passed"


def _user(name: str) -> dict[str, str]:
    return {"name": name, "username": name.lower().replace(" ", ".")}


def build_source(shape: Shape | None = None) -> BundleSource:
    """A complete synthetic :class:`BundleSource` of ``shape``."""
    shape = shape or Shape()
    rng = random.Random(shape.seed)
    run_ids = [4100 + i for i in range(shape.runs)]
    suites, runs, scenarios, endpoints, latency, slas = [], [], [], [], [], []
    failures: dict[str, list[dict[str, Any]]] = {}
    waivers: list[dict[str, Any]] = []
    for r, run_id in enumerate(run_ids):
        suite = SUITE_NAMES[r % len(SUITE_NAMES)] + ("" if r < len(SUITE_NAMES) else str(r))
        suites.append(
            {
                "name": suite,
                "version": 3,
                "contentHash": hashlib.sha256(suite.encode()).hexdigest(),
                "entry": "orders.yaml",
                "files": [{"path": "orders.yaml", "sha256": hashlib.sha256(b"orders").hexdigest()}],
            }
        )
        counts = dict.fromkeys(("passed", "failed", "error", "unevaluated", "cancelled"), 0)
        step_counts = dict.fromkeys(("passed", "failed", "error", "skipped", "unevaluated"), 0)
        for index in range(shape.scenarios):
            status = _scenario_status(shape, index)
            counts[status] += 1
            bad = 0 if status == "passed" else shape.failing_steps_per_scenario
            step_counts["passed"] += shape.steps_per_scenario - bad
            step_counts[status if status != "passed" else "passed"] += bad
            waiver = None
            if index == 1 and status != "passed":
                waiver = {
                    "id": "w-1",
                    "reason": "Known sandbox defect PARTNER-77; fixed in production",
                    "endsOn": "2026-06-30",
                    "approvedBy": "Dana Reviewer",
                }
            scenarios.append(
                {
                    "run": run_id,
                    "index": index,
                    "code": f"{'MAE'[index % 3]}-{index:03d}",
                    "name": f"Order flow {index}: create, read back and pay",
                    "kind": KINDS[index % 3],
                    "status": status,
                    "steps": shape.steps_per_scenario,
                    "passedSteps": shape.steps_per_scenario - bad,
                    "durationMs": round(200 + rng.random() * 900, 3),
                    "waiver": waiver,
                }
            )
            if bad:
                failures[f"{run_id}/{index}"] = [
                    make_step(rng, run_id, index, i, status, shape.body_size) for i in range(bad)
                ]
        runs.append(
            {
                "id": run_id,
                "suite": suite,
                "suiteVersion": 3,
                "status": "failed" if shape.failing_scenarios else "passed",
                "trigger": "manual",
                "createdAt": "2026-03-01T10:00:00+00:00",
                "startedAt": "2026-03-01T10:00:02+00:00",
                "finishedAt": "2026-03-01T10:14:09+00:00",
                "createdBy": "Quinn Lead",
                "scenarios": {"total": shape.scenarios, **counts},
                "steps": {"total": shape.scenarios * shape.steps_per_scenario, **step_counts},
                "reasons": [f"{shape.failing_scenarios} scenarios did not pass"]
                if shape.failing_scenarios
                else [],
                "error": None,
            }
        )
        for spec in shape.endpoints:
            endpoints.append(
                {
                    "run": run_id,
                    "name": spec.name,
                    "baseUrl": f"https://sandbox.partner.example/{spec.name}",
                    "authKind": "bearer",
                    "kind": "http",
                }
            )
            rollup = _rollup(rng, spec)
            latency.append({"run": run_id, "endpoint": spec.name, **rollup.to_dict()})
            for target in parse_sla_text(spec.slas):
                judge = latency_verdict if target.kind == LATENCY else _uptime_verdict
                verdict = judge(target, spec.name, rollup).to_dict()
                slas.append({"run": run_id, "label": sla_label(verdict), **verdict, "waiver": None})
    if any(s["waiver"] for s in scenarios):
        waivers.append(
            {
                "id": "w-1",
                "itemKind": "scenario",
                "itemKey": f"{run_ids[0]}/1",
                "itemLabel": "E-001 Order flow 1",
                "reason": "Known sandbox defect PARTNER-77; fixed in production",
                "endsOn": "2026-06-30",
                "status": "approved",
                "inForce": True,
                "requestedBy": _user("Quinn Lead"),
                "requestedAt": "2026-03-02T08:00:00+00:00",
                "approvedBy": _user("Dana Reviewer"),
                "approvedAt": "2026-03-02T09:30:00+00:00",
            }
        )
    certification = None
    if shape.kind == "certification":
        certification = {
            "id": "8d0c7c1e-0000-4000-8000-000000000001",
            "scope": "orders-api-v3",
            "title": "Orders API v3 go-live",
            "status": "certified" if shape.signed else "open",
            "openedAt": "2026-02-20T12:00:00+00:00",
            "signedOffAt": "2026-03-05T16:00:00+00:00" if shape.signed else None,
            "validUntil": "2027-03-05T16:00:00+00:00" if shape.signed else None,
            "validityDays": 365,
        }
    if shape.kind == "run":
        verdict = {
            "result": "failed" if shape.failing_scenarios else "passed",
            "headline": "RUN FAILED" if shape.failing_scenarios else "RUN PASSED",
            "reasons": runs[0]["reasons"],
        }
    elif shape.signed:
        verdict = {"result": "certified", "headline": "CERTIFIED until 2027-03-05", "reasons": []}
    else:
        verdict = {
            "result": "not certified",
            "headline": "NOT SIGNED OFF",
            "reasons": ["no sign-off yet", *runs[0]["reasons"]],
        }
    summary = {
        "format": FORMAT,
        "kind": shape.kind,
        "id": "b-0f1e2d3c",
        "generatedAt": FIXED_TIME.isoformat(),
        "partner": {"id": "p_a01", "name": "Alpha Freight"},
        "certification": certification,
        "verdict": verdict,
        "environment": {"name": "sandbox", "product": "Orders", "productVersion": "3.2.0"},
        "suites": suites,
        "endpoints": endpoints,
        "runs": runs,
        "scenarios": scenarios,
        "sla": slas,
        "percentileMethod": PERCENTILE_METHOD,
        "latency": latency,
        "waivers": waivers,
        "checklist": [
            {
                "key": "contract",
                "label": "Partner contract covers the sandbox data",
                "state": "met",
                "note": "Signed 2026-02-01",
                "by": _user("Quinn Lead"),
                "at": "2026-03-03T10:00:00+00:00",
                "scenarios": [],
            },
            {
                "key": "errors",
                "label": "Error responses reviewed",
                "state": "open",
                "note": "",
                "by": None,
                "at": None,
                "scenarios": [
                    {
                        "run": run_ids[0],
                        "index": i,
                        "code": s["code"],
                        "name": s["name"],
                        "status": s["status"],
                    }  # fmt: skip
                    for i, s in enumerate(scenarios[:2])
                ],
            },
        ],
        "certifiedBy": {
            "name": "Quinn Lead",
            "username": "quinn",
            "role": "QA lead",
            "at": "2026-03-05T16:00:00+00:00",
            "note": "All blocking items closed.",
        }
        if shape.signed and shape.kind == "certification"
        else None,
        "partnerConfirmation": None,
        "results": {
            "file": "results.jsonl",
            "records": shape.runs * shape.scenarios * shape.steps_per_scenario,
            "headSha256": hashlib.sha256(b"head").hexdigest(),
        },
        "signingKey": {"algorithm": "Ed25519", "fingerprint": "SHA256:" + "Q" * 43},
    }

    def iter_steps() -> Iterator[tuple[int, int, dict[str, Any]]]:
        steps_rng = random.Random(shape.seed + 1)
        for run_id in run_ids:
            for index in range(shape.scenarios):
                bad_steps = failures.get(f"{run_id}/{index}", [])
                for i in range(shape.steps_per_scenario - len(bad_steps)):
                    yield (
                        run_id,
                        index,
                        make_step(steps_rng, run_id, index, i, "passed", shape.body_size),
                    )
                for step in bad_steps:
                    yield run_id, index, step

    return BundleSource(
        kind=shape.kind,
        summary=summary,
        suite_files={
            f"suite/{s['name']}-v{s['version']}/{s['entry']}": b"name: orders\n" for s in suites
        },
        run_ids=run_ids,
        fixed_time=FIXED_TIME,
        failures=failures,
        iter_steps=iter_steps,
    )


def write_results(source: BundleSource, path: Path) -> Path:
    """Stream every step of ``source`` to ``path`` as JSON lines (memory flat in steps)."""
    assert source.iter_steps is not None
    with path.open("w", encoding="utf-8") as out:
        for run_id, index, step in source.iter_steps():
            out.write(json.dumps({"run": run_id, "scenario": index, "step": step}) + "\n")
    return path


def attachments_for(source: BundleSource, results: Path) -> list[tuple[str, Path | bytes, str]]:
    """The attachments a bundle gives the certificate: results, summary and suite files."""
    return [
        ("results.jsonl", results, "application/x-ndjson"),
        ("certification.json", json.dumps(source.summary).encode(), "application/json"),
        *((name, data, "application/yaml") for name, data in source.suite_files.items()),
    ]
