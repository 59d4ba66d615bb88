"""What makes a run not pass, and credentials that must not travel: unevaluated checks,
endpoint overrides to another origin, secrets that can no longer be decrypted."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command

from certification.models import Run, StepResult
from partners.models import Endpoint, Partner

MATCH_SUITE = """\
name: traffic
tests:
  - name: charge sent
    code: B-002
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
        assertions:
          - assertions:
              - {path: response.status, operator: eq, value: 200}
          # Nothing reaches the hosted mocks in this run: "no label was bought" cannot be
          # told from "the sandbox does not call the mocks".
          - match: {url: api.easypost.com, method: POST}
            count: {operator: eq, value: 0}
        settleMs: 0
"""

HEALTH_SUITE = """\
name: health
tests:
  - name: health
    steps:
      - action: {type: httpRequest, method: GET, url: /health}
"""


def _suite(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.django_db
def test_an_unevaluated_match_group_fails_the_run_with_exit_1(
    partner_a: Partner, sandbox: Any, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    with pytest.raises(SystemExit) as exit_info:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, MATCH_SUITE), "--endpoint", f"api={sandbox.url}",
                     "--inline", "--junit", str(junit))  # fmt: skip
    assert exit_info.value.code == 1
    run = Run.objects.get()
    assert run.status == "failed"
    assert run.reasons == ["1 scenario had checks that were not evaluated"]
    assert run.scenario_runs.get().status == "unevaluated"
    (case,) = list(ET.fromstring(junit.read_text()).iter("testcase"))
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "unevaluated"
    assert "not evaluated" in failure.get("message")


@pytest.mark.django_db
def test_endpoint_override_to_another_origin_sends_no_stored_credentials(
    partner_a: Partner, endpoint_a: Endpoint, sandbox: Any, tmp_path: Path, capsys: Any
) -> None:
    call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                 _suite(tmp_path, HEALTH_SUITE), "--endpoint", f"api={sandbox.url}",
                 "--inline")  # fmt: skip
    sent = StepResult.objects.get().request["headers"]
    assert not any(name.lower() == "x-api-key" for name in sent)
    assert Run.objects.get().endpoints["api"]["auth_dropped"] is True
    assert "credentials are not sent" in capsys.readouterr().err


@pytest.mark.django_db
def test_endpoint_override_on_the_same_origin_keeps_the_credentials(
    partner_a: Partner, endpoint_a: Endpoint, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):  # nothing listens on port 9: the request fails
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, HEALTH_SUITE), "--endpoint",
                     "api=http://127.0.0.1:9/other-path", "--inline")  # fmt: skip
    snapshot = Run.objects.get().endpoints["api"]
    assert snapshot["auth_kind"] == "api_key" and "auth_dropped" not in snapshot


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:hunter22@127.0.0.1:5432/app",
        "postgres://app@127.0.0.1/app?password=hunter22",
    ],
    ids=["userinfo", "query-string"],
)
def test_endpoint_override_with_a_password_in_the_url_is_refused(
    partner_a: Partner, tmp_path: Path, url: str
) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="carries a password") as excinfo:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, HEALTH_SUITE), "--endpoint", f"db={url}",
                     "--inline")  # fmt: skip
    assert excinfo.value.returncode == 2
    assert "hunter22" not in str(excinfo.value)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_secret_sealed_with_a_missing_key_errors_the_run_naming_the_key(
    partner_a: Partner, endpoint_a: Endpoint, tmp_path: Path, settings: Any
) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    settings.SECRETS_ENCRYPTION_KEYS = f"k-new:{other}"
    with pytest.raises(SystemExit) as exit_info:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, HEALTH_SUITE), "--inline")  # fmt: skip
    assert exit_info.value.code == 2
    run = Run.objects.get()
    assert run.status == "error"
    assert "cannot read the endpoint secrets" in run.error
    assert "SECRETS_ENCRYPTION_KEYS" in run.error
    assert "given up" not in run.error
    assert "alpha-key-SECRET-value" not in json.dumps(run.error)


@pytest.mark.django_db
def test_a_defect_in_the_verdict_code_ends_the_run_in_error_not_running_forever(
    partner_a: Partner, sandbox: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    import certification.results

    def broken(run: Any) -> Any:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(certification.results, "verdicts_of", broken)
    with pytest.raises(SystemExit) as exit_info:
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, HEALTH_SUITE), "--endpoint", f"api={sandbox.url}",
                     "--inline")  # fmt: skip
    assert exit_info.value.code == 2
    run = Run.objects.get()
    assert (run.status, run.finished_at is not None) == ("error", True)
    assert "SLA verdicts could not be computed (ZeroDivisionError)" in run.error
    assert "Traceback" not in run.error


@pytest.mark.django_db
def test_a_secret_withheld_by_an_override_is_explained_in_the_error(
    partner_a: Partner, endpoint_a: Endpoint, sandbox: Any, tmp_path: Path
) -> None:
    suite = HEALTH_SUITE.replace(
        "url: /health}", "url: /health, headers: {X-Key: '{{secret.api.api_key}}'}}"
    )
    with pytest.raises(SystemExit):
        call_command("run_suite", "--partner", partner_a.external_id, "--suite",
                     _suite(tmp_path, suite), "--endpoint", f"api={sandbox.url}",
                     "--inline")  # fmt: skip
    failure = StepResult.objects.get().failure
    assert failure["kind"] == "undefined_variable"
    assert "points at another origin" in failure["message"] and "--keep-auth" in failure["message"]
