"""Endpoint URLs stored with an inline password before it was refused: the data migration
moves the password into the sealed secrets and scrubs it from run snapshots and audit events."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from certification.models import Run, Suite
from evidence.models import AuditEvent
from partners import crypto
from partners.models import Endpoint, Partner

migration = importlib.import_module("partners.migrations.0004_move_inline_db_passwords")
LEGACY = "postgres://reader:legacy-pw-1234@127.0.0.1:5432/shop"


@pytest.fixture
def legacy(partner_a: Partner) -> dict[str, Any]:
    endpoint = Endpoint.objects.create(
        partner=partner_a, name="db", kind="postgresql", base_url=LEGACY, auth_kind="none"
    )
    suite = Suite.objects.create(
        name="s", version=1, entry="s.yaml", sources={}, parsed={}, content_hash="x"
    )
    run = Run.objects.create(partner=partner_a, suite=suite, endpoints={"db": {"base_url": LEGACY}})
    AuditEvent.objects.create(
        actor_label="test", action="run.create", data={"endpoints": {"db": LEGACY}}
    )
    _forwards_as_migrate_runs_it()
    return {"endpoint": endpoint, "run": run}


def _forwards_as_migrate_runs_it() -> None:
    """The migration as ``migrate`` runs it: with the models of its own time, before the audit
    log became append-only (evidence 0003 depends on it), so without that trigger."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    state = MigrationExecutor(connection).loader.project_state(
        ("partners", "0004_move_inline_db_passwords")
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE needs no pending events
            cursor.execute(
                "ALTER TABLE evidence_auditevent DISABLE TRIGGER evidence_auditevent_append_only"
            )
    migration.forwards(state.apps, None)


@pytest.mark.django_db
def test_the_password_moves_into_the_sealed_secrets(legacy: dict[str, Any]) -> None:
    endpoint = Endpoint.objects.get(pk=legacy["endpoint"].pk)
    assert endpoint.base_url == "postgres://reader@127.0.0.1:5432/shop"
    assert endpoint.auth_kind == "db_password"
    secrets = crypto.open_secrets(endpoint.secrets_sealed, aad=endpoint.secrets_aad)
    assert secrets == {"password": "legacy-pw-1234"}


@pytest.mark.django_db
def test_no_table_keeps_the_password_readable(legacy: dict[str, Any]) -> None:
    stored = json.dumps(
        [
            list(Endpoint.objects.values("base_url", "auth_config")),
            list(Run.objects.values("endpoints")),
            list(AuditEvent.objects.values("data", "target")),
        ]
    )
    assert "legacy-pw-1234" not in stored


@pytest.mark.django_db
def test_a_password_in_the_query_string_moves_too(partner_a: Partner) -> None:
    endpoint = Endpoint.objects.create(
        partner=partner_a, name="db2", kind="postgresql", auth_kind="none",
        base_url="postgres://127.0.0.1:5432/shop?sslmode=disable&password=query-pw-1234",
    )  # fmt: skip
    _forwards_as_migrate_runs_it()
    endpoint.refresh_from_db()
    assert endpoint.base_url == "postgres://127.0.0.1:5432/shop?sslmode=disable"
    secrets = crypto.open_secrets(endpoint.secrets_sealed, aad=endpoint.secrets_aad)
    assert secrets == {"password": "query-pw-1234"}
