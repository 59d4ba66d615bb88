"""Real Celery worker processes for tests: the same command production uses, pointed at the test
database and a queue of the test's own so that no other worker takes its tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def worker_process(*, concurrency: int = 1, pool: str = "solo") -> Iterator[WorkerHandle]:
    queue = f"test-{uuid.uuid4().hex[:10]}"
    log_path = Path(settings.VAR_DIR) / f"{queue}.log"
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", f"{queue}@%h",
        f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO",
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    handle = WorkerHandle(queue=queue, process=process, log_path=log_path)
    try:
        yield handle
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log_path.unlink(missing_ok=True)


class WorkerHandle:
    def __init__(self, *, queue: str, process: subprocess.Popen, log_path: Path) -> None:
        self.queue = queue
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], *, timeout: float = 60) -> None:
        """Poll ``condition`` until it holds; fail with the worker's log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout}s; worker log:\n{self.log()}")
