"""Engine benchmark: prints figures, asserts nothing.

(a) 200 scenarios x 4 requests (create order, read it back, pay, replay the payment with the same
    idempotency key; assertions on each) by the engine alone, sequential and 10 scenarios at a
    time, against a bare aiohttp loop doing the same requests and checks;
(b) the same suite through `manage.py run_suite --inline` with results persisted, on SQLite and
    on PostgreSQL (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/certdash_bench);
(c) a latencyProbe of 2,000 requests at concurrency 50 against a 20 ms server delay: wall time
    against the ideal 0.8 s, and p50/p95/p99 against the sandbox's own handling times.

Run: .venv/bin/python bench/engine.py   (or `make bench`)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.bare_loop import bare_probe, bare_suite  # noqa: E402
from bench.common import fresh_pg_database  # noqa: E402
from bench.sandbox_process import SandboxProcess  # noqa: E402
from certification.engine.histogram import Histogram  # noqa: E402
from certification.engine.model import EndpointConfig, RunContext  # noqa: E402
from certification.engine.netpolicy import AddressPolicy  # noqa: E402
from certification.engine.runner import run_suite  # noqa: E402
from certification.engine.spec import parse_suite  # noqa: E402

SCENARIOS = 200
POLICY = AddressPolicy(["127.0.0.0/8"])
SCENARIO = """
  - name: order {i}
    code: B-{i:03d}
    steps:
      - name: create order
        action:
          type: httpRequest
          method: POST
          url: /v1/orders
          body: {{customerId: 1, items: [{{sku: WIDGET-001, quantity: 1}}]}}
        assertions:
          - assertions:
              - {{path: response.status, operator: eq, value: 201}}
              - {{path: response.body.order.totalCents, operator: eq, value: 999}}
        extract: {{orderId: response.body.order.id}}
      - name: read it back
        action: {{type: httpRequest, method: GET, url: "/v1/orders/{{{{orderId}}}}"}}
        assertions:
          - assertions:
              - {{path: response.status, operator: eq, value: 200}}
              - {{path: response.body.order.id, operator: eq, value: "{{{{orderId}}}}"}}
      - name: pay
        action:
          type: httpRequest
          method: POST
          url: "/v1/orders/{{{{orderId}}}}/pay"
          headers: {{Idempotency-Key: "pay-{{{{orderId}}}}"}}
          body: {{paymentMethod: pm_test_visa}}
        assertions:
          - assertions:
              - {{path: response.status, operator: eq, value: 200}}
              - {{path: response.body.order.status, operator: eq, value: paid}}
        extract: {{paymentId: response.body.payment.id}}
      - name: replay the payment
        action:
          type: httpRequest
          method: POST
          url: "/v1/orders/{{{{orderId}}}}/pay"
          headers: {{Idempotency-Key: "pay-{{{{orderId}}}}"}}
          body: {{paymentMethod: pm_test_visa}}
        assertions:
          - assertions:
              - {{path: response.status, operator: eq, value: 200}}
              - {{path: response.body.payment.id, operator: eq, value: "{{{{paymentId}}}}"}}
"""


def workload_yaml() -> str:
    return "name: bench-checkout\ntests:" + "".join(SCENARIO.format(i=i) for i in range(SCENARIOS))


def context(url: str) -> RunContext:
    return RunContext(
        endpoints={"api": EndpointConfig(name="api", base_url=url)}, default_endpoint="api"
    )


def engine_alone(server: SandboxProcess, parallel: int) -> tuple[float, int]:
    server.prepare()
    suite = parse_suite(workload_yaml(), filename="bench.yaml")
    started = time.perf_counter()
    outcomes = asyncio.run(run_suite(suite, context(server.url), policy=POLICY, parallel=parallel))
    elapsed = time.perf_counter() - started
    failed = sum(o.status != "passed" for o in outcomes)
    return elapsed, failed


def bare_loop(server: SandboxProcess, parallel: int) -> tuple[float, int]:
    server.prepare()
    started = time.perf_counter()
    failed = asyncio.run(bare_suite(server.url, SCENARIOS, parallel))
    return time.perf_counter() - started, failed


def persisted(database_url: str, sandbox_url: str) -> str:
    """Run the workload through run_suite --inline in a child process on one database."""
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "bench.yaml"
        suite.write_text(workload_yaml())
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        code = f"""
import time, django
django.setup()
from django.core.management import call_command
from partners.models import Partner
call_command("migrate", verbosity=0)
Partner.objects.get_or_create(external_id="p_bench", defaults={{"name": "Bench", "modes": ["api"]}})
started = time.perf_counter()
call_command("run_suite", "--partner", "p_bench", "--suite", {str(suite)!r},
             "--endpoint", "api={sandbox_url}", "--inline", "--parallel", "10", verbosity=0,
             stdout=open("/dev/null", "w"))
