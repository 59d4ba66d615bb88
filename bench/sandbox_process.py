"""The demo sandbox in a process of its own, so that benchmarks do not share the client's
interpreter (and its GIL) with the server they measure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxProcess:
    def __init__(
        self, *, delay_ms: float = 0, jitter_ms: float = 0, cpus: set[int] | None = None
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.cpus = cpus  # pin the sandbox to these cores (the benchmark's client gets the rest)

    def __enter__(self) -> SandboxProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo.sandbox", "--port", str(self.port),
             "--delay-ms", str(self.delay_ms), "--jitter-ms", str(self.jitter_ms)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the demo sandbox did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def post(self, path: str) -> None:
        request = urllib.request.Request(f"{self.url}{path}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).read()

    def prepare(self) -> None:
        """Seed state with ample stock, and a fresh timing record."""
        self.post("/sandbox/reset")
        self.post("/sandbox/restock")
        self.post("/sandbox/timings/reset")

    def server_timings(self) -> list[float]:
        with urllib.request.urlopen(f"{self.url}/sandbox/timings", timeout=10) as response:
            return json.loads(response.read())["timings_ms"]
