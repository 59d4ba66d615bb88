"""Evidence bundle benchmark: prints figures, asserts nothing.

For runs of 100, 1,000 and 10,000 steps stored in PostgreSQL (realistic step records: request
and response headers, a 600-byte JSON body each, assertions; 2 % of steps failing, so the
certificate shows failures in full, or none), builds the run's whole evidence bundle the way
the worker does (collect from the database, results.jsonl, exchanges.har, certification.json,
certificate.pdf, zip, SHA256SUMS and its signature), in a process whose imports are done as a
worker's are, and prints the build time, the peak resident memory of the building process, and
the zip's and the PDF's sizes. Each row is built in its own child process, pinned to one core,
so the memory figures do not carry over.

Needs PostgreSQL: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/
certdash_bench_evidence, recreated). Run: .venv/bin/python bench/evidence.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import fresh_pg_database  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench_evidence")
os.environ["DATABASE_URL"] = PG
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
# (steps, steps per scenario, one failing step in every N; 0: none fails). Scenarios grow with
# steps; then 10,000 steps in 50 scenarios, and all passing, to show what steps alone cost (the
# certificate prints at most 200 failing steps in full, so failures cost up to that cap).
SIZES = (
    (100, 20, 50),
    (1_000, 20, 50),
    (10_000, 20, 50),
    (10_000, 200, 50),
    (1_000, 20, 0),
    (10_000, 20, 0),
)


def _step(index: int, failing: bool) -> dict:
    body = json.dumps(
        {
            "order_id": 1000 + index,
            "status": "accepted",
            "lines": [{"sku": f"SKU-{i:04d}", "qty": i, "price_minor": 1299 * i} for i in range(8)],
        }
    )
    return {
        "request": {"method": "POST", "url": f"http://127.0.0.1:8001/v1/orders?i={index}",
                    "headers": {"Content-Type": "application/json", "X-API-Key": "••••••••",
                                "Idempotency-Key": f"ik-{index}"},
                    "body": body, "size": len(body)},
        "response": {"status": 409 if failing else 201, "reason": "Created",
                     "headers": {"Content-Type": "application/json",
                                 "Content-Length": str(len(body))},
                     "body": body, "size": len(body), "sha256": "0" * 64, "truncated": False},
        "timings": {"connect_ms": 0.2, "ttfb_ms": 3.1, "total_ms": 3.4},
        "assertions": [{"path": "response.status", "operator": "eq", "expected": 201,
                        "actual": 409 if failing else 201, "passed": not failing,
                        "evaluated": True, "message": None}],
    }  # fmt: skip


def seed(steps: int, per_scenario: int, fail_every: int) -> int:
    """One finished run with ``steps`` steps; returns its id."""
    import django

    django.setup()
    from django.utils import timezone

    from certification import runs, suites
    from certification.models import Run, ScenarioRun, StepResult
    from partners.models import Partner

    scenarios = steps // per_scenario
    text = f"name: bench-{steps}-{per_scenario}-{fail_every}\ntests:\n" + "".join(
        f"  - name: scenario {i}\n    code: B-{i:03d}\n    steps:\n"
        "      - action: {type: wait, ms: 1}\n"
        for i in range(scenarios)
    )
    suite, _ = suites.suite_store(entry="bench.yaml", sources={"bench.yaml": text}, by="bench")
    partner, _ = Partner.objects.get_or_create(external_id="p_bench", defaults={"name": "Bench"})
    run = runs.run_create(partner=partner, suite=suite, by="bench")
    now = timezone.now()
    rows = []
    n = 0
    for sr in ScenarioRun.objects.filter(run=run).order_by("index"):
        failed_here = False
        for k in range(per_scenario):
            failing = bool(fail_every) and n % fail_every == fail_every - 1
            failed_here |= failing
            rows.append(StepResult(scenario_run=sr, step_index=k, name=f"step {k}",
                                   status="failed" if failing else "passed", started_at=now,
                                   duration_ms=3.4, **_step(n, failing)))  # fmt: skip
            n += 1
        ScenarioRun.objects.filter(pk=sr.pk).update(
            status="failed" if failed_here else "passed", finished_at=now, duration_ms=68.0
        )
    StepResult.objects.bulk_create(rows, batch_size=1000)
    Run.objects.filter(pk=run.pk).update(
        status="failed", finished_at=now, started_at=now, scenarios_done=scenarios
    )
    return run.pk


def build(run_id: int, out: Path) -> None:
    import django

    django.setup()
    from certification.models import Run
    from evidence import bundles, collect, pdf  # noqa: F401  (a worker has them imported)

    started = time.perf_counter()
    source = collect.source_for_run(Run.objects.get(pk=run_id))
    with out.open("wb") as handle:
        bundles.write_bundle(source, handle)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with zipfile.ZipFile(out) as archive:
        pdf_size = archive.getinfo("certificate.pdf").file_size
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "zip": out.stat().st_size,
                      "pdf": pdf_size}))  # fmt: skip


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        run_id, out = sys.argv[2].split(":", 1)
        build(int(run_id), Path(out))
        return
    fresh_pg_database(PG)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    print(f"{'steps':>7} {'scenarios':>9} {'failing':>7} {'build s':>8} {'peak MB':>8} "
          f"{'zip KB':>8} {'pdf KB':>8}")  # fmt: skip
    for steps, per_scenario, fail_every in SIZES:
        seed_call = (
            f"import bench.evidence as b; print(b.seed({steps}, {per_scenario}, {fail_every}))"
        )
        run_id = int(
            subprocess.run(
                [sys.executable, "-c", seed_call],
                cwd=ROOT, check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
        )  # fmt: skip
        out = ROOT / "var" / f"bench-evidence-{steps}-{per_scenario}-{fail_every}.zip"
        command = [sys.executable, __file__, "--build", f"{run_id}:{out}"]
        if hasattr(os, "sched_setaffinity"):
            command = ["taskset", "-c", "0", *command]
        result = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        failing = steps // fail_every if fail_every else 0
        print(f"{steps:>7,} {steps // per_scenario:>9,} {failing:>7,} {figures['seconds']:>8.2f} "
              f"{figures['peak_mb']:>8.0f} "
              f"{figures['zip'] / 1024:>8.0f} {figures['pdf'] / 1024:>8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
