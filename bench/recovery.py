"""Recovery-after-SIGKILL benchmark: prints figures, asserts nothing.

A run of 50 scenarios x 10 requests (15 ms server delay) executed by two Celery workers
(prefork, concurrency 2 each) with beat running, all on the default settings (lease, sweep and
visibility timeout untouched). One unkilled run measures the run time; then, in each of
BENCH_TRIALS trials (default 20), fresh workers start, a run starts, and at a uniformly random
10%-90% of that run time one worker is SIGKILLed whole (its process group: the main process and
its pool, as a lost machine or the OOM killer would). Recovery is the time from the kill to the
finished run (target: <= 15 s in every trial); each run is also checked for status passed and
exactly one step result per scenario, step and iteration.

Needs PostgreSQL and Redis: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/
certdash_bench_recovery, recreated) and BENCH_BROKER_URL (default redis://127.0.0.1:6379/13).
BENCH_SEED fixes the kill points. Worker and beat logs go to a directory under /tmp, removed at
the end unless a trial was slow or wrong.
Run: .venv/bin/python bench/recovery.py   (BENCH_TRIALS=2 for a quick look)
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.workers import CeleryProcess  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/certdash_bench_recovery")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
TRIALS = int(os.environ.get("BENCH_TRIALS", "20"))
SEED = int(os.environ.get("BENCH_SEED", str(random.randrange(1_000_000))))
os.environ["DATABASE_URL"] = PG
os.environ["CELERY_BROKER_URL"] = BROKER
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
QUEUE = f"bench-recovery-{uuid.uuid4().hex[:8]}"
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE

SCENARIOS = 50
STEPS = 10
DELAY_MS = 15
WORKERS = 2
CONCURRENCY = 2
KILL_RANGE = (0.1, 0.9)  # of the unkilled run's time
BUDGET_S = 15.0
RUN_DEADLINE_S = 120.0


def suite_yaml() -> str:
    step = (
        "      - action: {type: httpRequest, method: GET, url: /health}\n"
        "        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]\n"
    )
    scenarios = "".join(
        f"  - name: scenario {i}\n    steps:\n" + step * STEPS for i in range(SCENARIOS)
    )
    return "name: recovery\ntests:\n" + scenarios


def _celery(args: list[str], *, name: str, log_path: Path) -> CeleryProcess:
    """One `celery -A config ...` process in a session (process group) of its own, handled as
    the crash tests handle theirs (``tests.workers.CeleryProcess``: kill_all, stop)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return CeleryProcess(name=name, process=process, log_path=log_path)


def start_worker(name: str, log_dir: Path) -> CeleryProcess:
    return _celery(
        ["worker", "-Q", QUEUE, "-n", f"{name}@%h", "--pool=prefork",
         f"--concurrency={CONCURRENCY}", "--without-mingle", "--without-gossip",
         "--loglevel=WARNING"],
        name=name, log_path=log_dir / f"{name}.log",
    )  # fmt: skip


def start_beat(name: str, log_dir: Path) -> CeleryProcess:
    return _celery(
        ["beat", "--loglevel=WARNING", f"--schedule={log_dir / f'{name}-schedule'}"],
        name=name,
        log_path=log_dir / f"{name}.log",
    )


def wait_until_consuming(names: list[str]) -> None:
    from certification.models import WorkerHeartbeat
    from certification.tasks import heartbeat

    nonce = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in names:
            heartbeat.delay(nonce)
        time.sleep(0.3)
        seen = set(WorkerHeartbeat.objects.filter(nonce=nonce).values_list("hostname", flat=True))
        if all(any(h.startswith(f"{n}@") for h in seen) for n in names):
            return
    raise RuntimeError(f"workers {names} did not start")


def purge_queue() -> int:
    from config.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(QUEUE) or 0


def drop_broker_leftovers() -> None:
    """Remove what the killed workers left in Redis for this bench's queue: their messages
    stay unacknowledged for the visibility timeout (an hour), then would be put back."""
    if not BROKER.startswith(("redis://", "rediss://")):
        return
    import json

    import redis

    client = redis.Redis.from_url(BROKER)
    for tag, value in client.hscan_iter("unacked"):
        with suppress(ValueError, TypeError, IndexError):
            _message, _exchange, routing_key = json.loads(value)
            if routing_key == QUEUE:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    client.delete(QUEUE, f"_kombu.binding.{QUEUE}", f"_kombu.binding_permanent.{QUEUE}")


def wait_finished(run_pk: int, deadline_s: float) -> float | None:
    """Poll until the run is finished; its monotonic time, or None past the deadline."""
    from certification.models import Run

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if Run.objects.get(pk=run_pk).is_finished:
            return time.monotonic()
        time.sleep(0.02)
    return None


def check_run(run_pk: int) -> str:
    """'ok', or what is wrong with the run's status and step results."""
    from certification.models import Run, StepResult

    run = Run.objects.get(pk=run_pk)
    keys = list(
        StepResult.objects.filter(scenario_run__run=run).values_list(
            "scenario_run__index", "step_index", "iteration"
        )
    )
    problems = []
    if run.status != "passed":
        problems.append(f"status {run.status}" + (f" ({run.error[:120]})" if run.error else ""))
    expected = SCENARIOS * STEPS
    if len(keys) != expected:
        problems.append(f"{len(keys)} step results, expected {expected}")
    duplicates = len(keys) - len(set(keys))
    if duplicates:
        problems.append(f"{duplicates} duplicated step results")
    return "ok" if not problems else "; ".join(problems)