print(f"{{time.perf_counter() - started:.3f}}")
"""
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            return f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}"
        return f"{float(result.stdout.strip().splitlines()[-1]):.3f} s"


def _bare_probe(url: str, requests: int, concurrency: int) -> Histogram:
    """The same closed-model probe with a bare aiohttp loop, for comparison."""
    histogram = Histogram()
    histogram.record_many(asyncio.run(bare_probe(url, requests, concurrency)))
    return histogram


def latency_probe() -> dict[str, Any]:
    text = """
name: probe
tests:
  - name: probe
    steps:
      - action: {type: latencyProbe, method: GET, url: /health, requests: 2000, concurrency: 50}
"""
    with SandboxProcess(delay_ms=20) as server:
        suite = parse_suite(text, filename="probe.yaml")
        asyncio.run(run_suite(suite, context(server.url), policy=POLICY))  # warm up
        server.prepare()
        (outcome,) = asyncio.run(run_suite(suite, context(server.url), policy=POLICY))
        truth = Histogram()
        truth.record_many(server.server_timings())
        server.prepare()
        bare = _bare_probe(server.url, 2000, 50)
        bare_truth = Histogram()
        bare_truth.record_many(server.server_timings())
    latency = outcome.steps[0].latency
    return {"engine": latency, "server": truth, "bare": bare, "bare_server": bare_truth}


def main() -> None:
    with SandboxProcess() as server:
        requests = SCENARIOS * 4
        print(f"(a) {SCENARIOS} scenarios x 4 requests, engine alone (no database)")
        rows = {}
        for label, fn, parallel in (
            ("bare aiohttp loop, sequential", bare_loop, 1),
            ("engine, sequential", engine_alone, 1),
            ("bare aiohttp loop, 10 in parallel", bare_loop, 10),
            ("engine, 10 scenarios in parallel", engine_alone, 10),
        ):
            fn(server, parallel)  # warm up
            elapsed, failed = fn(server, parallel)
            rows[label] = elapsed
            print(
                f"    {label:36} {elapsed:6.3f} s  {requests / elapsed:8.0f} steps/s"
                f"  ({failed} scenarios not passed)"
            )
        for mode in ("sequential", "10 in parallel"):
            bare = rows[f"bare aiohttp loop, {mode}"]
            engine = rows[
                "engine, sequential" if mode == "sequential" else "engine, 10 scenarios in parallel"
            ]
            ratio = bare / engine
            print(f"    engine throughput / bare loop ({mode}): {ratio:.2f}x (target >= 0.7)")

        print("(b) the same suite through run_suite --inline, results persisted, 10 in parallel")
        sqlite = Path(tempfile.mkdtemp()) / "bench.sqlite3"
        server.prepare()
        print(f"    SQLite      {persisted(f'sqlite:///{sqlite}', server.url)}  (target <= 1.5 s)")
        pg = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench")
        fresh_pg_database(pg)
        server.prepare()
        print(f"    PostgreSQL  {persisted(pg, server.url)}  (target <= 1.5 s)")
        print("    whole process, start-up to exit, beside a bare loop: bench/whole_process.py")

    print("(c) latencyProbe: 2,000 requests at concurrency 50, server delay 20 ms")
    probe = latency_probe()
    engine, server_truth = probe["engine"], probe["server"]
    print(f"    wall time {engine.wall_ms / 1000:.3f} s (ideal 0.800 s, target <= 1.000 s)")
    for pct in ("p50", "p95", "p99"):
        ours = getattr(engine, pct)
        truth = server_truth.percentile(float(pct[1:]))
        bare = probe["bare"].percentile(float(pct[1:]))
        bare_truth = probe["bare_server"].percentile(float(pct[1:]))
        print(
            f"    {pct}: engine {ours:6.2f} ms vs sandbox {truth:6.2f} ms ({ours - truth:+.2f}); "
            f"bare aiohttp {bare:6.2f} ms vs sandbox {bare_truth:6.2f} ms "
            f"({bare - bare_truth:+.2f})"
        )


if __name__ == "__main__":
    main()
