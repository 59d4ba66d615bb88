from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from certification.models import Run, StepResult
from partners import crypto
from partners.models import SLA, Partner, WebhookSecret

DEMO_SUITE = Path(settings.BASE_DIR) / "demo" / "suites" / "checkout.yaml"
PASSING = """name: smoke
tests:
  - name: health
    code: B-900
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
"""


def _suite(tmp_path: Path, text: str = PASSING) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def acme_like(partner_a: Partner) -> Partner:
    """A partner with the p95 SLA the demo suite's latency scenario reads."""
    SLA.objects.create(partner=partner_a, name="p95", kind="latency", text="p95<=300ms",
                       percentile=95, threshold_ms=300)  # fmt: skip
    return partner_a


def _run(partner: Partner, suite: str, sandbox: Any, *extra: str) -> None:
    call_command(
        "run_suite",
        "--partner",
        partner.external_id,
        "--suite",
        suite,
        "--endpoint",
        f"api-gateway={sandbox.url}",
        "--endpoint",
        f"payment-service={sandbox.url}",
        "--inline",
        *extra,
    )


@pytest.mark.django_db
def test_passing_run_exits_0_and_persists_every_step(
    partner_a: Partner, sandbox: Any, tmp_path: Path, capsys: Any
) -> None:
    _run(partner_a, _suite(tmp_path), sandbox)
    run = Run.objects.get()
    assert run.status == "passed"
    assert StepResult.objects.filter(scenario_run__run=run).count() == 1
    assert f"Run {run.pk} passed" in capsys.readouterr().out


@pytest.fixture
def demo_partner(acme_like: Partner, sandbox: Any, live_server: Any) -> Iterator[Partner]:
    """Acme-like, as `make run` sets it up: the sandbox's services call the partner's hosted
    mocks (on the live server) and its webhook secret is the sandbox's."""
    from certification.traffic import mock_base_url
    from demo.sandbox import WEBHOOK_SECRET

    row = WebhookSecret(partner=acme_like, endpoint_url="https://acme.example/webhooks/orders")
    row.save()
    row.secret_sealed = crypto.seal_secrets({"secret": WEBHOOK_SECRET}, aad=row.secrets_aad)
    row.save()
    base = mock_base_url(acme_like).replace("http://127.0.0.1:8000", live_server.url)
    _third_parties(sandbox.url, base)
    try:
        yield acme_like
    finally:
        _third_parties(sandbox.url, None)


