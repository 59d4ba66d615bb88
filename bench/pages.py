"""Page speed benchmark: prints figures, asserts nothing (not part of ``make test``).

Seeds the bench database with ``seed_volume`` (500 partners x 4 runs x 100 steps, plus one
200-step and one 10,000-step run: 210,200 step results) unless it already holds that volume,
logs in a QA lead with ``django.test.Client`` and, for each page, prints the server time of 50
requests (median and p95, nearest rank, after 2 warm-up requests), the SQL queries of one
request (``CaptureQueriesContext``) and the response size. Then it checks that each page's
query count does not grow with the rows it shows, by loading it at two sizes.

Needs PostgreSQL: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/certdash_bench;
recreated if it holds other data). Runs with DEBUG=false unless DEBUG is set.
Run: .venv/bin/python bench/pages.py
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench")
os.environ["DATABASE_URL"] = PG
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
# Timed as served in production: no query logging, cached templates (queries are still counted).
os.environ.setdefault("DEBUG", "false")

PARTNERS, RUNS_PER_PARTNER, STEPS_PER_RUN = 500, 4, 100
BIG_RUNS = (200, 10_000)
REQUESTS, WARMUP = 50, 2
TARGET_MS = 150


def fresh_database() -> None:
    import psycopg

    admin, name = PG.rsplit("/", 1)
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _seeded() -> bool:
    from certification.models import Run
    from partners.models import Partner

    return Partner.objects.filter(external_id__startswith="v_").count() == PARTNERS and all(
        Run.objects.filter(suite__name=f"volume-orders-{n}").exists() for n in BIG_RUNS
    )


def prepare() -> None:
    import django
    from django.core.management import call_command
    from django.db import OperationalError, connections

    django.setup()
    try:
        call_command("migrate", verbosity=0)
        seeded = _seeded()
    except OperationalError:  # the bench database does not exist yet
        seeded = False
    if seeded:
        print("Reusing the seeded bench database.")
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
        return
    connections.close_all()
    fresh_database()
    call_command("migrate", verbosity=0)
    started = time.monotonic()
    args = ["--partners", PARTNERS, "--runs-per-partner", RUNS_PER_PARTNER,
            "--steps-per-run", STEPS_PER_RUN]  # fmt: skip
    for n in BIG_RUNS:
        args += ["--big-run-steps", n]
    call_command("seed_volume", *map(str, args))
    print(f"Seeded in {time.monotonic() - started:.1f} s.")
    # Planner statistics, as autovacuum would have them on a database that grew over time.
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE")


def _client():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from partners import access

    user, _ = get_user_model().objects.get_or_create(username="bench-qa")
    user.groups.set([Group.objects.get(name=access.QA_LEAD)])
    client = Client()
    client.force_login(user)
    return client


def measure(client, url: str) -> dict:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # a full query log (seeding in this process) would make counts read 0
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured)  # now: later requests clear the log it reads from
    if response.status_code != 200:
        return {"status": response.status_code}
    for _ in range(WARMUP):
        client.get(url)
    times = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "status": 200,
        "median": statistics.median(times),
        "p95": times[math.ceil(0.95 * len(times)) - 1],
        "queries": queries,
        "kb": len(response.content) / 1024,
    }


def cpu_reference_ms() -> float:
    """A fixed pure-Python loop (best of 3): shared machines vary in speed from minute to
    minute, so the figures are printed with how fast this one was while they were taken."""
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def main() -> None:
    prepare()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # "testserver" allowed as a host
    from django.db.models import Count

    from certification.models import Run, StepResult
    from partners.models import Partner

    client = _client()
    big = {
        n: Run.objects.filter(suite__name=f"volume-orders-{n}").order_by("-pk").first()
        for n in BIG_RUNS
    }
    steps = {n: StepResult.objects.filter(scenario_run__run=run).count() for n, run in big.items()}
    by_endpoints = Partner.objects.filter(external_id__startswith="v_").annotate(
        n=Count("endpoints")
    )
    two = by_endpoints.filter(n=2).order_by("external_id").first()
    three = by_endpoints.filter(n=3).order_by("external_id").first()
    pages = [
        ("overview (50 of 500 partners)", "/overview/"),
        ("overview (filtered to 9)", "/overview/?q=v_00000"),
        (f"partner {two.external_id} (2 endpoints)", f"/partners/{two.external_id}/"),
        (f"partner {three.external_id} (3 endpoints)", f"/partners/{three.external_id}/"),
        ("runs list (50 rows)", "/runs/"),
        ("runs list (filtered to 4)", f"/runs/?partner={two.external_id}"),
        (f"run page ({steps[200]:,} steps)", f"/runs/{big[200].pk}/"),
        (f"run page ({steps[10_000]:,} steps)", f"/runs/{big[10_000].pk}/"),
    ]
    print(
        f"\n{Partner.objects.count():,} partners, {Run.objects.count():,} runs, "
        f"{StepResult.objects.count():,} step results; {REQUESTS} requests per page, "
        f"server time in process (django.test.Client), target median < {TARGET_MS} ms\n"
    )
    before = cpu_reference_ms()
    header = f"{'page':<34} {'median ms':>10} {'p95 ms':>9} {'queries':>8} {'KB':>9}  target"
    print(header)
    print("-" * len(header))
    results = {}
    for label, url in pages:
        r = measure(client, url)
        results[label] = r
        if r["status"] == 404 and url.startswith("/overview/"):
            print(f"{label:<34} not built yet (404)")
        elif r["status"] != 200:
            print(f"{label:<34} HTTP {r['status']}")
        else:
            ok = "ok" if r["median"] < TARGET_MS else "OVER"
            print(
                f"{label:<34} {r['median']:>10.1f} {r['p95']:>9.1f} {r['queries']:>8} "
                f"{r['kb']:>9.1f}  {ok}"
            )
    print(
        f"\nCPU reference (3M-iteration Python loop, best of 3): {before:.0f} ms before, "
        f"{cpu_reference_ms():.0f} ms after (lower is faster; compare runs at similar values)"
    )
    print("\nQueries constant in the rows shown:")
    labels = [label for label, _ in pages]
    for small, large in zip(labels[1::2], labels[0::2], strict=True):
        a, b = results[small], results[large]
        if a["status"] != 200 or b["status"] != 200:
            print(f"  {large} / {small}: not measured (HTTP {b['status']} / {a['status']})")
            continue
        same = "yes" if a["queries"] == b["queries"] else "NO"
        print(f"  {large}: {b['queries']} vs {small}: {a['queries']} -> {same}")


if __name__ == "__main__":
    main()
