from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from partners import services
from partners.models import Endpoint, Partner
from tests import factories


@pytest.fixture
def partner_a(db: Any) -> Partner:
    return factories.PartnerFactory(external_id="p_a01", name="Alpha Freight")


@pytest.fixture
def partner_b(db: Any) -> Partner:
    return factories.PartnerFactory(external_id="p_b02", name="Bravo Supplies")


@pytest.fixture
def endpoint_b(partner_b: Partner) -> Endpoint:
    return services.endpoint_save(
        partner=partner_b,
        by="test",
        name="bravo-api",
        base_url="http://127.0.0.1:9/bravo",
        is_default=True,
        auth_kind="bearer",
        auth_config={},
        new_secrets={"token": "bravo-token-SECRET-value"},
    )


@pytest.fixture
def endpoint_a(partner_a: Partner) -> Endpoint:
    return services.endpoint_save(
        partner=partner_a,
        by="test",
        name="api",
        base_url="http://127.0.0.1:9/alpha",
        is_default=True,
        auth_kind="api_key",
        auth_config={"header_name": "X-API-Key"},
        new_secrets={"api_key": "alpha-key-SECRET-value"},
    )


def _login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def qa_client(db: Any) -> Client:
    return _login(factories.qa_lead())


@pytest.fixture
def auditor_client(db: Any) -> Client:
    return _login(factories.auditor())


@pytest.fixture
def partner_a_client(partner_a: Partner) -> Client:
    return _login(factories.partner_user(partner_a))


@pytest.fixture(scope="session", autouse=True)
def _evidence_storage(tmp_path_factory: Any) -> Any:
    """Bundles built by tests go to a temporary folder, not the developer's var/evidence."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    location = str(tmp_path_factory.mktemp("evidence"))
    storages = {
        **django_settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location, "base_url": None},
        },
    }
    with override_settings(STORAGES=storages):
        yield location


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def sandbox_server() -> Any:
    from demo.sandbox import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: Any) -> Any:
    """The demo sandbox, reset to its seed data for each test."""
    sandbox_server.reset_state()
    sandbox_server.reset_timings()
    return sandbox_server


@pytest.fixture(scope="session", autouse=True)
def _no_persistent_connections() -> None:
    """The live server answers each request on a new thread: with persistent connections
    (CONN_MAX_AGE) every such thread would leave one open until the end of the session."""
    from django.db import connections

    connections.settings["default"]["CONN_MAX_AGE"] = 0
