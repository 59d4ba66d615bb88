"""SLA verdicts per endpoint, through `run_suite --inline` against real local servers: a fast
endpoint beside a slow one, one answering 404 to everything and one refusing connections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command

from certification.models import Run
from partners import services
from partners.models import SLA, Partner
from tests.engine.servers import closed_port

SUITE = """\
name: four endpoints
tests:
  - name: probes
    code: B-900
    steps:
      - name: fast
        action: {type: latencyProbe, method: GET, url: fast/health, requests: 3000,
                 concurrency: 20}
      - name: slow
        continueOnFailure: true
        action: {type: latencyProbe, method: GET, url: "slow/v1/slow?ms=350", requests: 60,
                 concurrency: 30}
      - name: missing
        continueOnFailure: true
        action: {type: latencyProbe, method: GET, url: missing/v1/status/404, requests: 20,
                 concurrency: 5}
      - name: dead
        continueOnFailure: true
        action: {type: latencyProbe, method: GET, url: dead/health, requests: 20,
                 concurrency: 5}
"""


def _sla(partner: Partner, text: str) -> None:
    from partners.sla import parse_sla_text

    for target in parse_sla_text(text):
        SLA.objects.create(
            partner=partner,
            name=target.name,
            kind=target.kind,
            text=target.text,
            percentile=target.percentile,
            threshold_ms=target.threshold_ms,
            uptime_percent=target.uptime_percent,
            window_start=target.window_start,
            strict=target.strict,
            schedule=target.schedule,
            endpoint=target.endpoint,
        )


def _endpoint(partner: Partner, name: str, url: str) -> None:
    services.endpoint_save(
        partner=partner, by="test", name=name, base_url=url, is_default=False,
        auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished(
    django_db_setup: Any, django_db_blocker: Any, sandbox_server: Any, tmp_path_factory: Any
) -> Any:
    """One run of the four-endpoint suite, shared by the tests below (it takes a few seconds)."""
    tmp = tmp_path_factory.mktemp("sla")
    suite = tmp / "suite.yaml"
    suite.write_text(SUITE)
    with django_db_blocker.unblock():
        partner = Partner.objects.create(external_id="p_sla", name="SLA Partner")
        _sla(partner, "p95<=300ms, uptime 99.9%, file@02:00Z daily")
        for name in ("fast", "slow", "missing"):
            _endpoint(partner, name, sandbox_server.url)
        _endpoint(partner, "dead", f"http://127.0.0.1:{closed_port()}")
        _endpoint(partner, "unprobed", sandbox_server.url)
        out_json, out_junit = tmp / "run.json", tmp / "junit.xml"
        with pytest.raises(SystemExit) as exit_info:
            call_command("run_suite", "--partner", "p_sla", "--suite", str(suite), "--inline",
                         "--json", str(out_json), "--junit", str(out_junit))  # fmt: skip
        run = Run.objects.get(partner=partner)
        yield {
            "exit": exit_info.value.code,
            "run": run,
            "json": json.loads(out_json.read_text()),
            "junit": ET.fromstring(out_junit.read_text()),
        }
        Run.objects.filter(partner=partner).delete()
        partner.delete()


def _verdicts(finished: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(v["sla"], v["endpoint"]): v for v in finished["json"]["run"]["sla"]}


def test_each_endpoint_gets_its_own_latency_verdict(finished: Any) -> None:
    verdicts = _verdicts(finished)
    assert verdicts["p95", "fast"]["verdict"] == "met"
    assert verdicts["p95", "slow"]["verdict"] == "missed"
    assert verdicts["p95", "slow"]["measured"] >= 350
    assert verdicts["p95", "missing"]["verdict"] == "missed"
    assert verdicts["p95", "dead"]["verdict"] == "missed"
    assert verdicts["p95", "unprobed"]["verdict"] == "not measured"


def test_a_refused_endpoint_has_no_latency_samples_and_is_never_met(finished: Any) -> None:
    dead = _verdicts(finished)["p95", "dead"]
    assert (dead["samples"], dead["requests"], dead["errors"]) == (0, 20, 20)
    assert dead["measured"] is None
    assert "refused x20" in dead["reason"]


def test_a_404_only_endpoint_counts_its_answers_as_errors_not_latency(finished: Any) -> None:
    missing = _verdicts(finished)["p95", "missing"]
    assert (missing["samples"], missing["errors"]) == (0, 20)
    assert "status 404 x20" in missing["reason"]
    latency = finished["json"]["run"]["latency"]["missing"]
    assert latency["errors_by_kind"] == {"status 404": 20} and latency["p95"] is None


def test_uptime_is_judged_per_endpoint_from_the_success_ratio(finished: Any) -> None:
    verdicts = _verdicts(finished)
    fast = verdicts["uptime", "fast"]
    assert (fast["verdict"], fast["measured"], fast["requests"]) == ("met", 100.0, 3000)
    assert verdicts["uptime", "slow"]["verdict"] == "insufficient samples"
    assert "at least 2,995 requests" in verdicts["uptime", "slow"]["reason"]
    assert verdicts["uptime", "dead"]["verdict"] == "missed"
    assert verdicts["uptime", "dead"]["measured"] == 0.0
    assert verdicts["uptime", "unprobed"]["verdict"] == "not measured"


def test_a_file_window_no_step_waited_for_is_listed_as_not_measured(finished: Any) -> None:
    (file_window,) = [v for v in finished["json"]["run"]["sla"] if v["kind"] == "file_window"]
    assert file_window["verdict"] == "not measured"
    assert "no step waited for a delivery from the partner" in file_window["reason"]


def test_a_missed_sla_fails_the_run_and_exits_1(finished: Any) -> None:
    assert finished["exit"] == 1
    run = finished["run"]
    assert run.status == "failed"
    assert any("p95 ≤ 300 ms on slow: missed" in reason for reason in run.reasons)
    assert not any("unprobed" in reason for reason in run.reasons)  # not measured never fails


def test_json_export_sla_entries_have_the_documented_fields(finished: Any) -> None:
    entry = _verdicts(finished)["p95", "fast"]
    assert set(entry) >= {"endpoint", "sla", "target", "measured", "samples", "verdict"}
    assert entry["target"] == "p95 ≤ 300 ms" and entry["unit"] == "ms"
    assert entry["samples"] == 3000 and entry["min_samples"] == 59


def test_junit_has_one_testcase_per_sla_verdict(finished: Any) -> None:
    cases = [c for c in finished["junit"].iter("testcase") if c.get("classname").endswith(".sla")]
    assert len(cases) == len(finished["json"]["run"]["sla"])
    by_name = {c.get("name"): c for c in cases}
    slow = by_name["SLA p95 ≤ 300 ms on slow"].find("failure")
    assert slow is not None and slow.get("message").startswith("missed: target p95 ≤ 300 ms")
    assert "samples 60 of 60 requests" in slow.get("message")
    assert by_name["SLA p95 ≤ 300 ms on fast"].find("failure") is None
    assert by_name["SLA p95 ≤ 300 ms on unprobed"].find("skipped") is not None


@pytest.mark.django_db
def test_a_scoped_sla_is_judged_only_on_its_endpoint(sandbox: Any, tmp_path: Path) -> None:
    partner = Partner.objects.create(external_id="p_scope", name="Scoped")
    _sla(partner, "p95<=1ms on slow")
    _endpoint(partner, "fast", sandbox.url)
    _endpoint(partner, "slow", sandbox.url)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: scoped\ntests:\n  - name: p\n    steps:\n"
        "      - action: {type: latencyProbe, method: GET, url: 'slow/v1/slow?ms=20',"
        " requests: 10, concurrency: 10}\n"
    )
    with pytest.raises(SystemExit):
        call_command("run_suite", "--partner", "p_scope", "--suite", str(suite), "--inline")
    (verdict,) = Run.objects.get(partner=partner).sla_verdicts
    assert (verdict["endpoint"], verdict["verdict"]) == ("slow", "missed")
