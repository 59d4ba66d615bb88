"""Webhook inbox and hosted-mock benchmark: prints figures, asserts nothing (not in ``make test``).

One web process (gunicorn, one worker, ``--threads`` threads) serves the product on PostgreSQL.
The benchmark

1. delivers ``DELIVERIES`` webhooks signed with the playbook profile (unique event ids: each one
   verified, recorded and processed) from ``CONCURRENCY`` concurrent clients, and prints the
   deliveries accepted per second (wall clock, 200 answers only) with the latency percentiles;
2. times ``SAMPLES`` requests, one at a time, to a hosted mock with no delay and as many to
   ``/healthz`` (one ``SELECT 1``: the same server's floor), and prints the p50/p99 of each and
   what the mock adds at p99.

The client runs in this process (aiohttp); the server on its own. Figures depend on the machine:
the script prints the CPU count and a CPU reference (a fixed sha256 loop) beside them.

Needs PostgreSQL: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/certdash_bench_inbox;
dropped and recreated). Run: .venv/bin/python bench/inbox.py [--deliveries 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import fresh_pg_database  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench_inbox")
SECRET = "whsec_bench_0123456789abcdef"
MOCK_SUITE = """name: bench-mocks
items:
  - {type: MOCK, name: stripe, mockTarget: api.stripe.com, mockPath: /v1/charges,
     mockResponseStatus: 200, mockResponseBody: {id: ch_bench, status: succeeded}}
tests:
  - name: idle
    steps:
      - action: {type: wait, ms: 0}
"""


def _env(port: int) -> dict[str, str]:
    return dict(
        os.environ,
        DATABASE_URL=PG,
        CELERY_BROKER_URL="memory://",
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_LEVEL="ERROR",
    )


def setup(port: int) -> tuple[str, str]:
    """Migrate, then create a partner with an inbox and a running run with one mock; returns the
    inbox URL and the mock URL."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=_env(port),
        check=True,
    )
    os.environ.update(_env(port))
    import django

    django.setup()
    from certification.models import Run
    from certification.runs import run_create
    from certification.suites import suite_store
    from partners import crypto, services
    from partners.models import Partner, WebhookSecret

    partner = Partner.objects.create(external_id="p_bench", name="Bench Partner")
    services.endpoint_save(
        partner=partner, by="bench", name="api", base_url="http://127.0.0.1:9",
        is_default=True, auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip
    row = WebhookSecret(partner=partner, endpoint_url="https://bench.example/webhooks/orders")
    row.save()
    row.secret_sealed = crypto.seal_secrets({"secret": SECRET}, aad=row.secrets_aad)
    row.save()
    suite, _ = suite_store(entry="m.yaml", sources={"m.yaml": MOCK_SUITE}, by="bench")
    run = run_create(partner=partner, suite=suite, by="bench")
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, started_at=run.created_at)
    return partner.inbox_url(row.name), f"{partner.mock_base_url}/api.stripe.com/v1/charges"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, threads: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "1", "--threads",
         str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "error"],
        cwd=ROOT, env=_env(port),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the web process did not start")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


async def deliveries(url: str, count: int, concurrency: int) -> tuple[float, int, list[float]]:
    import aiohttp

    from certification.engine.signatures import sign

    bodies = [
        json.dumps({"id": f"evt_{i}", "type": "order.created", "data": {"n": i}}).encode()
        for i in range(count)
    ]
    latencies: list[float] = []
    accepted = 0
    queue = iter(bodies)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for body in queue:
            headers = {"Content-Type": "application/json", **sign("playbook", SECRET, body)}
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    accepted += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return wall, accepted, latencies


async def one_at_a_time(url: str, samples: int, *, post: bool) -> list[float]:
    import aiohttp

    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(samples + 20):
            started = time.perf_counter()
            if post:
                request = session.post(url, json={"amount": 2498, "n": i},
                                       headers={"X-Origin": "payment-service"})  # fmt: skip
            else:
                request = session.get(url)
            async with request as response:
                await response.read()
            if i >= 20:  # warm-up
                out.append((time.perf_counter() - started) * 1000)
    return out


def cpu_reference() -> float:
    started = time.perf_counter()
    digest = b"x"
    for _ in range(200_000):
        digest = hashlib.sha256(digest).digest()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    port = free_port()
    fresh_pg_database(PG)
    inbox, mock = setup(port)
    server = start_server(port, args.threads)
    try:
        print(f"cpus {os.cpu_count()}, CPU reference {cpu_reference():.0f} ms (200k sha256)")
        print(f"web: gunicorn, 1 worker, {args.threads} threads, PostgreSQL")
        wall, accepted, lat = asyncio.run(deliveries(inbox, args.deliveries, args.concurrency))
        print(
            f"inbox: {accepted}/{args.deliveries} signed webhooks accepted in {wall:.2f} s = "
            f"{accepted / wall:.0f}/s at concurrency {args.concurrency}; latency p50 "
            f"{pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms"
        )
        floor = asyncio.run(one_at_a_time(f"http://127.0.0.1:{port}/healthz", args.samples,
                                          post=False))  # fmt: skip
        mocked = asyncio.run(one_at_a_time(mock, args.samples, post=True))
        print(
            f"hosted mock (no delay), {args.samples} requests one at a time: p50 "
            f"{statistics.median(mocked):.2f} ms, p99 {pct(mocked, 99):.2f} ms; /healthz p50 "
            f"{statistics.median(floor):.2f} ms, p99 {pct(floor, 99):.2f} ms; the mock adds "
            f"{pct(mocked, 99) - pct(floor, 99):.2f} ms at p99 "
            f"({statistics.median(mocked) - statistics.median(floor):.2f} ms at p50)"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
