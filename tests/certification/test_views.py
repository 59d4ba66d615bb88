from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from certification import execution, runs, suites
from certification.engine.spec import MAX_SUITE_BYTES
from certification.models import Run, Suite
from partners.models import Endpoint, Partner

SUITE = (
    "name: smoke\ntests:\n  - name: a\n    code: B-001\n    steps:\n"
    "      - action: {type: wait, ms: 1}\n"
)


@pytest.fixture
def suite(db: Any) -> Suite:
    stored, _ = suites.suite_store(entry="smoke.yaml", sources={"smoke.yaml": SUITE}, by="t")
    return stored


@pytest.fixture
def run_a(partner_a: Partner, suite: Suite) -> Run:
    return runs.run_create(partner=partner_a, suite=suite, by="test")


def test_qa_lead_uploads_a_valid_suite(qa_client: Client) -> None:
    response = qa_client.post(reverse("certification:suite_upload"), {"text": SUITE})
    suite = Suite.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("certification:suite_detail", args=[suite.pk])
    assert suite.scenarios.get().code == "B-001"


def test_invalid_suite_upload_lists_every_error_and_stores_nothing(qa_client: Client) -> None:
    text = "name: x\ntests:\n  - name: a\n    steps:\n      - action: {type: teleport}\n"
    response = qa_client.post(reverse("certification:suite_upload"), {"text": text})
    body = response.content.decode()
    assert response.status_code == 400
    assert "pasted.yaml:5:" in body and "teleport" in body
    assert not Suite.objects.exists()


def test_billion_laughs_upload_is_refused(qa_client: Client) -> None:
    bomb = 'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b]\n'
    response = qa_client.post(reverse("certification:suite_upload"), {"text": bomb})
    assert "anchors and aliases are not allowed" in response.content.decode()


def test_upload_refuses_a_latin1_byte_with_the_validators_message(
    qa_client: Client, tmp_path: Path, capsys: Any
) -> None:
    content = b"name: caf\xe9\n" + SUITE.split("\n", 1)[1].encode()
    (tmp_path / "cafe.yaml").write_bytes(content)
    with pytest.raises(CommandError):
        call_command("validate_suite", str(tmp_path / "cafe.yaml"))
    message = "cafe.yaml:1:10: not valid UTF-8 (byte 0xe9 at offset 9)"

    response = qa_client.post(
        reverse("certification:suite_upload"), {"file": SimpleUploadedFile("cafe.yaml", content)}
    )

    assert capsys.readouterr().err.splitlines()[0] == f"{tmp_path}/{message}"
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Suite.objects.exists()


def test_upload_larger_than_the_cap_is_refused_as_on_disk(qa_client: Client) -> None:
    big = SimpleUploadedFile("big.yaml", b"#" * (2 * MAX_SUITE_BYTES))

    response = qa_client.post(reverse("certification:suite_upload"), {"file": big})

    assert response.status_code == 400
    assert (
        f"big.yaml:1:1: the suite file is too large ({MAX_SUITE_BYTES + 1:,} bytes; the limit "
        f"is {MAX_SUITE_BYTES:,} bytes)"
    ) in response.content.decode()
    assert not Suite.objects.exists()


def test_partner_user_cannot_upload_suites(partner_a_client: Client) -> None:
    response = partner_a_client.post(reverse("certification:suite_upload"), {"text": SUITE})
    assert response.status_code == 403


def test_suite_page_shows_scenarios_and_source(qa_client: Client, suite: Suite) -> None:
    body = qa_client.get(reverse("certification:suite_detail", args=[suite.pk])).content.decode()
    assert "B-001" in body and "name: smoke" in body


