"""Helpers for certification tests: a small suite, finished runs of it against the demo
sandbox (real HTTP, inline execution), and certifications opened on them."""

from __future__ import annotations

from typing import Any

from certification import execution, runs, suites
from certification.models import Run, Suite
from evidence import services
from evidence.models import Certification, ChecklistItem
from partners import services as partner_services
from partners.models import SLA, Partner
from partners.sla import parse_sla_text

SUITE = """\
name: orders-api
tests:
  - name: order accepted
    code: B-001
    kind: main
    steps:
      - name: health
        action: {type: httpRequest, method: GET, url: /health}
        assertions:
          - assertions:
              - {path: response.status, operator: eq, value: 200}
  - name: duplicate order rejected
    code: B-101
    kind: exception
    steps:
      - name: duplicate
        action: {type: httpRequest, method: GET, url: /v1/status/%(status)s}
        assertions:
          - assertions:
              - {path: response.status, operator: eq, value: 409}
  - name: latency
    code: B-106
    kind: alt
    steps:
      - name: probe
        action: {type: latencyProbe, method: GET, url: /health, requests: 60, concurrency: 4}
"""

API_KEY = "sk_live_evidence_SECRET_0123456789"


def suite(*, passing: bool) -> Suite:
    text = SUITE % {"status": "409" if passing else "404"}
    stored, _ = suites.suite_store(entry="orders.yaml", sources={"orders.yaml": text}, by="test")
    return stored


def add_slas(partner: Partner, text: str = "p95<=300ms") -> None:
    for target in parse_sla_text(text):
        SLA.objects.create(
            partner=partner, name=target.name, kind=target.kind, text=target.text,
            percentile=target.percentile, threshold_ms=target.threshold_ms,
            uptime_percent=target.uptime_percent, window_start=target.window_start,
            strict=target.strict, schedule=target.schedule, endpoint=target.endpoint,
        )  # fmt: skip


def add_endpoint(partner: Partner, base_url: str) -> None:
    partner_services.endpoint_save(
        partner=partner, by="test", name="api", base_url=base_url, is_default=True,
        auth_kind="api_key", auth_config={"header_name": "X-API-Key"},
        new_secrets={"api_key": API_KEY},
    )  # fmt: skip


def finished_run(partner: Partner, *, passing: bool, by: Any = "test") -> Run:
    run = runs.run_create(partner=partner, suite=suite(passing=passing), by=by)
    return execution.run_execute_inline(run=run, parallel=2)


def open_certification(partner: Partner, by: Any, **kwargs: Any) -> Certification:
    suite(passing=True)  # the suite must exist to be put in scope
    params = {"scope": "orders-api-v1", "title": "Orders API v1", "suite_names": ["orders-api"]}
    params.update(kwargs)
    return services.certification_open(partner=partner, by=by, **params)


def decide_checklist(certification: Certification, by: Any) -> None:
    for item in certification.checklist.all():
        services.checklist_set(item=item, state=ChecklistItem.State.MET, note="", by=by)
