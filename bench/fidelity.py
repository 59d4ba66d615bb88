"""Latency-fidelity benchmark: prints figures, asserts nothing.

A latencyProbe (closed model: N requests, C at a time) against the demo sandbox answering in
50 ± 10 ms, at concurrency 1, 10 and 50, beside a bare aiohttp loop sending the same requests.
The sandbox is pinned to core 0 and each client, a process of its own, to core 1, so the client
is measured on a core it does not share. For each level it prints the client's p50/p95 against
the sandbox's own handling times for the same requests (the truth), the difference, and the
client's CPU (its process's CPU time over the wall time, as the probe reports it).

Three clients: ``manage.py run_suite --inline`` (whole process, results persisted in SQLite,
figures from its ``--json`` export), the engine's ``run_suite`` alone in a process (at 10 and
50 also with the probe spread over 2 processes, ``processes: 2``; pinned, both share the
client's core, so this row shows what splitting costs, not what a second core gains), and
the bare loop.

Run: .venv/bin/python bench/fidelity.py   (needs 2 cores; on 1 core nothing is pinned)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEVELS = ((1, 200), (10, 1000), (50, 3000))  # (concurrency, requests)
DELAY_MS, JITTER_MS = 50.0, 10.0
TWO_CORES = (os.cpu_count() or 1) >= 2
SANDBOX_CPUS, CLIENT_CPUS = ({0}, {1}) if TWO_CORES else (None, None)


def _engine_child(url: str, requests: int, concurrency: int, processes: int = 1) -> dict[str, Any]:
    from certification.engine.model import EndpointConfig, RunContext
    from certification.engine.netpolicy import AddressPolicy
    from certification.engine.runner import run_suite
    from certification.engine.spec import parse_suite

    suite = parse_suite(_probe_yaml(requests, concurrency, processes), filename="probe.yaml")
    context = RunContext(
        endpoints={"api": EndpointConfig(name="api", base_url=url)}, default_endpoint="api"
    )
    (outcome,) = asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"])))
    latency = outcome.steps[0].latency
    return {
        "p50": latency.p50, "p95": latency.p95, "ok": latency.ok,
        "cpu": getattr(latency, "client_cpu_percent", None) or 0.0, "wall_ms": latency.wall_ms,
    }  # fmt: skip


def _bare_child(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    from bench.bare_loop import bare_probe
    from certification.engine.histogram import Histogram

    wall, cpu = time.perf_counter(), time.process_time()
    histogram = Histogram()
    histogram.record_many(asyncio.run(bare_probe(url, requests, concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "p50": histogram.percentile(50), "p95": histogram.percentile(95), "ok": histogram.count,
        "cpu": round(100 * cpu / wall, 1), "wall_ms": wall * 1000,
    }  # fmt: skip


def _probe_yaml(requests: int, concurrency: int, processes: int = 1) -> str:
    return (
        "name: probe\ntests:\n  - name: probe\n    steps:\n      - action: {type: latencyProbe, "
        f"method: GET, url: /health, requests: {requests}, concurrency: {concurrency}, "
        f"processes: {processes}}}\n"
    )


def _run_suite_client(database_url: str, url: str, requests: int, concurrency: int) -> dict:
    """The probe as a partner's CI runs it: ``manage.py run_suite --inline``, whole process,
    results persisted; figures read back from its ``--json`` export."""
    with tempfile.TemporaryDirectory() as tmp:
        suite, out = Path(tmp) / "probe.yaml", Path(tmp) / "run.json"
        suite.write_text(_probe_yaml(requests, concurrency))
        subprocess.run(
            [sys.executable, "manage.py", "run_suite", "--partner", "p_bench", "--suite",
             str(suite), "--endpoint", f"api={url}", "--inline", "--json", str(out)],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, capture_output=True,
            check=False,
            preexec_fn=(lambda: os.sched_setaffinity(0, CLIENT_CPUS)) if CLIENT_CPUS else None,
        )  # fmt: skip
        latency = json.loads(out.read_text())["scenarios"][0]["steps"][0]["latency"]
    return {
        "p50": latency["p50"], "p95": latency["p95"], "ok": latency["ok"],
        "cpu": latency.get("client_cpu_percent") or 0.0, "wall_ms": latency["wall_ms"],
    }  # fmt: skip


def _prepare_database(database_url: str) -> None:
    setup = (
        "import django; django.setup(); from django.core.management import call_command; "
        "from partners.models import Partner; call_command('migrate', verbosity=0); "
        "Partner.objects.get_or_create(external_id='p_bench', "
        "defaults={'name': 'Bench', 'modes': ['api']})"
    )
    subprocess.run(
        [sys.executable, "-c", setup], cwd=ROOT, check=True,
        env={**os.environ, "DATABASE_URL": database_url,
             "DJANGO_SETTINGS_MODULE": "config.settings"},
    )  # fmt: skip


def _client(kind: str, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, url, str(requests), str(concurrency)],
        cwd=ROOT, capture_output=True, text=True, check=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, CLIENT_CPUS)) if CLIENT_CPUS else None,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from bench.sandbox_process import SandboxProcess
    from certification.engine.histogram import Histogram

    pinned = "sandbox on core 0, client on core 1" if TWO_CORES else "one core: not pinned"
    print(f"latencyProbe fidelity against {DELAY_MS:g} ± {JITTER_MS:g} ms ({pinned})")
    print("    conc  requests | client        p50     p95 | sandbox p95 |  Δp95  | client CPU")
    database = f"sqlite:///{tempfile.mkdtemp()}/fidelity.sqlite3"
    _prepare_database(database)
    with SandboxProcess(delay_ms=DELAY_MS, jitter_ms=JITTER_MS, cpus=SANDBOX_CPUS) as sandbox:
        _client("bare", sandbox.url, 50, 10)  # warm up the sandbox
        for concurrency, requests in LEVELS:
            kinds = [("run_suite", "run_suite"), ("engine", "engine alone"),
                     ("bare", "bare aiohttp")]  # fmt: skip
            if concurrency >= 10:
                kinds.insert(2, ("engine2", "2 processes"))
            for kind, label in kinds:
                sandbox.prepare()
                if kind == "run_suite":
                    measured = _run_suite_client(database, sandbox.url, requests, concurrency)
                else:
                    measured = _client(kind, sandbox.url, requests, concurrency)
                truth = Histogram()
                truth.record_many(sandbox.server_timings())
                server_p95 = truth.percentile(95)
                print(
                    f"    {concurrency:4} {requests:9} | {label:12} {measured['p50']:7.2f} "
                    f"{measured['p95']:7.2f} | {server_p95:11.2f} | "
                    f"{measured['p95'] - server_p95:+6.2f} | {measured['cpu']:5.1f} %"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, url, requests, concurrency = sys.argv[2:6]
        if kind.startswith("engine"):
            processes = 2 if kind == "engine2" else 1
            print(json.dumps(_engine_child(url, int(requests), int(concurrency), processes)))
        else:
            print(json.dumps(_bare_child(url, int(requests), int(concurrency))))
    else:
        main()
