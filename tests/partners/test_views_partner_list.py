from __future__ import annotations

from django.test import Client
from django.urls import reverse

from partners.models import SLA, Partner

URL = reverse("partners:list")


def test_anonymous_user_is_sent_to_login(client: Client, db: object) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_qa_lead_sees_every_partner_with_status_and_sla_summary(
    qa_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    SLA.objects.create(
        partner=partner_a, name="p95", kind="latency", text="p95<=300ms", percentile=95,
        threshold_ms=300,
    )  # fmt: skip
    response = qa_client.get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Alpha Freight" in body and "Bravo Supplies" in body
    assert "p95 ≤ 300 ms" in body
    assert "Onboarding" in body


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
    assert "Bravo" in qa_client.get(URL, {"status": "certified"}).content.decode()
    assert "Alpha" not in qa_client.get(URL, {"status": "certified"}).content.decode()
    by_mode = qa_client.get(URL, {"mode": "edi"}).content.decode()
    assert "Bravo" in by_mode and "Alpha" not in by_mode


def test_htmx_search_returns_only_the_table_fragment(qa_client: Client, partner_a: Partner) -> None:
    response = qa_client.get(
        URL, {"q": "alpha"}, headers={"HX-Request": "true", "HX-Target": "partner-table"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="partner-table">')
    assert "<html" not in body and "Alpha Freight" in body


def test_no_match_says_so(qa_client: Client, partner_a: Partner) -> None:
    assert "No partners match" in qa_client.get(URL, {"q": "zzz"}).content.decode()


def test_partner_user_lands_on_their_own_partner_page(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner
) -> None:
    response = partner_a_client.get(URL)
    assert (
        response.status_code == 302
        and response["Location"] == f"/partners/{partner_a.external_id}/"
    )
    body = partner_a_client.get(URL, follow=True).content.decode()
    assert "Alpha Freight" in body and "Bravo Supplies" not in body


def test_user_without_role_or_membership_sees_no_partner(
    client: Client, partner_a: Partner
) -> None:
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="nobody"))
    assert "Alpha Freight" not in client.get(URL).content.decode()
