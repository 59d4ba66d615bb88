"""Runs-on-workers benchmark: prints figures, asserts nothing.

The engine benchmark's workload (200 scenarios x 4 requests) started as a run and executed by
Celery workers on PostgreSQL + Redis, with 1 and then 2 worker processes: wall time from
start_run to the finished run, steps per second, the scaling ratio, and the queueing overhead per
scenario (task time on a worker beyond the scenario's own engine time).

Needs PostgreSQL and Redis: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/
certdash_bench_runs, recreated) and BENCH_BROKER_URL (default redis://127.0.0.1:6379/13).
Run: .venv/bin/python bench/runs.py   (or `make bench`)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench_runs")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
os.environ["DATABASE_URL"] = PG
os.environ["CELERY_BROKER_URL"] = BROKER
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
QUEUE = f"bench-{uuid.uuid4().hex[:8]}"
POOL = os.environ.get("BENCH_POOL", "solo")  # e.g. "threads" with BENCH_CONCURRENCY=4
CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "1")
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE


def start_workers(count: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                QUEUE,
                "-n",
                f"{QUEUE}-{i}@%h",
                "--pool=solo",
                "--loglevel=WARNING",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=os.environ.copy(),
        )  # fmt: skip
        for i in range(count)
    ]


def wait_until_consuming(count: int) -> None:
    from certification.models import WorkerHeartbeat
    from certification.tasks import heartbeat

    nonce = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in range(count):
            heartbeat.delay(nonce)
        time.sleep(0.5)
        if WorkerHeartbeat.objects.filter(nonce=nonce).count() >= count:
            return
    raise RuntimeError("workers did not start")


def main() -> None:
    from bench.common import bench_partner_and_suite, fresh_pg_database

    fresh_pg_database(PG)
    import django

    django.setup()
    from bench.engine import SCENARIOS, workload_yaml
    from bench.sandbox_process import SandboxProcess
    from certification import runs
    from certification.models import Run

    partner, suite = bench_partner_and_suite("bench.yaml", workload_yaml())
    steps = SCENARIOS * 4
    print(
        f"{SCENARIOS} scenarios x 4 requests through Celery (PostgreSQL + Redis, "
        f"--pool={POOL} --concurrency={CONCURRENCY} per worker process)"
    )
    results = {}
    with SandboxProcess() as sandbox:
        for count in (1, 2):
            workers = start_workers(count)
            try:
                wait_until_consuming(count)
                sandbox.prepare()
                started = time.perf_counter()
                run = runs.start_run(
                    partner=partner,
                    suite=suite,
                    by="bench",
                    endpoint_overrides={"api": sandbox.url},
                )
                while not Run.objects.get(pk=run.pk).is_finished:
                    time.sleep(0.02)
                wall = time.perf_counter() - started
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.wait(timeout=30)
            run.refresh_from_db()
            durations = list(run.scenario_runs.values_list("duration_ms", flat=True))
            engine_ms = sum(durations) / len(durations)
            per_scenario_ms = wall * 1000 * count / SCENARIOS
            results[count] = wall
            print(
                f"    {count} worker(s): {wall:6.3f} s  {steps / wall:7.0f} steps/s  "
                f"run {run.status}; per scenario {per_scenario_ms:5.1f} ms of worker time, "
                f"{engine_ms:5.1f} ms in the engine, overhead {per_scenario_ms - engine_ms:5.1f} ms"
            )
    print(
        f"    scaling 1 -> 2 workers: {results[1] / results[2]:.2f}x  (target: 2 workers <= 1.5 s)"
    )


if __name__ == "__main__":
    main()
