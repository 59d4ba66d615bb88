from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from evidence.models import AuditEvent
from partners import services
from partners.models import Endpoint, Partner


def _new(partner: Partner) -> str:
    return reverse("partners:endpoint_create", kwargs={"partner_id": partner.external_id})


def _edit(endpoint: Endpoint) -> str:
    return reverse(
        "partners:endpoint_edit",
        kwargs={"partner_id": endpoint.partner.external_id, "endpoint_id": endpoint.pk},
    )


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "api",
        "kind": "http",
        "base_url": "http://127.0.0.1:8001/v1",
        "is_default": "on",
        "auth_kind": "bearer",
        "token": "tok-SECRET-1",
    }
    data.update(overrides)
    return data


def test_qa_lead_creates_an_endpoint_and_its_secret_is_sealed(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(_new(partner_a), _form())
    assert response.status_code == 302
    endpoint = Endpoint.objects.get(partner=partner_a, name="api")
    assert endpoint.is_default
    assert services.endpoint_secrets(endpoint) == {"token": "tok-SECRET-1"}
    assert "tok-SECRET-1" not in endpoint.secrets_sealed
    event = AuditEvent.objects.get(action="endpoint.create")
    assert event.data["secrets_replaced"] == ["token"]
    assert "tok-SECRET-1" not in str(event.data)


def test_partner_user_manages_their_own_endpoints(
    partner_a_client: Client, partner_a: Partner
) -> None:
    assert partner_a_client.post(_new(partner_a), _form()).status_code == 302
    assert partner_a.endpoints.count() == 1


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://10.0.0.5/", "http://[::ffff:a9fe:a9fe]/"],
)
def test_endpoint_on_a_non_public_address_is_refused(
    qa_client: Client, partner_a: Partner, url: str
) -> None:
    response = qa_client.post(_new(partner_a), _form(base_url=url))
    assert response.status_code == 200
    assert "not a public address" in response.content.decode()
    assert not partner_a.endpoints.exists()


@override_settings(SANDBOX_ALLOWED_NETWORKS="")
def test_loopback_is_refused_when_not_allowlisted(qa_client: Client, partner_a: Partner) -> None:
    response = qa_client.post(_new(partner_a), _form(base_url="http://127.0.0.1:8001/"))
    assert "loopback" in response.content.decode()
    assert not partner_a.endpoints.exists()


def test_missing_required_secret_is_reported_on_its_field(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(_new(partner_a), _form(auth_kind="api_key", token=""))
    assert "API key is required for this auth kind." in response.content.decode()
    assert not partner_a.endpoints.exists()


def test_oauth2_token_url_goes_through_the_address_policy(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(
        _new(partner_a),
        _form(
            auth_kind="oauth2_client_credentials",
            token_url="http://169.254.169.254/token",
            client_id="cid",
            client_secret="cs",
        ),
    )
    assert "cloud metadata" in response.content.decode()


def test_edit_page_never_shows_the_stored_secret(qa_client: Client, endpoint_a: Endpoint) -> None:
    body = qa_client.get(_edit(endpoint_a)).content.decode()
    assert "alpha-key-SECRET-value" not in body
    assert "stored" in body and "Replace" in body


def test_blank_secret_on_edit_keeps_the_stored_one(qa_client: Client, endpoint_a: Endpoint) -> None:
    response = qa_client.post(
        _edit(endpoint_a),
        _form(name="api", auth_kind="api_key", header_name="X-Key", token="", api_key=""),
    )
    assert response.status_code == 302
    endpoint_a.refresh_from_db()
    assert endpoint_a.auth_config == {"header_name": "X-Key"}
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "alpha-key-SECRET-value"}


def test_replacing_a_secret_stores_the_new_value(qa_client: Client, endpoint_a: Endpoint) -> None:
    qa_client.post(_edit(endpoint_a), _form(name="api", auth_kind="api_key", api_key="new-key"))
    endpoint_a.refresh_from_db()
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "new-key"}


def test_second_default_endpoint_takes_over_the_default(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    qa_client.post(_new(endpoint_a.partner), _form(name="webhooks"))
    defaults = Endpoint.objects.filter(partner=endpoint_a.partner, is_default=True)
    assert list(defaults.values_list("name", flat=True)) == ["webhooks"]


def test_duplicate_name_is_refused(qa_client: Client, endpoint_a: Endpoint) -> None:
    response = qa_client.post(_new(endpoint_a.partner), _form(name="api"))
    assert "already has an endpoint called &#x27;api&#x27;" in response.content.decode()


def test_auditor_cannot_create_endpoints(auditor_client: Client, partner_a: Partner) -> None:
    assert auditor_client.get(_new(partner_a)).status_code == 403
    assert auditor_client.post(_new(partner_a), _form()).status_code == 403
    assert not partner_a.endpoints.exists()


def test_partner_user_gets_404_for_another_partners_endpoint(
    partner_a_client: Client, endpoint_b: Endpoint
) -> None:
    assert partner_a_client.get(_edit(endpoint_b)).status_code == 404
    assert partner_a_client.post(_edit(endpoint_b), _form()).status_code == 404


def test_anonymous_user_is_sent_to_login(client: Client, partner_a: Partner) -> None:
    assert client.get(_new(partner_a)).status_code == 302


def test_delete_removes_the_endpoint_and_audits_it(qa_client: Client, endpoint_a: Endpoint) -> None:
    url = reverse(
        "partners:endpoint_delete",
        kwargs={"partner_id": endpoint_a.partner.external_id, "endpoint_id": endpoint_a.pk},
    )
    response = qa_client.post(url)
    assert response.status_code == 302
    assert not Endpoint.objects.filter(pk=endpoint_a.pk).exists()
    assert AuditEvent.objects.filter(action="endpoint.delete").exists()


def test_htmx_delete_answers_with_a_client_redirect(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    url = reverse(
        "partners:endpoint_delete",
        kwargs={"partner_id": endpoint_a.partner.external_id, "endpoint_id": endpoint_a.pk},
    )
    response = qa_client.post(url, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == f"/partners/{endpoint_a.partner.external_id}/"


def test_malformed_endpoint_id_is_404(qa_client: Client, partner_a: Partner) -> None:
    assert (
        qa_client.get(f"/partners/{partner_a.external_id}/endpoints/not-a-uuid/edit/").status_code
        == 404
    )


def test_database_endpoint_takes_a_postgres_url_and_a_password(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(
        _new(partner_a),
        _form(
            name="orders-db",
            kind="postgresql",
            base_url="postgres://reader@127.0.0.1:5432/orders",
            auth_kind="db_password",
            password="pw-SECRET",
            is_default="",
        ),
    )
    assert response.status_code == 302
    endpoint = Endpoint.objects.get(name="orders-db")
    assert (endpoint.kind, endpoint.writable) == ("postgresql", False)
    assert services.endpoint_secrets(endpoint) == {"password": "pw-SECRET"}


def test_database_endpoint_on_a_private_network_is_refused(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(
        _new(partner_a),
        _form(kind="postgresql", base_url="postgres://u@10.1.2.3:5432/db", auth_kind="none"),
    )
    assert "private" in response.content.decode()
    assert not partner_a.endpoints.exists()


def test_http_url_on_a_database_endpoint_is_refused(qa_client: Client, partner_a: Partner) -> None:
    response = qa_client.post(
        _new(partner_a), _form(kind="postgresql", base_url="http://127.0.0.1/", auth_kind="none")
    )
    assert "needs a postgres://" in response.content.decode()
