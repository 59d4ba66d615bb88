"""The overview: the landing page of QA leads and auditors (counts, standings, filters)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from certification import runs
from certification.models import LatestRun, Run
from certification.standing import latest_runs_rebuild
from evidence.models import Certification
from partners.models import SLA, Partner
from tests import factories
from tests.evidence import certs

URL = reverse("overview")


def _certification(partner: Partner, *, status: str, valid_for: dt.timedelta | None) -> None:
    """A certification row as sign-off leaves it (the lifecycle has its own tests)."""
    now = timezone.now()
    signer = factories.qa_lead(f"signer-{partner.external_id}")
    signed = status != Certification.Status.OPEN
    Certification.objects.create(
        partner=partner, scope=f"scope-{status}", title="API v1", suite_names=["orders-api"],
        status=status, created_at=now - dt.timedelta(days=400),
        signed_off_by=signer if signed else None,
        signed_off_at=now - dt.timedelta(days=1) if signed else None,
        valid_until=now + valid_for if valid_for is not None else None,
        status_reason="reason" if status == Certification.Status.SUSPENDED else "",
    )  # fmt: skip


def test_anonymous_user_is_sent_to_login(client: Client, db: object) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_home_is_the_overview(qa_client: Client) -> None:
    assert qa_client.get("/")["Location"] == URL


def test_old_partner_list_links_open_the_overview_with_their_filters(qa_client: Client) -> None:
    response = qa_client.get(reverse("partners:list"), {"q": "bravo"})
    assert response.status_code == 302 and response["Location"] == f"{URL}?q=bravo"


def test_qa_lead_sees_every_partner_with_status(
    qa_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    body = qa_client.get(URL).content.decode()
    assert "Alpha Freight" in body and "Bravo Supplies" in body
    assert "Onboarding" in body and "no finished run" in body


def test_search_matches_name_id_or_contact(
    qa_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    body = qa_client.get(URL, {"q": "bravo"}).content.decode()
    assert "Bravo Supplies" in body and "Alpha Freight" not in body


def test_filter_by_status_and_mode(
    qa_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    partner_b.status = Partner.Status.CERTIFIED
    partner_b.modes = ["edi"]
    partner_b.save()
    certified = qa_client.get(URL, {"status": "certified"}).content.decode()
    assert "Bravo" in certified and "Alpha Freight" not in certified
    by_mode = qa_client.get(URL, {"mode": "edi"}).content.decode()
    assert "Bravo" in by_mode and "Alpha Freight" not in by_mode


def test_htmx_filtering_returns_only_the_table_fragment(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.get(
        URL, {"q": "alpha"}, headers={"HX-Request": "true", "HX-Target": "overview-table"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="overview-table">')
    assert "<html" not in body and "Alpha Freight" in body


def test_no_match_says_so(qa_client: Client, partner_a: Partner) -> None:
    assert "No partners match" in qa_client.get(URL, {"q": "zzz"}).content.decode()


def test_a_bad_filter_value_is_ignored_and_the_rest_apply(
    qa_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    response = qa_client.get(URL, {"status": "nonsense", "q": "alpha"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Alpha Freight" in body and "Bravo Supplies" not in body


def test_partner_user_lands_on_their_own_partner_page(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    response = partner_a_client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/partners/{partner_a.external_id}/"
    body = partner_a_client.get("/", follow=True).content.decode()
    assert "Alpha Freight" in body and "Bravo Supplies" not in body


def test_user_without_role_or_membership_sees_no_partner(
    client: Client, partner_a: Partner
) -> None:
    client.force_login(factories.UserFactory(username="nobody"))
    body = client.get(URL).content.decode()
    assert "Alpha Freight" not in body and "No partners yet" in body


def test_counts_each_lifecycle_state(qa_client: Client, db: Any) -> None:
    for i, status in enumerate(["certified", "certified", "in_certification", "suspended"]):
        factories.PartnerFactory(external_id=f"p_c{i}", status=status)
    factories.PartnerFactory(external_id="p_c9")
    body = qa_client.get(URL).content.decode()
    assert "<strong>2</strong> certified" in body
    assert "<strong>1</strong> in certification" in body
    assert "<strong>1</strong> suspended" in body
    assert "<strong>5</strong> partners" in body


def test_expiring_counts_certifications_ending_within_30_days_inclusive(
    qa_client: Client, db: Any
) -> None:
    day = dt.timedelta(days=1)
    cases = {"p_e1": 1 * day, "p_e2": 30 * day - dt.timedelta(minutes=1), "p_e3": 31 * day}
    for external_id, valid_for in cases.items():
        partner = factories.PartnerFactory(external_id=external_id, status="certified")
        _certification(partner, status=Certification.Status.CERTIFIED, valid_for=valid_for)
    expired = factories.PartnerFactory(external_id="p_e4", status="expired")
    _certification(expired, status=Certification.Status.EXPIRED, valid_for=-day)
    body = qa_client.get(URL).content.decode()
    assert "<strong>2</strong> expiring within 30 days" in body
    listed = qa_client.get(URL, {"expiring": "on"}).content.decode()
    assert "p_e1" in listed and "p_e2" in listed
    assert "p_e3" not in listed and "p_e4" not in listed


def test_valid_until_shows_the_certified_certification_that_ends_first(
    qa_client: Client, partner_a: Partner
) -> None:
    _certification(partner_a, status=Certification.Status.CERTIFIED, valid_for=dt.timedelta(90))
    body = qa_client.get(URL).content.decode()
    soon = Certification.objects.get(partner=partner_a).valid_until
    assert soon.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") in body


@pytest.fixture
def sandboxed(partner_a: Partner, partner_b: Partner, sandbox: Any) -> tuple[Partner, Partner]:
    for partner in (partner_a, partner_b):
        certs.add_endpoint(partner, sandbox.url)
        certs.add_slas(partner, "p95<=300ms")
    return partner_a, partner_b


def test_last_run_per_suite_shows_its_verdict_and_passed_count(
    qa_client: Client, sandboxed: tuple[Partner, Partner]
) -> None:
    alpha, bravo = sandboxed
    failed = certs.finished_run(alpha, passing=False)
    certs.finished_run(bravo, passing=True)
    body = qa_client.get(URL, {"q": "alpha"}).content.decode()
    assert failed.status == Run.Status.FAILED
    assert f'href="/runs/{failed.pk}/"' in body
    assert "2/3 passed" in body and "Failed" in body


def test_failing_filter_and_count_use_the_latest_run_only(
    qa_client: Client, sandboxed: tuple[Partner, Partner]
) -> None:
    alpha, bravo = sandboxed
    certs.finished_run(alpha, passing=False)
    certs.finished_run(bravo, passing=False)
    certs.finished_run(bravo, passing=True)  # fixed since
    body = qa_client.get(URL).content.decode()
    assert "<strong>1</strong> failing" in body
    failing = qa_client.get(URL, {"failing": "on"}).content.decode()
    assert "Alpha Freight" in failing and "Bravo Supplies" not in failing


def test_a_cancelled_run_leaves_the_standing_as_it_was(
    qa_client: Client, sandboxed: tuple[Partner, Partner]
) -> None:
    alpha, _ = sandboxed
    passed = certs.finished_run(alpha, passing=True)
    cancelled = runs.run_create(partner=alpha, suite=certs.suite(passing=False), by="test")
    runs.run_cancel(run=cancelled, by="test")
    standing = LatestRun.objects.get(partner=alpha)
    assert standing.run_id == passed.pk and standing.status == Run.Status.PASSED


def test_sla_chips_show_each_verdict_and_the_filter_finds_unmet_ones(
    qa_client: Client, sandboxed: tuple[Partner, Partner]
) -> None:
    alpha, bravo = sandboxed
    SLA.objects.filter(partner=alpha).update(threshold_ms=0.001, text="p95<=0.001ms")
    certs.finished_run(alpha, passing=True)
    certs.finished_run(bravo, passing=True)
    body = qa_client.get(URL).content.decode()
    assert "verdict-missed" in body and "verdict-met" in body
    unmet = qa_client.get(URL, {"sla_failing": "on"}).content.decode()
    assert "Alpha Freight" in unmet and "Bravo Supplies" not in unmet


def test_rebuilding_the_standings_gives_what_finishing_runs_wrote(
    sandboxed: tuple[Partner, Partner],
) -> None:
    alpha, bravo = sandboxed
    certs.finished_run(alpha, passing=False)
    certs.finished_run(alpha, passing=True)
    certs.finished_run(bravo, passing=False)
    fields = ("partner_id", "suite_name", "run_id", "status", "scenarios_passed", "sla_missed")
    written = sorted(LatestRun.objects.values_list(*fields))
    assert latest_runs_rebuild() == 2
    assert sorted(LatestRun.objects.values_list(*fields)) == written


def test_sort_by_name(qa_client: Client, db: Any) -> None:
    factories.PartnerFactory(external_id="p_s1", name="Zulu Parts")
    factories.PartnerFactory(external_id="p_s2", name="Acme Rail")
    body = qa_client.get(URL, {"sort": "name"}).content.decode()
    assert body.index("Acme Rail") < body.index("Zulu Parts")


def test_pages_hold_fifty_partners_and_keep_the_filters(qa_client: Client, db: Any) -> None:
    Partner.objects.bulk_create(
        [Partner(external_id=f"p_{i:04d}", name=f"Partner {i:04d}") for i in range(120)]
    )
    body = qa_client.get(URL, {"q": "Partner", "page": "3"}).content.decode()
    assert "Page 3 of 3 (120 partners)" in body
    assert "Partner 0100" in body and "Partner 0099" not in body
    assert "?q=Partner&amp;page=2" in body


def test_queries_do_not_grow_with_the_partners_shown(
    qa_client: Client, sandboxed: tuple[Partner, Partner]
) -> None:
    alpha, bravo = sandboxed
    certs.finished_run(alpha, passing=True)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert qa_client.get(URL).status_code == 200
        return len(captured)

    few = queries()
    certs.finished_run(bravo, passing=False)
    Partner.objects.bulk_create(
        [Partner(external_id=f"p_q{i:03d}", name=f"Q {i}") for i in range(40)]
    )
    assert queries() == few