def describe_scenarios(run_pk: int, killed_wall: datetime, victim: str) -> list[str]:
    """The scenario runs that explain a slow recovery: retried ones, the victim's, and the
    last to finish, with their times relative to the kill."""
    from certification.models import ScenarioRun

    rows = list(
        ScenarioRun.objects.filter(run_id=run_pk).values(
            "index", "status", "attempts", "queued_at", "claimed_at", "finished_at", "claimed_by"
        )
    )
    last = sorted(rows, key=lambda r: r["finished_at"] or killed_wall)[-3:]
    chosen = {r["index"]: r for r in rows if r["attempts"] >= 2 or victim in r["claimed_by"]}
    chosen.update({r["index"]: r for r in last})

    def rel(value: datetime | None) -> str:
        return f"{(value - killed_wall).total_seconds():+6.2f}" if value else "     -"

    return [
        f"        scenario {r['index']:2d} {r['status']:7s} attempts {r['attempts']} "
        f"queued {rel(r['queued_at'])} claimed {rel(r['claimed_at'])} "
        f"finished {rel(r['finished_at'])} s  by {r['claimed_by']}"
        for r in sorted(chosen.values(), key=lambda r: r["index"])
    ]


def stop_all(processes: list[CeleryProcess]) -> None:
    for process in processes:
        with suppress(Exception):
            process.stop()


def main() -> None:
    from bench.common import bench_partner_and_suite, fresh_pg_database

    fresh_pg_database(PG)
    import django

    django.setup()
    from django.utils import timezone

    from bench.sandbox_process import SandboxProcess
    from certification import runs
    from certification.models import ScenarioRun

    partner, suite = bench_partner_and_suite("recovery.yaml", suite_yaml())
    rng = random.Random(SEED)
    log_dir = Path(tempfile.mkdtemp(prefix="certdash-bench-recovery-"))
    keep_logs = False
    print(
        f"{SCENARIOS} scenarios x {STEPS} requests ({DELAY_MS} ms server delay) on {WORKERS} "
        f"workers (--pool=prefork --concurrency={CONCURRENCY}) + beat, default settings; "
        f"{TRIALS} trials, seed {SEED}"
    )

    def start(label: str) -> tuple[list[CeleryProcess], CeleryProcess]:
        workers = [start_worker(f"{QUEUE}-{label}-w{i}", log_dir) for i in range(WORKERS)]
        beat = start_beat(f"{QUEUE}-{label}-beat", log_dir)
        wait_until_consuming([w.name for w in workers])
        return workers, beat

    def start_run(url: str) -> tuple[int, float]:
        run = runs.start_run(
            partner=partner, suite=suite, by="bench", endpoint_overrides={"api": url}
        )
        return run.pk, time.monotonic()

    recoveries: list[float] = []
    wrong = 0
    try:
        with SandboxProcess(delay_ms=DELAY_MS) as sandbox:
            workers, beat = start("base")
            try:
                run_pk, started = start_run(sandbox.url)
                finished = wait_finished(run_pk, RUN_DEADLINE_S)
            finally:
                stop_all([*workers, beat])
                purge_queue()
            if finished is None:
                print(f"    unkilled run not finished within {RUN_DEADLINE_S:.0f} s")
                return
            run_time = finished - started
            print(f"    unkilled run: {run_time:.2f} s, {check_run(run_pk)}")

            for trial in range(1, TRIALS + 1):
                workers, beat = start(f"t{trial:02d}")
                victim = rng.choice(workers)
                fraction = rng.uniform(*KILL_RANGE)
                try:
                    run_pk, started = start_run(sandbox.url)
                    time.sleep(max(0.0, started + fraction * run_time - time.monotonic()))
                    victim.kill_all()
                    killed = time.monotonic()
                    killed_wall = timezone.now()
                    held = ScenarioRun.objects.filter(
                        run_id=run_pk, status="running", claimed_by__startswith=f"{victim.name}@"
                    ).count()
                    finished = wait_finished(run_pk, RUN_DEADLINE_S)
                finally:
                    stop_all([*workers, beat])
                    purge_queue()
                kill_s = killed - started
                verdict = check_run(run_pk)
                retried = ScenarioRun.objects.filter(run_id=run_pk, attempts__gte=2).count()
                if finished is None:
                    recovery_text = f"> {RUN_DEADLINE_S:.0f} s (not finished)"
                    recoveries.append(float("inf"))
                else:
                    recovery = max(0.0, finished - killed)
                    recoveries.append(recovery)
                    recovery_text = f"{recovery:5.2f} s"
                print(
                    f"    trial {trial:2d}: killed at {kill_s / run_time:4.0%} ({kill_s:5.2f} s) "
                    f"holding {held} scenario(s); recovered in {recovery_text}; "
                    f"{retried} re-run; {verdict}"
                )
                if verdict != "ok":
                    wrong += 1
                if verdict != "ok" or recoveries[-1] > BUDGET_S:
                    keep_logs = True
                    print(f"        killed {victim.name}; logs in {log_dir}")
                    for line in describe_scenarios(run_pk, killed_wall, victim.name):
                        print(line)
    finally:
        drop_broker_leftovers()
        if keep_logs:
            print(f"    worker and beat logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)

    finite = sorted(r for r in recoveries if r != float("inf"))
    within = sum(1 for r in recoveries if r <= BUDGET_S)
    summary: list[str] = []
    if finite:
        summary.append(
            f"min {finite[0]:.2f} s / median {statistics.median(finite):.2f} s / "
            f"max {finite[-1]:.2f} s"
        )
    if len(finite) < len(recoveries):
        summary.append(f"{len(recoveries) - len(finite)} not finished")
    print(f"    recovery: {', '.join(summary) or 'no trials'}")
    print(
        f"    {within}/{len(recoveries)} trials recovered within {BUDGET_S:.0f} s; "
        f"{len(recoveries) - wrong}/{len(recoveries)} runs complete and passed"
    )


if __name__ == "__main__":
    main()
