"""Real Celery processes for tests: the same commands production uses, pointed at the test
database and at a queue of the test's own so that no other worker takes its tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def new_queue() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


class CeleryProcess:
    def __init__(self, *, name: str, process: subprocess.Popen, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """The prefork pool's child processes."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def kill_all(self) -> None:
        """SIGKILL the worker and its pool at once, as a lost machine or the OOM killer would."""
        os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Pool processes of a killed worker may linger: make sure nothing outlives the test.
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def wait_for(self, condition: Callable[[], bool], *, timeout: float = 60) -> None:
        """Poll ``condition`` until it holds; fail with the process log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"{self.name} exited ({code}):\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s; {self.name} log:\n{self.log()}")


def _start(
    args: list[str], *, name: str, queue: str, env: dict[str, str], app: str = "config"
) -> CeleryProcess:
    log_path = Path(settings.VAR_DIR) / f"{name}.log"
    full_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, *args],
            cwd=settings.BASE_DIR,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the test can kill it whole
        )
    return CeleryProcess(name=name, process=process, log_path=log_path)


@contextmanager
def celery_workers(
    count: int = 1,
    *,
    queue: str | None = None,
    concurrency: int = 1,
    pool: str = "solo",
    beat: bool = False,
    env: dict[str, str] | None = None,
    app: str = "config",
) -> Iterator[list[CeleryProcess]]:
    """Start ``count`` workers (and optionally beat) on one queue; stop them all afterwards.
    ``app`` is the Celery app module the workers load (tests may wrap the product's)."""
    queue = queue or new_queue()
    env = env or {}
    with ExitStack() as stack:
        processes = []
        for i in range(count):
            name = f"{queue}-w{i}"
            worker = _start(
                ["worker", "-Q", queue, "-n", f"{name}@%h", f"--pool={pool}",
                 f"--concurrency={concurrency}", "--loglevel=INFO", "--without-mingle",
                 "--without-gossip"],
                name=name, queue=queue, env=env, app=app,
            )  # fmt: skip
            stack.callback(worker.stop)
            processes.append(worker)
        if beat:
            schedule = Path(settings.VAR_DIR) / f"{queue}-beat-schedule"
            stack.callback(lambda: schedule.unlink(missing_ok=True))
            process = _start(
                ["beat", "--loglevel=INFO", f"--schedule={schedule}"],
                name=f"{queue}-beat",
                queue=queue,
                env=env,
            )
            stack.callback(process.stop)
            processes.append(process)
        for process in processes:
            process.queue = queue  # type: ignore[attr-defined]
        yield processes


@contextmanager
def worker_process(**kwargs: object) -> Iterator[CeleryProcess]:
    with celery_workers(1, **kwargs) as (worker,):  # type: ignore[arg-type]
        yield worker
