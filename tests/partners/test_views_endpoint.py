from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.urls import reverse

from certification.engine import auth_kinds
from evidence.models import AuditEvent
from partners import crypto, services
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


def test_http_basic_endpoint_keeps_the_username_shown_and_the_password_sealed(
    qa_client: Client, partner_a: Partner
) -> None:
    form = _form(auth_kind="basic", token="", username="AC0123456789", password="pw-SECRET-22")
    assert qa_client.post(_new(partner_a), form).status_code == 302
    endpoint = Endpoint.objects.get(partner=partner_a, name="api")
    assert endpoint.auth_config == {"username": "AC0123456789"}
    assert services.endpoint_secrets(endpoint) == {"password": "pw-SECRET-22"}
    page = qa_client.get(reverse("partners:detail", args=[partner_a.external_id])).content
    assert b"HTTP Basic" in page and b"AC0123456789" in page and b"pw-SECRET-22" not in page


def test_http_basic_without_a_username_is_reported_on_its_field(
    qa_client: Client, partner_a: Partner
) -> None:
    form = _form(auth_kind="basic", token="", username="", password="pw-SECRET-22")
    response = qa_client.post(_new(partner_a), form)
    assert response.status_code == 200
    assert "Username is required for this auth kind." in response.content.decode()
    assert not partner_a.endpoints.exists()


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
            client_secret="client-secret-1",
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
    qa_client.post(
        _edit(endpoint_a), _form(name="api", auth_kind="api_key", api_key="new-key-9876")
    )
    endpoint_a.refresh_from_db()
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "new-key-9876"}


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


def test_short_secret_is_refused_on_its_field(qa_client: Client, partner_a: Partner) -> None:
    response = qa_client.post(_new(partner_a), _form(token="1234567"))
    assert response.status_code == 200
    assert response.context["form"].errors["token"] == [
        "Bearer token is too short: a secret needs at least 8 characters."
    ]
    assert not partner_a.endpoints.exists()


