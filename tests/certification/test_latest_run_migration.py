"""Migration 0004 fills the overview's standings for runs that finished before it existed."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from certification.models import LatestRun
from tests.evidence import certs

BEFORE = [("certification", "0003_run_locked_at")]
AFTER = [("certification", "0004_latest_run")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_what_finishing_runs_write(partner_a: Any, sandbox: Any) -> None:
    certs.add_endpoint(partner_a, sandbox.url)
    certs.add_slas(partner_a, "p95<=300ms")
    certs.finished_run(partner_a, passing=True)
    certs.finished_run(partner_a, passing=False)
    fields = ("partner_id", "suite_name", "run_id", "status", "scenarios_passed", "sla_missed")
    written = sorted(LatestRun.objects.values_list(*fields))

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        assert sorted(LatestRun.objects.values_list(*fields)) == written
        assert written and written[0][3] == "failed"
    finally:
        # Back to the latest schema, for the tests that follow on this database.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
