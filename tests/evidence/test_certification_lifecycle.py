"""Certification services against real runs of the demo sandbox: the sign-off rule, waivers,
the partner's lifecycle, and immutability after sign-off (model, queryset and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from certification.models import ImmutableRecordError, Run, StepResult
from evidence import services
from evidence.models import Certification, ChecklistItem, Waiver
from evidence.review import certification_review
from partners.models import Partner
from tests import factories
from tests.evidence import certs

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="database triggers are PostgreSQL only"
)


@pytest.fixture
def qa(db: Any) -> Any:
    return factories.qa_lead("qa1")


@pytest.fixture
def qa2(db: Any) -> Any:
    return factories.qa_lead("qa2")


@pytest.fixture
def acme(db: Any, sandbox: Any) -> Partner:
    partner = factories.PartnerFactory(external_id="p_acme", name="Acme Payments")
    certs.add_endpoint(partner, sandbox.url)
    certs.add_slas(partner, "p95<=300ms")
    return partner


def _waive_all(certification: Certification, requester: Any, approver: Any) -> None:
    ends = timezone.now().date() + dt.timedelta(days=30)
    for item in certification_review(certification).blockers:
        waiver = services.waiver_request(
            certification=certification, item_kind=item.kind, item_key=item.key,
            reason=f"accepted risk: {item.label}", ends_on=ends, by=requester,
        )  # fmt: skip
        services.waiver_decide(waiver=waiver, approve=True, by=approver)


def _signed(acme: Partner, qa: Any, qa2: Any, *, passing: bool = True) -> Certification:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=passing)
    certs.decide_checklist(certification, qa)
    _waive_all(certification, qa, qa2)
    return services.certification_sign_off(certification=certification, by=qa)


def test_opening_a_certification_adds_every_quick_gate_item_open(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    items = list(certification.checklist.values_list("key", "state"))
    assert len(items) == 11
    assert {state for _, state in items} == {"open"}
    assert items[0][0] == "contract" and items[-1][0] == "certification-plan"


def test_opening_refuses_an_unknown_suite_and_sla_naming_them(acme: Partner, qa: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        certs.open_certification(acme, qa, suite_names=["nope"], sla_names=["p99"])
    errors = caught.value.message_dict
    assert "No suite named nope." in errors["suite_names"]
    assert "no SLA named p99" in errors["sla_names"][0]


def test_a_partner_user_cannot_open_a_certification(acme: Partner) -> None:
    with pytest.raises(PermissionDenied):
        certs.open_certification(acme, factories.partner_user(acme))


@pytest.mark.django_db(transaction=True)
def test_a_run_in_scope_moves_the_partner_into_certification(acme: Partner, qa: Any) -> None:
    certs.open_certification(acme, qa)
    acme.refresh_from_db()
    assert acme.status == Partner.Status.ONBOARDING
    certs.finished_run(acme, passing=True)
    acme.refresh_from_db()
    assert acme.status == Partner.Status.IN_CERTIFICATION


def test_a_run_of_a_suite_out_of_scope_leaves_the_partner_onboarding(
    acme: Partner, qa: Any
) -> None:
    certs.open_certification(acme, qa, suite_names=["orders-api"])
    from certification import suites

    other, _ = suites.suite_store(
        entry="o.yaml",
        sources={"o.yaml": "name: other\ntests:\n  - name: a\n    steps:\n"
                 "      - action: {type: wait, ms: 1}\n"},
        by="t",
    )  # fmt: skip
    from certification import execution, runs

    execution.run_execute_inline(run=runs.run_create(partner=acme, suite=other, by="t"))
    acme.refresh_from_db()
    assert acme.status == Partner.Status.ONBOARDING


def test_sign_off_is_refused_while_a_scenario_failed_and_names_it(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=False)
    certs.decide_checklist(certification, qa)
    with pytest.raises(ValidationError) as caught:
        services.certification_sign_off(certification=certification, by=qa)
    assert "B-101 duplicate order rejected: Failed" in caught.value.messages[0]
    certification.refresh_from_db()
    assert certification.status == "open" and certification.signed_off_at is None
    assert not Run.objects.filter(locked_at__isnull=False).exists()


def test_sign_off_is_refused_while_a_checklist_item_is_open(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=True)
    with pytest.raises(ValidationError) as caught:
        services.certification_sign_off(certification=certification, by=qa)
    assert "Contract chosen" in caught.value.messages[0]


def test_sign_off_is_refused_before_any_run_of_a_suite_in_scope(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.decide_checklist(certification, qa)
    with pytest.raises(ValidationError) as caught:
        services.certification_sign_off(certification=certification, by=qa)
    assert "Suite orders-api: no finished run" in caught.value.messages[0]


def test_an_sla_with_insufficient_samples_blocks_sign_off(acme: Partner, qa: Any) -> None:
    certs.add_slas(acme, "uptime 99.9%")  # 60 probe requests cannot show 99.9 %
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=True)
    certs.decide_checklist(certification, qa)
    blockers = certification_review(certification).blockers
    assert [(b.kind, b.detail.split(" (")[0]) for b in blockers] == [
        ("sla", "insufficient samples")
    ]


def test_the_requester_cannot_approve_their_own_waiver(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=False)
    (item, *_) = certification_review(certification).blockers
    waiver = services.waiver_request(
        certification=certification, item_kind=item.kind, item_key=item.key, reason="r",
        ends_on=timezone.now().date() + dt.timedelta(days=1), by=qa,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="other than the person who requested"):
        services.waiver_decide(waiver=waiver, approve=True, by=qa)
    waiver.refresh_from_db()
    assert waiver.status == Waiver.Status.REQUESTED


def test_a_waiver_for_an_item_that_passed_is_refused(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=True)
    with pytest.raises(ValidationError, match="not failing"):
        services.waiver_request(
            certification=certification, item_kind="scenario", item_key="orders-api/B-001",
            reason="r", ends_on=timezone.now().date(), by=qa,
        )  # fmt: skip


def test_sign_off_with_a_waiver_for_each_failing_item_certifies_the_partner(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2, passing=False)
    assert certification.status == Certification.Status.CERTIFIED
    acme.refresh_from_db()
    assert acme.status == Partner.Status.CERTIFIED
    (link,) = certification.evidence_runs.all()
    assert link.run.locked_at == certification.signed_off_at
    assert certification.signed_off_role == "QA lead"


def test_a_signed_run_cannot_be_saved_updated_or_deleted_through_the_orm(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2)
    run = certification.evidence_runs.get().run
    run.error = "rewritten"
    with pytest.raises(ImmutableRecordError):
        run.save()
    with pytest.raises(ImmutableRecordError):
        Run.objects.filter(pk=run.pk).update(status="failed")
    with pytest.raises(ImmutableRecordError):
        StepResult.objects.filter(scenario_run__run=run).update(status="failed")
    with pytest.raises(ImmutableRecordError):
        StepResult.objects.filter(scenario_run__run=run).delete()
    assert StepResult.objects.filter(scenario_run__run=run, status="passed").count() == 3


def test_a_signed_certification_keeps_its_content_but_may_change_status(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2)
    certification.title = "Something else"
    with pytest.raises(ImmutableRecordError, match="title"):
        certification.save()
    with pytest.raises(ImmutableRecordError):
        Certification.objects.filter(pk=certification.pk).update(valid_until=timezone.now())
    with pytest.raises(ImmutableRecordError):
        ChecklistItem.objects.filter(certification=certification).update(state="open")
    with pytest.raises(ImmutableRecordError):
        certification.checklist.first().delete()
    services.certification_suspend(certification=certification, by=qa, reason="key leaked")
    certification.refresh_from_db()
    assert certification.status == "suspended" and certification.title == "Orders API v1"


def _raw(sql: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@on_postgresql
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE certification_run SET status = 'failed' WHERE id = %s",
        "DELETE FROM certification_run WHERE id = %s",
        "UPDATE certification_scenariorun SET status = 'passed' WHERE run_id = %s",
        "UPDATE certification_stepresult SET status = 'passed' WHERE scenario_run_id IN "
        "(SELECT id FROM certification_scenariorun WHERE run_id = %s)",
        "DELETE FROM certification_stepresult WHERE scenario_run_id IN "
        "(SELECT id FROM certification_scenariorun WHERE run_id = %s)",
    ],
    ids=["run-update", "run-delete", "scenario-update", "step-update", "step-delete"],
)
def test_raw_sql_cannot_change_a_signed_runs_results_on_postgresql(
    acme: Partner, qa: Any, qa2: Any, sql: str
) -> None:
    run = _signed(acme, qa, qa2).evidence_runs.get().run
    with pytest.raises(DatabaseError, match="signed-off certification"):
        _raw(sql, [run.pk])


@on_postgresql
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE evidence_certification SET title = 'x' WHERE id = %s",
        "UPDATE evidence_certification SET valid_until = now() + interval '9 years' WHERE id = %s",
        "DELETE FROM evidence_certification WHERE id = %s",
        "UPDATE evidence_checklistitem SET state = 'open' WHERE certification_id = %s",
        "UPDATE evidence_waiver SET ends_on = '2099-01-01' WHERE certification_id = %s",
        "DELETE FROM evidence_waiver WHERE certification_id = %s",
        "DELETE FROM evidence_certificationrun WHERE certification_id = %s",
    ],
    ids=["title", "validity", "delete", "checklist", "waiver-end", "waiver-delete", "pinned-run"],
)
def test_raw_sql_cannot_change_a_signed_certification_on_postgresql(
    acme: Partner, qa: Any, qa2: Any, sql: str
) -> None:
    certification = _signed(acme, qa, qa2, passing=False)
    with pytest.raises(DatabaseError, match="signed|cannot be changed"):
        _raw(sql, [certification.pk])


@on_postgresql
def test_raw_sql_may_still_move_a_signed_certifications_status(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2)
    _raw(
        "UPDATE evidence_certification SET status = 'expired', status_reason = 'x' WHERE id = %s",
        [certification.pk],
    )
    certification.refresh_from_db()
    assert certification.status == "expired"


def test_validity_ending_expires_the_certification_and_the_partner(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2)
    assert services.certifications_expire(now=certification.valid_until - dt.timedelta(1)) == []
    expired = services.certifications_expire(now=certification.valid_until)
    assert [c.pk for c in expired] == [certification.pk]
    certification.refresh_from_db()
    acme.refresh_from_db()
    assert certification.status == "expired" and "validity ended" in certification.status_reason
    assert acme.status == Partner.Status.EXPIRED


def test_a_waiver_ending_expires_the_certification_it_was_signed_with(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2, passing=False)
    waiver = certification.waivers.get()
    services.certifications_expire(
        now=dt.datetime.combine(waiver.ends_on + dt.timedelta(days=1), dt.time(1), dt.UTC)
    )
    waiver.refresh_from_db()
    certification.refresh_from_db()
    assert waiver.status == Waiver.Status.EXPIRED
    assert certification.status == "expired"
    assert "waiver for B-101 duplicate order rejected ended" in certification.status_reason


def test_an_expired_waiver_reopens_its_item_on_an_open_certification(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=False)
    certs.decide_checklist(certification, qa)
    _waive_all(certification, qa, qa2)
    assert certification_review(certification).ready
    later = timezone.now().date() + dt.timedelta(days=31)
    review = certification_review(certification, on=later)
    assert [b.label for b in review.blockers] == ["B-101 duplicate order rejected"]


def test_suspension_needs_a_reason_and_suspends_the_partner(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2)
    with pytest.raises(ValidationError):
        services.certification_suspend(certification=certification, by=qa, reason=" ")
    services.certification_suspend(certification=certification, by=qa, reason="key leaked")
    acme.refresh_from_db()
    assert acme.status == Partner.Status.SUSPENDED


def test_a_user_of_another_partner_cannot_confirm(acme: Partner, qa: Any, qa2: Any) -> None:
    certification = _signed(acme, qa, qa2)
    other = factories.partner_user(factories.PartnerFactory(external_id="p_other"))
    with pytest.raises(PermissionDenied):
        services.certification_confirm(certification=certification, by=other)
    services.certification_confirm(certification=certification, by=factories.partner_user(acme))
    certification.refresh_from_db()
    assert certification.partner_confirmed_by.username == "eng-p_acme"


def test_recertifying_supersedes_the_previous_certification(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    first = _signed(acme, qa, qa2)
    second = _signed(acme, qa, qa2)
    first.refresh_from_db()
    assert first.status == "superseded" and second.status == "certified"


def test_a_certification_without_waivers_is_valid_for_its_whole_period(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2, passing=True)
    assert certification.valid_until - certification.signed_off_at == dt.timedelta(days=365)


def test_a_waiver_ending_first_cuts_the_validity_to_its_end(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    certification = _signed(acme, qa, qa2, passing=False)  # the waiver ends in 30 days
    ends_on = certification.waivers.get().ends_on
    assert certification.valid_until == dt.datetime.combine(
        ends_on + dt.timedelta(days=1), dt.time(), dt.UTC
    )


def test_a_suite_that_never_ran_cannot_be_waived(acme: Partner, qa: Any) -> None:
    certification = certs.open_certification(acme, qa)
    with pytest.raises(ValidationError, match="no evidence to waive"):
        services.waiver_request(
            certification=certification, item_kind="suite", item_key="orders-api",
            reason="later", ends_on=timezone.now().date(), by=qa,
        )  # fmt: skip


def test_a_waiver_past_its_end_date_cannot_be_approved(acme: Partner, qa: Any, qa2: Any) -> None:
    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=False)
    waiver = services.waiver_request(
        certification=certification, item_kind="scenario", item_key="orders-api/B-101",
        reason="r", ends_on=timezone.now().date(), by=qa,
    )  # fmt: skip
    Waiver.objects.filter(pk=waiver.pk).update(ends_on=timezone.now().date() - dt.timedelta(1))
    with pytest.raises(ValidationError, match="ended on"):
        services.waiver_decide(waiver=waiver, approve=True, by=qa2)


def test_a_draft_bundle_never_stands_for_the_signed_certification(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    from evidence import bundles

    certification = certs.open_certification(acme, qa)
    certs.finished_run(acme, passing=True)
    certs.decide_checklist(certification, qa)
    draft = bundles.bundle_request(certification=certification, by=qa)
    bundles.bundle_build(bundle_id=draft.pk)
    certification = services.certification_sign_off(certification=certification, by=qa)
    signed = bundles.bundle_request(certification=certification, by=qa)
    assert signed.pk != draft.pk  # sign-off queued a new one
    bundles.bundle_build(bundle_id=signed.pk)
    draft.refresh_from_db()
    signed.refresh_from_db()
    certification.refresh_from_db()
    assert not draft.signed_off and signed.signed_off
    assert certification.bundle_sha256 == signed.sha256 != draft.sha256
    assert draft.download_name.endswith("-draft.zip")
    assert bundles.bundle_request(certification=certification, by=qa).pk == signed.pk


def test_recertifying_after_expiry_takes_the_expired_one_off_the_due_list(
    acme: Partner, qa: Any, qa2: Any
) -> None:
    first = _signed(acme, qa, qa2)
    services.certifications_expire(now=first.valid_until)
    _signed(acme, qa, qa2)
    first.refresh_from_db()
    assert first.status == "superseded" and "was expired" in first.status_reason
