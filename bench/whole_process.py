"""Whole-process benchmark, side by side: prints figures, asserts nothing.

The engine benchmark's workload (200 scenarios x 4 requests with assertions: create an order,
read it back, pay, replay the payment) as a partner's CI runs it, a new process from start-up
to exit, beside the bare aiohttp loop (bench/bare_loop.py, the same requests and checks by
hand, no persistence) on the same sandbox:

- ``manage.py run_suite --inline`` with results persisted, on SQLite and on PostgreSQL
  (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/certdash_bench_whole, recreated);
- at 1 and 10 scenarios at a time (``--parallel``), and one scenario alone (start-up);
- the median of BENCH_REPEAT runs (default 5) of each, with the client's CPU time (user +
  system of the process) per request.

The sandbox is pinned to core 0 and each client process to core 1, so that neither steals
the other's core (on a 1-core machine nothing is pinned).

Run: .venv/bin/python bench/whole_process.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_pg_database  # noqa: E402
from bench.engine import SCENARIO, SCENARIOS  # noqa: E402
from bench.sandbox_process import SandboxProcess  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench_whole")
TWO_CORES = (os.cpu_count() or 1) >= 2
SANDBOX_CPUS, CLIENT_CPUS = ({0}, {1}) if TWO_CORES else (None, None)


def _suite_file(directory: Path, scenarios: int) -> Path:
    path = directory / f"bench-{scenarios}.yaml"
    path.write_text(
        "name: bench-checkout\ntests:" + "".join(SCENARIO.format(i=i) for i in range(scenarios))
    )
    return path


def _prepare(database_url: str) -> None:
    setup = (
        "import django; django.setup(); from django.core.management import call_command; "
        "from partners.models import Partner; call_command('migrate', verbosity=0); "
        "Partner.objects.get_or_create(external_id='p_bench', "
        "defaults={'name': 'Bench', 'modes': ['api']})"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([sys.executable, "-c", setup], cwd=ROOT, env=env, check=True)


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one client process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, CLIENT_CPUS)) if CLIENT_CPUS else None,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"{command[1]} exited {result.returncode}: {result.stderr[-500:]!r}")
    return wall, cpu, result.returncode


def _median(
    sandbox: SandboxProcess, command: Callable[[], list[str]], env: dict[str, str]
) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(REPEAT):
        sandbox.prepare()  # fresh stock: every run passes
        wall, cpu, _code = _timed(command(), env)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    suites = {n: _suite_file(tmp, n) for n in (SCENARIOS, 1)}
    sqlite = f"sqlite:///{tmp / 'bench.sqlite3'}"
    fresh_pg_database(PG)
    for url in (sqlite, PG):
        _prepare(url)
    pinned = "sandbox on core 0, each client on core 1" if TWO_CORES else "1 core: not pinned"
    print(f"(d) whole process, {SCENARIOS} scenarios x 4 requests; median of {REPEAT}; {pinned}")
    print(
        f"    {'client':34} {'c=1 wall':>9} {'c=10 wall':>10} {'CPU ms/req':>11} {'1-scenario':>11}"
    )
    rows: dict[str, tuple[float, float, float, float]] = {}
    with SandboxProcess(cpus=SANDBOX_CPUS) as sandbox:
        base_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}

        def bare(scenarios: int, parallel: int) -> Callable[[], list[str]]:
            return lambda: [
                sys.executable, "bench/bare_loop.py", sandbox.url, "--scenarios", str(scenarios),
                "--parallel", str(parallel),
            ]  # fmt: skip

        def run_suite(scenarios: int, parallel: int) -> Callable[[], list[str]]:
            return lambda: [
                sys.executable, "manage.py", "run_suite", "--partner", "p_bench", "--suite",
                str(suites[scenarios]), "--endpoint", f"api={sandbox.url}", "--inline",
                "--parallel", str(parallel),
            ]  # fmt: skip

        clients = (
            ("bare aiohttp loop (no persistence)", bare, base_env),
            ("run_suite --inline, SQLite", run_suite, {**base_env, "DATABASE_URL": sqlite}),
            ("run_suite --inline, PostgreSQL", run_suite, {**base_env, "DATABASE_URL": PG}),
        )
        for label, make, env in clients:
            _median(sandbox, make(1, 1), env)  # warm up: caches, the suite version stored
            c1, _ = _median(sandbox, make(SCENARIOS, 1), env)
            c10, cpu10 = _median(sandbox, make(SCENARIOS, 10), env)
            one, _ = _median(sandbox, make(1, 1), env)
            per_request = cpu10 * 1000 / (SCENARIOS * 4)
            rows[label] = (c1, c10, per_request, one)
            print(f"    {label:34} {c1:8.3f}s {c10:9.3f}s {per_request:10.2f} {one:10.3f}s")
    bare_c1, bare_c10, _, bare_one = rows["bare aiohttp loop (no persistence)"]
    for label, (c1, c10, _, one) in rows.items():
        if label.startswith("run_suite"):
            print(
                f"    {label}: {c1 / bare_c1:.2f}x the bare loop at c=1, {c10 / bare_c10:.2f}x "
                f"at c=10 (target <= 1.5x); start-up {one:.3f} s (target <= 1 s)"
            )


if __name__ == "__main__":
    main()
