from __future__ import annotations

from django.test import Client
from django.urls import reverse

from partners.models import Endpoint, Partner


def _url(partner: Partner) -> str:
    return reverse("partners:detail", kwargs={"partner_id": partner.external_id})


def test_detail_shows_endpoints_with_masked_secrets(
    qa_client: Client, partner_a: Partner, endpoint_a: Endpoint
) -> None:
    body = qa_client.get(_url(partner_a)).content.decode()
    assert "http://127.0.0.1:9/alpha" in body
    assert "api_key" in body and "••••••••" in body
    assert "alpha-key-SECRET-value" not in body


def test_partner_user_can_open_their_own_partner(
    partner_a_client: Client, partner_a: Partner
) -> None:
    assert partner_a_client.get(_url(partner_a)).status_code == 200


def test_partner_user_gets_404_for_another_partner(
    partner_a_client: Client, partner_b: Partner
) -> None:
    assert partner_a_client.get(_url(partner_b)).status_code == 404


def test_anonymous_user_is_sent_to_login(client: Client, partner_a: Partner) -> None:
    response = client.get(_url(partner_a))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_unknown_partner_is_404(qa_client: Client) -> None:
    assert qa_client.get("/partners/p_none/").status_code == 404


def test_auditor_sees_no_edit_actions(
    auditor_client: Client, partner_a: Partner, endpoint_a: Endpoint
) -> None:
    body = auditor_client.get(_url(partner_a)).content.decode()
    assert "Add endpoint" not in body and "Edit / replace secrets" not in body