def test_stored_short_secret_must_be_replaced_on_the_next_save(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    # Saved before the rule: written straight to the row, as an old database would hold it.
    endpoint_a.secrets_sealed = crypto.key_ring().encrypt(
        '{"api_key": "short"}', aad=endpoint_a.secrets_aad
    )
    endpoint_a.save()
    response = qa_client.post(_edit(endpoint_a), _form(auth_kind="api_key", token=""))
    assert "The stored API key is shorter than 8 characters" in response.content.decode()
    response = qa_client.post(
        _edit(endpoint_a), _form(auth_kind="api_key", token="", api_key="long-enough-key")
    )
    assert response.status_code == 302


def test_database_url_with_an_inline_password_is_refused(
    qa_client: Client, partner_a: Partner
) -> None:
    response = qa_client.post(
        _new(partner_a),
        _form(
            name="orders-db",
            kind="postgresql",
            base_url="postgres://reader:pw-SECRET-1@127.0.0.1:5432/orders",
            auth_kind="none",
        ),
    )
    (error,) = response.context["form"].errors["base_url"]
    assert "Remove it from the URL" in error and "db_password" in error
    assert "pw-SECRET-1" not in error
    assert not partner_a.endpoints.exists()


def test_endpoint_service_refuses_an_inline_database_password(partner_a: Partner) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.endpoint_save(
            partner=partner_a,
            by="test",
            name="db",
            kind="postgresql",
            base_url="postgresql://u:pw-SECRET-1@127.0.0.1/db",
            is_default=False,
            auth_kind="db_password",
            auth_config={},
            new_secrets={"password": "pw-SECRET-1"},
        )
    assert "Database password" in excinfo.value.message_dict["base_url"][0]


def _stored_with_password(partner: Partner) -> Endpoint:
    """An endpoint saved before URLs had to be free of passwords."""
    endpoint = services.endpoint_save(
        partner=partner,
        by="test",
        name="orders-db",
        kind="postgresql",
        base_url="postgres://reader@127.0.0.1:5432/orders",
        is_default=False,
        auth_kind="none",
        auth_config={},
        new_secrets={},
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(
        base_url="postgres://reader:old-pw-SECRET@127.0.0.1:5432/orders"
    )
    endpoint.refresh_from_db()
    return endpoint


def test_stored_url_password_is_masked_on_every_partner_page(
    qa_client: Client, partner_a: Partner
) -> None:
    endpoint = _stored_with_password(partner_a)
    detail = qa_client.get(
        reverse("partners:detail", kwargs={"partner_id": partner_a.external_id})
    ).content.decode()
    edit = qa_client.get(_edit(endpoint)).content.decode()
    for body in (detail, edit):
        assert "old-pw-SECRET" not in body
        assert "postgres://reader:••••••@127.0.0.1:5432/orders" in body


def test_saving_the_masked_url_asks_for_the_password_in_its_field(
    qa_client: Client, partner_a: Partner
) -> None:
    endpoint = _stored_with_password(partner_a)
    response = qa_client.post(
        _edit(endpoint),
        _form(
            name="orders-db",
            kind="postgresql",
            base_url="postgres://reader:••••••@127.0.0.1:5432/orders",
            auth_kind="none",
            is_default="",
        ),
    )
    assert "Remove it from the URL" in response.content.decode()
    endpoint.refresh_from_db()
    assert "old-pw-SECRET" in endpoint.base_url  # unchanged until saved without it


def test_admin_shows_endpoint_urls_masked(partner_a: Partner) -> None:
    endpoint = _stored_with_password(partner_a)
    admin = User.objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(admin)
    for url in (
        reverse("admin:partners_endpoint_changelist"),
        reverse("admin:partners_endpoint_change", args=[endpoint.pk]),
    ):
        body = client.get(url).content.decode()
        assert "old-pw-SECRET" not in body and "reader:••••••@" in body


def test_audit_event_shows_the_url_without_a_password(partner_a: Partner) -> None:
    _stored_with_password(partner_a)
    assert all(
        "SECRET" not in str(data) for data in AuditEvent.objects.values_list("data", flat=True)
    )


def _sealed_under_a_retired_key(endpoint: Endpoint) -> None:
    with override_settings(SECRETS_ENCRYPTION_KEYS=f"k0:{crypto.new_key()}"):
        endpoint.secrets_sealed = crypto.seal_secrets(
            {"api_key": "alpha-key-SECRET-value"}, aad=endpoint.secrets_aad
        )
    endpoint.save()


def test_edit_page_names_the_missing_key_instead_of_failing(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    _sealed_under_a_retired_key(endpoint_a)
    response = qa_client.get(_edit(endpoint_a))
    assert response.status_code == 200
    assert (
        "secret sealed with key &#x27;k0&#x27;, which is not in SECRETS_ENCRYPTION_KEYS"
        in response.content.decode()
    )


def test_partner_page_names_the_missing_key_instead_of_failing(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    _sealed_under_a_retired_key(endpoint_a)
    url = reverse("partners:detail", kwargs={"partner_id": endpoint_a.partner.external_id})
    response = qa_client.get(url)
    assert response.status_code == 200
    assert "Secrets cannot be read: secret sealed with key &#x27;k0&#x27;" in (
        response.content.decode()
    )


def test_unreadable_secret_is_replaced_by_entering_it_again(
    qa_client: Client, endpoint_a: Endpoint
) -> None:
    _sealed_under_a_retired_key(endpoint_a)
    response = qa_client.post(_edit(endpoint_a), _form(auth_kind="api_key", token=""))
    assert "The stored API key cannot be read (secret sealed with key" in (
        response.content.decode().replace("&#x27;", "'")
    )
    response = qa_client.post(
        _edit(endpoint_a), _form(auth_kind="api_key", token="", api_key="re-entered-key")
    )
    assert response.status_code == 302
    endpoint_a.refresh_from_db()
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "re-entered-key"}


def test_form_page_carries_the_auth_kinds_of_each_endpoint_kind(
    qa_client: Client, partner_a: Partner
) -> None:
    assert qa_client.get(_new(partner_a)).context["auth_kinds_for"] == {
        "http": auth_kinds.kinds_for("http"),
        "postgresql": ("none", "db_password"),
        "sftp": ("ssh_password", "ssh_key"),
        "as2": ("as2_smime", "as2_plain"),
    }