def _third_parties(sandbox_url: str, base: str | None) -> None:
    request = urllib.request.Request(
        f"{sandbox_url}/sandbox/third-parties",
        data=json.dumps({"baseUrl": base}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.mark.django_db(transaction=True)
def test_demo_suite_fails_with_exit_code_1_and_names_the_failing_checks(
    demo_partner: Partner, sandbox: Any, capsys: Any
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        _run(demo_partner, str(DEMO_SUITE), sandbox)
    assert excinfo.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL B-105 Validation errors name the offending field" in out
    assert "response.body.field eq: path does not exist" in out
    # Every match group judged on what the sandbox sent; one finding: the SMS lacks the amount.
    assert "FAIL B-001 Checkout happy path" in out
    assert "request.body.Body contains: request 1 of 1 (POST api.twilio.com" in out
    for passing in ("B-002", "B-102", "B-107"):
        assert f"PASS {passing} " in out


@pytest.mark.django_db
def test_invalid_suite_exits_2_and_creates_no_run(partner_a: Partner, tmp_path: Path) -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, "name: x\ntests: []\n"), "--inline")  # fmt: skip
    assert excinfo.value.returncode == 2
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_unknown_partner_exits_2(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="unknown partner 'p_nope'") as excinfo:
        call_command("run_suite", "--partner", "p_nope", "--suite", _suite(tmp_path), "--inline")
    assert excinfo.value.returncode == 2


@pytest.mark.django_db
def test_endpoint_override_on_a_refused_address_exits_2(partner_a: Partner, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="169.254.169.254") as excinfo:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", _suite(tmp_path),
                     "--endpoint", "api=http://169.254.169.254/", "--inline")  # fmt: skip
    assert excinfo.value.returncode == 2
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_json_export_has_the_documented_shape(
    partner_a: Partner, sandbox: Any, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    _run(partner_a, _suite(tmp_path), sandbox, "--json", str(out))
    data = json.loads(out.read_text())
    assert set(data["run"]) >= {"id", "status", "partner", "suite"}
    (scenario,) = data["scenarios"]
    assert {k: scenario[k] for k in ("name", "code", "kind", "status")} == {
        "name": "health",
        "code": "B-900",
        "kind": "main",
        "status": "passed",
    }
    (step,) = scenario["steps"]
    assert set(step) >= {"name", "status", "request", "response", "timings", "assertions"}
    assert step["assertions"][0] == {
        "path": "response.status",
        "operator": "eq",
        "expected": 200,
        "actual": 200,
        "passed": True,
        "evaluated": True,
        "message": "",
    }


@pytest.mark.django_db(transaction=True)
def test_junit_has_one_testcase_per_scenario_with_failures(
    demo_partner: Partner, sandbox: Any, tmp_path: Path
) -> None:
    out = tmp_path / "junit.xml"
    with pytest.raises(SystemExit):
        _run(demo_partner, str(DEMO_SUITE), sandbox, "--junit", str(out))
    root = ET.fromstring(out.read_text())
    scenarios = [c for c in root.iter("testcase") if not c.get("classname").endswith(".sla")]
    assert len(scenarios) == 9
    failed = [c for c in scenarios if c.find("failure") is not None]
    assert sorted(c.get("name") for c in failed) == [
        "B-001 Checkout happy path",
        "B-105 Validation errors name the offending field",
    ]
    texts = {c.get("name"): c.find("failure").text for c in failed}
    assert "response.body.field" in texts["B-105 Validation errors name the offending field"]
    assert "request.body.Body contains" in texts["B-001 Checkout happy path"]


@pytest.mark.django_db
def test_latency_probe_gives_the_run_an_sla_verdict(
    acme_like: Partner, sandbox: Any, tmp_path: Path
) -> None:
    partner_a = acme_like
    suite = _suite(
        tmp_path,
        "name: probe\ntests:\n  - name: p\n    steps:\n"
        "      - action: {type: latencyProbe, method: GET, url: /health, requests: 60,"
        " concurrency: 5}\n",
    )
    _run(partner_a, suite, sandbox)
    verdicts = {v["endpoint"]: v for v in Run.objects.get().sla_verdicts}
    probed = verdicts["api-gateway"]
    assert probed["sla"] == "p95" and probed["verdict"] == "met" and probed["samples"] == 60
    assert verdicts["payment-service"]["verdict"] == "not measured"


@pytest.mark.django_db
def test_secrets_never_reach_the_stored_results(
    partner_a: Partner, endpoint_a: Any, sandbox: Any, tmp_path: Path
) -> None:
    call_command("run_suite", "--partner", partner_a.external_id, "--suite", _suite(tmp_path),
                 "--endpoint", f"api={sandbox.url}", "--keep-auth", "--inline")  # fmt: skip
    stored = json.dumps(list(StepResult.objects.values()), default=str)
    assert "alpha-key-SECRET-value" not in stored
    assert "X-API-Key" in stored


@pytest.mark.django_db
def test_scenario_error_makes_the_run_exit_2(
    partner_a: Partner, sandbox: Any, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, PASSING.replace("url: /health", 'url: "/v1/{{undefinedThing}}"'))
    with pytest.raises(SystemExit) as excinfo:
        _run(partner_a, suite, sandbox)
    assert excinfo.value.code == 2
    assert Run.objects.get().status == "error"


@pytest.mark.django_db
def test_parallel_without_inline_is_refused(partner_a: Partner, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--parallel applies to --inline") as excinfo:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path), "--parallel", "2")  # fmt: skip
    assert excinfo.value.returncode == 2


@pytest.mark.django_db
def test_body_capture_cap_comes_from_the_settings(
    partner_a: Partner, sandbox: Any, tmp_path: Path, settings: Any
) -> None:
    settings.RESULT_BODY_CAPTURE_BYTES = 10
    suite = _suite(
        tmp_path,
        "name: cap\ntests:\n  - name: p\n    steps:\n"
        "      - action: {type: httpRequest, method: GET, url: /v1/products/WIDGET-001}\n",
    )
    _run(partner_a, suite, sandbox)
    response = StepResult.objects.get().response
    assert response["truncated"] is True
    assert len(response["body"]) <= 10 < response["body_size"]


def _manage_py_run_suite(partner: Partner, suite: str, url: str, tmp_path: Path) -> Any:
    """``manage.py run_suite --inline`` as a partner's CI runs it: its own process, on the test
    database, with a JSON report."""
    import subprocess
    import sys

    from tests.workers import test_database_url

    return subprocess.run(
        [sys.executable, "manage.py", "run_suite", "--partner", partner.external_id, "--suite",
         suite, "--endpoint", f"api-gateway={url}", "--inline", "--json",
         str(tmp_path / "run.json")],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "DATABASE_URL": test_database_url()},
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("reachable", "code", "verdict"), [(True, 0, "passed"), (False, 1, "failed")]
)
def test_the_command_line_exits_with_the_run_verdict_after_writing_everything(
    partner_a: Partner, sandbox: Any, tmp_path: Path, reachable: bool, code: int, verdict: str
) -> None:
    # The process ends without tearing the interpreter down (manage.py): what it wrote must
    # all be there, and its exit code must be the run's.
    url = sandbox.url if reachable else "http://127.0.0.1:9"
    result = _manage_py_run_suite(partner_a, _suite(tmp_path), url, tmp_path)
    assert result.returncode == code, result.stderr
    run = Run.objects.get()
    assert run.status == verdict and run.is_finished
    assert (
        result.stdout.rstrip().splitlines()[-1].startswith(f"Run {run.pk} {verdict}: 1 {verdict}")
    )
    assert json.loads((tmp_path / "run.json").read_text())["run"]["status"] == verdict


@pytest.mark.django_db(transaction=True)
def test_the_command_line_exits_2_with_the_error_and_no_traceback(
    partner_a: Partner, sandbox: Any, tmp_path: Path
) -> None:
    partner_a.external_id = "p_unknown_here"  # not saved: the command cannot find it
    result = _manage_py_run_suite(partner_a, _suite(tmp_path), sandbox.url, tmp_path)
    assert result.returncode == 2
    assert "unknown partner 'p_unknown_here'" in result.stderr
    assert "Traceback" not in result.stderr
