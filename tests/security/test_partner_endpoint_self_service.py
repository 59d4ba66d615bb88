"""A partner's user edits their own partner's sandbox endpoints and replaces their secrets
(the Partner user role holds partners.add/change/delete_endpoint), and can reach no other
partner's: every path to partner B's endpoint answers 404 and leaves it as it was."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from evidence.models import AuditEvent
from partners import services
from partners.models import Endpoint, Partner

B_SECRET = {"token": "bravo-token-SECRET-value"}


def _edit(partner: Partner, endpoint: Endpoint) -> str:
    return reverse(
        "partners:endpoint_edit",
        kwargs={"partner_id": partner.external_id, "endpoint_id": endpoint.pk},
    )


def _delete(partner: Partner, endpoint: Endpoint) -> str:
    return reverse(
        "partners:endpoint_delete",
        kwargs={"partner_id": partner.external_id, "endpoint_id": endpoint.pk},
    )


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "api",
        "kind": "http",
        "base_url": "http://127.0.0.1:9/alpha-v2",
        "is_default": "on",
        "auth_kind": "api_key",
        "header_name": "X-API-Key",
        "api_key": "alpha-key-ROTATED-value",
    }
    data.update(overrides)
    return data


def _b_unchanged(endpoint_b: Endpoint) -> bool:
    endpoint_b.refresh_from_db()
    return (
        endpoint_b.base_url == "http://127.0.0.1:9/bravo"
        and services.endpoint_secrets(endpoint_b) == B_SECRET
    )


def test_partner_page_offers_a_partner_user_the_edit_of_their_endpoints(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Endpoint
) -> None:
    page = partner_a_client.get(reverse("partners:detail", args=[partner_a.external_id]))
    assert _edit(partner_a, endpoint_a) in page.content.decode()


def test_partner_user_changes_their_endpoint_and_replaces_its_secret(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Endpoint
) -> None:
    response = partner_a_client.post(_edit(partner_a, endpoint_a), _form())
    assert response.status_code == 302
    endpoint_a.refresh_from_db()
    assert endpoint_a.base_url == "http://127.0.0.1:9/alpha-v2"
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "alpha-key-ROTATED-value"}
    event = AuditEvent.objects.get(action="endpoint.update")
    assert event.actor_label == "eng-p_a01"
    assert "alpha-key-ROTATED-value" not in str(event.data)


def test_partner_user_deletes_their_endpoint(
    partner_a_client: Client, partner_a: Partner, endpoint_a: Endpoint
) -> None:
    assert partner_a_client.post(_delete(partner_a, endpoint_a)).status_code == 302
    assert not partner_a.endpoints.exists()


def test_partner_user_cannot_edit_another_partners_endpoint_by_any_path(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner, endpoint_b: Endpoint
) -> None:
    for partner in (partner_a, partner_b):
        url = _edit(partner, endpoint_b)
        assert partner_a_client.get(url).status_code == 404
        assert partner_a_client.post(url, _form(name="bravo-api")).status_code == 404
    assert _b_unchanged(endpoint_b)


def test_partner_user_cannot_delete_another_partners_endpoint_by_any_path(
    partner_a_client: Client, partner_a: Partner, partner_b: Partner, endpoint_b: Endpoint
) -> None:
    for partner in (partner_a, partner_b):
        assert partner_a_client.post(_delete(partner, endpoint_b)).status_code == 404
    assert Endpoint.objects.filter(pk=endpoint_b.pk).exists()


def test_partner_user_cannot_add_an_endpoint_to_another_partner(
    partner_a_client: Client, partner_b: Partner, endpoint_b: Endpoint
) -> None:
    url = reverse("partners:endpoint_create", args=[partner_b.external_id])
    assert partner_a_client.post(url, _form(name="extra")).status_code == 404
    assert list(partner_b.endpoints.values_list("name", flat=True)) == ["bravo-api"]
