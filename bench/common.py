"""What several benchmarks set up the same way: a fresh PostgreSQL database, and the bench
partner with a stored suite."""

from __future__ import annotations

from typing import Any


def fresh_pg_database(url: str) -> None:
    """Drop and create the database ``url`` names (connecting to its server's ``postgres``)."""
    import psycopg

    admin, name = url.rsplit("/", 1)
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def bench_partner_and_suite(entry: str, text: str) -> tuple[Any, Any]:
    """Migrate the configured database and store the partner ``p_bench`` and a suite (call
    after ``django.setup()``)."""
    from django.core.management import call_command

    from certification import suites
    from partners.models import Partner

    call_command("migrate", verbosity=0)
    partner, _ = Partner.objects.get_or_create(
        external_id="p_bench", defaults={"name": "Bench", "modes": ["api"]}
    )
    suite, _ = suites.suite_store(entry=entry, sources={entry: text}, by="bench")
    return partner, suite
