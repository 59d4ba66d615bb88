"""Latency on the run page: the figures shown match percentiles computed independently from
the raw samples, within the histogram's stated precision (0.1 %), at the edges too."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from certification import results, runs, suites
from certification.engine.histogram import Histogram
from certification.engine.model import LatencySummary, ScenarioOutcome, StepOutcome
from certification.models import Run
from partners.models import SLA, Partner

SUITE = (
    "name: probes\ntests:\n  - name: probe\n    code: L-001\n    steps:\n"
    "      - action: {type: wait, ms: 1}\n"
)


def nearest_rank(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * pct / 100)) - 1]


def _run_with_samples(
    partner: Partner,
    samples: list[float],
    *,
    failed: int = 0,
    client_cpu: float | None = None,
    processes: int = 1,
    client_wait: float | None = None,
) -> Run:
    """A run whose one probe recorded ``samples`` (and ``failed`` refused requests), finished
    through the real save and finalise code."""
    suite, _ = suites.suite_store(entry="p.yaml", sources={"p.yaml": SUITE}, by="t")
    run = runs.run_create(partner=partner, suite=suite, by="test")
    histogram = Histogram()
    histogram.record_many(samples)
    n = len(samples) + failed
    latency = LatencySummary(
        endpoint="api", requests=n, ok=len(samples), errors=failed,
        success_ratio=len(samples) / n if n else None,
        p50=None, p90=None, p95=None, p99=None, max=None, wall_ms=1.0,
        errors_by_kind={"refused": failed} if failed else {}, histogram=histogram.to_dict(),
        client_cpu_percent=client_cpu, client_saturated=(client_cpu or 0) >= 80,
        client_processes=processes, client_wait_percent=client_wait,
    )  # fmt: skip
    sr = run.scenario_runs.select_related("scenario").get()
    outcome = ScenarioOutcome(
        name="probe", code="L-001", kind="main", status="passed",
        steps=[StepOutcome(index=0, name="probe", status="passed", latency=latency)],
    )  # fmt: skip
    assert results.scenario_outcome_save(scenario_run=sr, outcome=outcome)
    run.refresh_from_db()
    assert run.is_finished
    return run


def _shown(body: str) -> dict[str, float | None]:
    cells = re.findall(r'<td data-percentile="(\w+)"(?: data-ms="([\d.]+)")?>', body)
    return {name: float(value) if value else None for name, value in cells}


@pytest.fixture
def p95_sla(partner_a: Partner) -> SLA:
    return SLA.objects.create(partner=partner_a, name="p95", kind="latency", text="p95<=300ms",
                              percentile=95, threshold_ms=300)  # fmt: skip


def test_percentiles_on_the_page_match_the_raw_samples_within_a_tenth_of_a_percent(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    rng = random.Random(20261202)
    samples = [rng.lognormvariate(math.log(40), 0.6) for _ in range(2_000)]
    run = _run_with_samples(partner_a, samples)

    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()

    shown = _shown(body)
    for name, pct in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        true = nearest_rank(samples, pct)
        assert shown[name] == pytest.approx(true, rel=0.001, abs=0.0005), name
    assert shown["max"] == pytest.approx(max(samples), abs=0.0005)
    assert "0.1 % buckets" in body and "nearest rank" in body
    assert "<svg" in body and "2,000 successful" in body
    assert 'class="badge verdict-met">met<' in body
    assert "Rule: p95 of the successful probe samples of this endpoint" in body


def test_one_sample_shows_that_sample_for_every_percentile(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    run = _run_with_samples(partner_a, [12.345])
    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()
    shown = _shown(body)
    assert set(shown.values()) == {12.345}
    assert 'class="badge verdict-insufficient-samples">insufficient samples<' in body


def test_all_requests_failed_shows_no_figures_and_a_missed_verdict(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    run = _run_with_samples(partner_a, [], failed=10)
    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()
    assert set(_shown(body).values()) == {None}
    assert "No successful request to draw: all 10 requests failed" in body
    assert 'class="badge verdict-missed">missed<' in body and "refused x10" in body


def test_exactly_met_edge_fifty_nine_samples_under_the_target_is_met(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    run = _run_with_samples(partner_a, [299.0] * 59)
    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()
    assert _shown(body)["p95"] == pytest.approx(299.0, rel=0.001)
    assert 'class="badge verdict-met">met<' in body


def test_endpoint_without_probe_reads_not_measured(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    suite, _ = suites.suite_store(entry="p.yaml", sources={"p.yaml": SUITE}, by="t")
    run = runs.run_create(partner=partner_a, suite=suite, by="test")
    sr = run.scenario_runs.select_related("scenario").get()
    results.scenario_outcome_save(scenario_run=sr, outcome=ScenarioOutcome(
        name="probe", code="L-001", kind="main", status="passed",
        steps=[StepOutcome(index=0, name="wait", status="passed")]))  # fmt: skip
    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()
    assert 'class="badge verdict-not-measured">not measured<' in body
    assert "no latency probe reached this endpoint" in body


def test_a_target_missed_by_a_saturated_client_is_shown_as_not_measured_rather_than_missed(
    qa_client: Client, partner_a: Partner, endpoint_a: Any, p95_sla: SLA
) -> None:
    run = _run_with_samples(partner_a, [450.0] * 100, client_cpu=98.5)
    body = qa_client.get(reverse("certification:run_detail", args=[run.pk])).content.decode()
    assert 'class="badge verdict-insufficient-samples">insufficient samples<' in body
    assert "client was saturated during the probe (CPU 98.5 % of a core)" in body
    steps = qa_client.get(
        reverse("certification:run_scenario", args=[run.pk]), {"index": 0, "part": "steps"}
    ).content.decode()
    assert "client CPU 98.5 %" in steps and "these figures are an upper bound" in steps
    run.refresh_from_db()
    assert run.status == "failed"  # not passed: nothing unproven looks green


def test_a_probe_sent_from_several_processes_shows_the_busiest_ones_cpu_and_how_many(
    qa_client: Client, partner_a: Partner, endpoint_a: Any
) -> None:
    run = _run_with_samples(partner_a, [40.0] * 100, client_cpu=35.5, processes=4, client_wait=2.5)
    steps = qa_client.get(
        reverse("certification:run_scenario", args=[run.pk]), {"index": 0, "part": "steps"}
    ).content.decode()
    assert "client CPU 35.5 %, waiting for a core 2.5 % (the busiest of 4 processes)" in steps
    assert "upper bound" not in steps