def test_starting_a_run_from_the_partner_page_queues_it(
    qa_client: Client, partner_a: Partner, endpoint_a: Endpoint, suite: Suite,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    url = reverse("certification:run_start", args=[partner_a.external_id])
    with django_capture_on_commit_callbacks() as callbacks:
        response = qa_client.post(url, {"suite": suite.pk})
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("certification:run_detail", args=[run.pk])
    assert run.status == "queued" and run.scenarios_total == 1
    assert len(callbacks) == 1  # the tasks are sent only once the run is committed


def test_auditor_cannot_start_runs(
    auditor_client: Client, partner_a: Partner, suite: Suite
) -> None:
    url = reverse("certification:run_start", args=[partner_a.external_id])
    assert auditor_client.post(url, {"suite": suite.pk}).status_code == 403
    assert not Run.objects.exists()


def test_run_page_shows_scenarios_and_polls_while_running(qa_client: Client, run_a: Run) -> None:
    body = qa_client.get(reverse("certification:run_detail", args=[run_a.pk])).content.decode()
    assert "B-001" in body and 'hx-trigger="every 1s"' in body


def test_run_poll_returns_only_the_live_fragment(qa_client: Client, run_a: Run) -> None:
    response = qa_client.get(
        reverse("certification:run_detail", args=[run_a.pk]),
        headers={"HX-Request": "true", "HX-Target": "run-live"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="run-live"') and "<html" not in body


def test_poll_of_a_finished_run_stops_polling(qa_client: Client, run_a: Run) -> None:
    runs.run_cancel(run=run_a, by="test")
    response = qa_client.get(
        reverse("certification:run_detail", args=[run_a.pk]),
        headers={"HX-Request": "true", "HX-Target": "run-live"},
    )
    assert response.status_code == 286
    assert "Cancelled" in response.content.decode()


def test_partner_user_sees_their_run_but_not_another_partners(
    partner_a_client: Client, run_a: Run, partner_b: Partner, suite: Suite
) -> None:
    run_b = runs.run_create(partner=partner_b, suite=suite, by="test")
    assert (
        partner_a_client.get(reverse("certification:run_detail", args=[run_a.pk])).status_code
        == 200
    )
    assert (
        partner_a_client.get(reverse("certification:run_detail", args=[run_b.pk])).status_code
        == 404
    )
    listing = partner_a_client.get(reverse("certification:run_list")).content.decode()
    assert f"#{run_a.pk}" in listing and f"#{run_b.pk}" not in listing


def test_anonymous_user_is_sent_to_login(client: Client, run_a: Run) -> None:
    response = client.get(reverse("certification:run_detail", args=[run_a.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_cancel_marks_queued_scenarios_cancelled(qa_client: Client, run_a: Run) -> None:
    qa_client.post(reverse("certification:run_cancel", args=[run_a.pk]))
    run_a.refresh_from_db()
    assert run_a.status == "cancelled"
    assert set(run_a.scenario_runs.values_list("status", flat=True)) == {"cancelled"}


def test_json_export_downloads(qa_client: Client, run_a: Run) -> None:
    response = qa_client.get(reverse("certification:run_export", args=[run_a.pk, "json"]))
    assert response["Content-Disposition"] == f'attachment; filename="run-{run_a.pk}.json"'
    assert response.json()["run"]["id"] == run_a.pk


def test_unknown_export_format_is_404(qa_client: Client, run_a: Run) -> None:
    assert (
        qa_client.get(reverse("certification:run_export", args=[run_a.pk, "pdf"])).status_code
        == 404
    )


def test_qa_lead_schedules_recertification_and_sees_it_on_the_partner_page(
    qa_client: Client, partner_a: Partner, endpoint_a: Endpoint, suite: Suite
) -> None:
    url = reverse("certification:schedule_create", args=[partner_a.external_id])
    response = qa_client.post(url, {"suite_name": "smoke", "every_days": 30}, follow=True)
    body = response.content.decode()
    assert "smoke runs every 30 days" in body
    assert partner_a.schedules.get().every_days == 30


def test_schedule_with_zero_days_is_refused(
    qa_client: Client, partner_a: Partner, suite: Suite
) -> None:
    url = reverse("certification:schedule_create", args=[partner_a.external_id])
    response = qa_client.post(url, {"suite_name": "smoke", "every_days": 0}, follow=True)
    assert "from 1 to 3650" in response.content.decode()
    assert not partner_a.schedules.exists()


def test_partner_user_cannot_schedule(
    partner_a_client: Client, partner_a: Partner, suite: Suite
) -> None:
    url = reverse("certification:schedule_create", args=[partner_a.external_id])
    assert partner_a_client.post(url, {"suite_name": "smoke", "every_days": 7}).status_code == 403


def test_stopping_a_schedule_deletes_it(
    qa_client: Client, partner_a: Partner, endpoint_a: Endpoint, suite: Suite
) -> None:
    schedule = runs.schedule_save(partner=partner_a, suite_name="smoke", every_days=7, by="t")
    url = reverse("certification:schedule_delete", args=[partner_a.external_id, schedule.pk])
    qa_client.post(url)
    assert not partner_a.schedules.exists()


def test_schedule_for_a_partner_without_endpoints_is_refused(
    qa_client: Client, partner_a: Partner, suite: Suite
) -> None:
    url = reverse("certification:schedule_create", args=[partner_a.external_id])
    response = qa_client.post(url, {"suite_name": "smoke", "every_days": 7}, follow=True)
    assert "has no sandbox endpoint yet" in response.content.decode()
    assert not partner_a.schedules.exists()


def test_cancelled_run_keeps_polling_while_a_scenario_still_runs(
    qa_client: Client, run_a: Run
) -> None:
    scenario_run = run_a.scenario_runs.get()
    execution.scenario_claim(scenario_run_id=scenario_run.pk, worker="w:1")
    runs.run_cancel(run=run_a, by="test")
    response = qa_client.get(
        reverse("certification:run_detail", args=[run_a.pk]),
        headers={"HX-Request": "true", "HX-Target": "run-live"},
    )
    assert response.status_code == 200
    assert "scenarios already on a worker are finishing" in response.content.decode()
