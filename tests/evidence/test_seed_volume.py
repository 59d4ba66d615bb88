"""``manage.py seed_volume`` adds realistic volume: counts as asked, every certification
status, runs whose verdicts agree with their steps, more on every call, clear argument errors."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from certification.models import LatestRun, Run, ScenarioRun, StepResult
from certification.verdicts import run_evaluate
from evidence.models import Certification
from evidence.services import partner_status_of
from partners.models import SLA, Endpoint, Partner

pytestmark = pytest.mark.django_db

SMALL = ["--partners", "3", "--runs-per-partner", "2", "--steps-per-run", "5"]


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_volume", *args, stdout=out)
    return out.getvalue()


def test_seed_volume_adds_the_requested_partners_runs_and_steps() -> None:
    output = _seed(*SMALL)
    assert Partner.objects.filter(external_id__startswith="v_").count() == 3
    assert Run.objects.count() == 6
    assert StepResult.objects.count() == 30
    assert ScenarioRun.objects.count() == Run.objects.count()  # 5 steps: one scenario each
    assert not Run.objects.exclude(status__in=["passed", "failed", "error"]).exists()
    assert SLA.objects.count() > 0 and Endpoint.objects.filter(is_default=True).count() == 3
    assert "Added 3 partners v_000001..v_000003" in output
    assert "step results 30" in output


def test_seed_volume_runs_on_postgresql_with_copy() -> None:
    # The fast path is COPY: the counts above must hold on the database CI uses.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _seed("--partners", "1", "--runs-per-partner", "1", "--steps-per-run", "40")
    assert StepResult.objects.count() == 40
    assert StepResult.objects.filter(latency__isnull=False).count() == 2  # one probe a scenario


def test_seed_volume_creates_certifications_in_every_status() -> None:
    _seed(*SMALL)
    statuses = set(Certification.objects.values_list("status", flat=True))
    assert statuses == set(Certification.Status.values)
    signed = Certification.objects.exclude(status__in=["open", "withdrawn"])
    assert not signed.filter(signed_off_at__isnull=True).exists()
    assert not signed.filter(valid_until__isnull=True).exists()


def test_seed_volume_includes_certifications_expiring_within_30_days() -> None:
    _seed("--partners", "4", "--runs-per-partner", "1", "--steps-per-run", "5")
    from django.utils import timezone

    now = timezone.now()
    soon = Certification.objects.filter(
        status="certified", valid_until__gt=now, valid_until__lte=now + timezone.timedelta(days=30)
    )
    assert soon.exists()


def test_seed_volume_partner_status_follows_its_certifications() -> None:
    _seed(*SMALL)
    for partner in Partner.objects.all():
        assert partner.status == partner_status_of(partner)
    assert {"certified", "in_certification", "suspended"} <= set(
        Partner.objects.values_list("status", flat=True)
    )


def test_seeded_run_latency_and_sla_verdicts_match_their_steps() -> None:
    _seed("--partners", "3", "--runs-per-partner", "3", "--steps-per-run", "60")
    runs = list(Run.objects.select_related("partner"))
    assert runs
    for run in runs:
        latency, verdicts = run_evaluate(run)
        assert run.latency == latency, run.pk
        assert run.sla_verdicts == verdicts, run.pk
    verdicts = [
        v["verdict"] for vs in Run.objects.values_list("sla_verdicts", flat=True) for v in vs
    ]
    assert "met" in verdicts


def test_seeded_run_reasons_say_why_it_did_not_pass() -> None:
    _seed("--partners", "6", "--runs-per-partner", "3", "--steps-per-run", "40")
    assert Run.objects.filter(status="passed").exists()
    for run in Run.objects.exclude(status="passed"):
        assert run.reasons, run.pk
    for run in Run.objects.filter(status="passed"):
        assert run.reasons == []
        assert not run.scenario_runs.exclude(status="passed").exists()


def test_seeded_failing_steps_show_failed_assertions_or_errors() -> None:
    _seed("--partners", "6", "--runs-per-partner", "3", "--steps-per-run", "40")
    failed = StepResult.objects.filter(status="failed")
    assert failed.exists()
    for step in failed:
        assert any(not a["passed"] for a in step.assertions)
    for step in StepResult.objects.filter(status="error"):
        assert step.failure["kind"] and step.failure["message"]


def test_seed_volume_again_adds_partners_after_the_highest_id() -> None:
    _seed(*SMALL)
    _seed("--partners", "2", "--runs-per-partner", "1", "--steps-per-run", "5")
    ids = sorted(Partner.objects.values_list("external_id", flat=True))
    assert ids == [f"v_{n:06d}" for n in range(1, 6)]
    assert Run.objects.count() == 8
    assert Certification.objects.filter(status="open").count() == len(
        set(Certification.objects.filter(status="open").values_list("partner", "scope"))
    )


def test_seed_volume_big_run_has_the_steps_asked_for() -> None:
    output = _seed(*SMALL, "--big-run-steps", "300")
    big = Run.objects.get(suite__name="volume-orders-300")
    assert StepResult.objects.filter(scenario_run__run=big).count() == 300
    assert f"big run: 300 steps, run {big.pk}" in output


def test_seed_volume_keeps_the_audit_chain_valid() -> None:
    _seed(*SMALL)
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact" in out.getvalue()


def test_seed_volume_records_the_latest_run_of_each_partner() -> None:
    _seed(*SMALL)
    for latest in LatestRun.objects.all():
        newest = Run.objects.filter(partner=latest.partner).order_by("-created_at").first()
        assert latest.run_id == newest.pk
    assert LatestRun.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partners", "0"], "--partners must be from 1 to 100,000 (got 0)"),
        (
            ["--partners", "2", "--steps-per-run", "20000"],
            "--steps-per-run must be from 1 to 10,000",
        ),
        (["--partners", "2", "--runs-per-partner", "-1"], "--runs-per-partner must be from 0"),
        (["--partners", "2", "--big-run-steps", "0"], "--big-run-steps must be from 1"),
    ],
)
def test_seed_volume_refuses_bad_arguments_and_writes_nothing(
    args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as caught:
        _seed(*args)
    assert message in str(caught.value)
    assert not Partner.objects.exists()


def test_seed_volume_lists_every_bad_argument_at_once() -> None:
    with pytest.raises(CommandError) as caught:
        _seed("--partners", "0", "--steps-per-run", "0")
    assert "--partners" in str(caught.value) and "--steps-per-run" in str(caught.value)


def test_seed_volume_refuses_in_production(settings: Any) -> None:
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not in production"):
        _seed(*SMALL)
    assert not Partner.objects.exists()
