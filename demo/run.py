"""``make run``: the demo sandbox, the dashboard, a Celery worker and Celery beat, supervised.

``python -m demo.run --port 8000 --sandbox-port 8001`` migrates the database, starts the demo
sandbox, loads the demo data (``manage.py demo_setup --demo-run``: the demo run is made only
when Acme Retail has no run yet, so a restart adds none), then starts the worker, beat and the
web server. It prints ``Dashboard on http://…/`` once, when the demo data is loaded and the web
server answers ``/healthz``.

What it guarantees on the way out: SIGINT (Ctrl-C), SIGTERM or SIGHUP reach each child once, as
one SIGTERM to the child's own process group (every child runs in a session of its own, so a
Ctrl-C in the terminal reaches this process only, and nothing is signalled twice); children
still running after ``STOP_GRACE_S`` are killed; the exit status is 0 and nothing but a line
saying so is printed. A child that stops by itself stops everything, with exit status 1 and the
end of its log. Only children not yet reaped are signalled, so a recycled process id is never hit.

The web server is Django's development server with ``DEBUG`` off (``--insecure`` still serves the
static files, ``--noreload`` keeps it one process): a partner user sees the product's own 404 and
500 pages, never Django's technical pages with the URL patterns. The worker, beat, web server and
sandbox write to ``worker.log``, ``beat.log``, ``web.log`` and ``sandbox.log`` in the var
directory (``--var-dir``, default ``$VAR_DIR`` or ``var/``), rewritten at each start.

This module does not import Django: it only starts and stops processes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = str(BASE_DIR / "manage.py")
DEMO_SANDBOX_KEY = "demo-sandbox-key"
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 90.0
POLL_S = 0.1
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


class Stopping(Exception):
    """A stop signal arrived."""


class ChildFailed(Exception):
    """A child stopped by itself, or did not get ready in time; ``detail`` may say why."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        if self.log is None or not self.log.exists():
            return ""
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "".join(f"    {line}\n" for line in tail)


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on ``host``."""
    if host in WILDCARD_HOSTS:
        return "[::1]" if host == "::" else "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def child_env(
    *, host: str, var_dir: Path, base: dict[str, str], public_base_url: str = ""
) -> dict[str, str]:
    """The environment of every child: DEBUG off, the var directory, unbuffered output, the
    listening host allowed unless ALLOWED_HOSTS says otherwise, and the dashboard's address as
    PUBLIC_BASE_URL (where the demo sandbox reaches the hosted mocks) unless already set."""
    env = dict(base, DEBUG="False", VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    if public_base_url and "PUBLIC_BASE_URL" not in base:
        env["PUBLIC_BASE_URL"] = public_base_url
    if "ALLOWED_HOSTS" not in base:
        if host in WILDCARD_HOSTS:
            env["ALLOWED_HOSTS"] = "*"  # reached by whatever name the machine has
        elif host not in {"127.0.0.1", "localhost", "::1"}:
            env["ALLOWED_HOSTS"] = f"127.0.0.1,localhost,[::1],{_url_host(host)}"
    return env


class Supervisor:
    def __init__(self, *, env: dict[str, str], var_dir: Path, out: IO[str]) -> None:
        self.env = env
        self.var_dir = var_dir
        self.out = out
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def say(self, message: str) -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def start(self, name: str, argv: list[str], *, log: str | None = None) -> Child:
        """Start ``argv`` in a session of its own; its output goes to ``log`` in the var
        directory, or to this process's output when ``log`` is None."""
        log_path = self.var_dir / log if log else None
        sink = log_path.open("wb") if log_path else None
        try:
            popen = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT if sink else None,
                start_new_session=True,
            )
        finally:
            if sink:
                sink.close()
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def wait_until(
        self,
        ready: Callable[[], bool],
        *,
        watch: list[Child],
        deadline: float | None = None,
        what: str = "",
    ) -> None:
        """Return once ``ready()``; raise Stopping on a stop signal, ChildFailed when a watched
        child exits or the deadline passes."""
        while True:
            if self.stopping.is_set():
                raise Stopping
            if ready():
                return
            for child in watch:
                if not child.running():
                    raise ChildFailed(
                        f"{child.name} stopped by itself (exit status {child.popen.returncode})",
                        f"The end of {child.log}:\n{child.log_tail()}" if child.log else "",
                    )
            if deadline is not None and time.monotonic() > deadline:
                raise ChildFailed(f"{what} within {READY_TIMEOUT_S:.0f} s")
            self.stopping.wait(POLL_S)

    def run_step(self, name: str, argv: list[str], *, watch: list[Child]) -> None:
        """Run a command to its end while the children in ``watch`` keep running."""
        step = self.start(name, argv)
        self.wait_until(lambda: not step.running(), watch=watch)
        if step.popen.returncode:
            raise ChildFailed(f"{name} failed (exit status {step.popen.returncode})")

    def stop_all(self) -> None:
        """SIGTERM once to each child still running, SIGKILL to those left after the grace."""
        running = [child for child in self.children if child.running()]
        for child in reversed(running):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while any(child.running() for child in running) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        for child in running:
            if child.running():
                self.say(f"{child.name} did not stop within {STOP_GRACE_S:.0f} s; killed.")
                self._signal(child, signal.SIGKILL)
                child.popen.wait()

    @staticmethod
    def _signal(child: Child, signum: signal.Signals) -> None:
        # Called only before the child is reaped: its group id cannot belong to anyone else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.popen.pid, signum)


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    var_dir = Path(args.var_dir).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(
        host=args.host,
        var_dir=var_dir,
        base=dict(os.environ),
        public_base_url=f"http://{_url_host(args.host)}:{args.port}",
    )
    supervisor = Supervisor(env=env, var_dir=var_dir, out=sys.stdout)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.on_signal)
    try:
        servers = _start_everything(supervisor, args)
        supervisor.wait_until(lambda: False, watch=servers)
    except Stopping:
        supervisor.say("Stopping...")
        supervisor.stop_all()
        supervisor.say("Stopped.")
        return 0
    except ChildFailed as exc:
        supervisor.say(f"make run: {exc}; stopping everything.")
        if exc.detail:
            supervisor.say(exc.detail.rstrip("\n"))
        supervisor.stop_all()
        return 1
    return 0  # pragma: no cover - wait_until(lambda: False) only ends by raising


def _start_everything(supervisor: Supervisor, args: argparse.Namespace) -> list[Child]:
    """Start everything and print the dashboard's address once it is usable; return the
    children that must keep running."""
    python = sys.executable
    host = _url_host(args.host)
    base_url = f"http://{host}:{args.port}"
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    sandbox = supervisor.start(
        "the demo sandbox",
        [python, "-m", "demo.sandbox", "--port", str(args.sandbox_port)]
        + ["--api-key", DEMO_SANDBOX_KEY],
        log="sandbox.log",
    )
    sftp_url = f"sftp://127.0.0.1:{args.sftp_port}"
    sftp = supervisor.start(
        "the demo SFTP partner",
        [python, "-m", "demo.sftp_partner", "--port", str(args.sftp_port)]
        + ["--root", str(supervisor.var_dir / "sftp"), "--pgp"],
        log="sftp.log",
    )
    edi_url = f"http://127.0.0.1:{args.edi_port}"
    edi = supervisor.start(
        "the demo EDI partner",
        [python, "-m", "demo.edi_partner", "--port", str(args.edi_port)]
        + ["--keys", str(supervisor.var_dir / "as2")],
        log="edi.log",
    )
    supervisor.run_step(
        "manage.py migrate",
        [python, MANAGE, "migrate", "--no-input", "-v", "0"],
        watch=[sandbox, sftp, edi],
    )
    addrport = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    setup = supervisor.start(
        "manage.py demo_setup",
        [python, MANAGE, "demo_setup", "--sandbox-url", sandbox_url, "--sftp-url", sftp_url]
        + ["--sftp-pgp-key", str(supervisor.var_dir / "sftp" / "pub" / "globex_pgp.asc")]
        + ["--edi-url", edi_url, "--wait", "--demo-run"],
    )
    servers = [
        sandbox,
        sftp,
        edi,
        supervisor.start(
            "the Celery worker",
            [python, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO"]
            + ["--pool=threads", "--concurrency=4"],
            log="worker.log",
        ),
        supervisor.start(
            "Celery beat",
            [python, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO"]
            + ["--schedule", str(supervisor.var_dir / "celerybeat-schedule")],
            log="beat.log",
        ),
        supervisor.start(
            "the web server",
            [python, MANAGE, "runserver", "--noreload", "--insecure", addrport],
            log="web.log",
        ),
    ]
    deadline = time.monotonic() + READY_TIMEOUT_S
    supervisor.wait_until(
        lambda: answers(f"{base_url}/healthz"),
        watch=servers,
        deadline=deadline,
        what=f"the dashboard did not answer on {base_url}/",
    )
    supervisor.wait_until(lambda: not setup.running(), watch=servers)
    if setup.popen.returncode:
        raise ChildFailed(f"manage.py demo_setup failed (exit status {setup.popen.returncode})")
    logs = ", ".join(f"{name}.log" for name in ("web", "worker", "beat", "sandbox", "sftp", "edi"))
    supervisor.say(
        f"Dashboard on {base_url}/  (logs in {supervisor.var_dir}/: {logs}; "
        "Ctrl-C stops everything)"
    )
    return servers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo.run",
        description="The demo: sandbox, dashboard, Celery worker and beat; Ctrl-C stops them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on")
    parser.add_argument("--port", type=int, default=8000, help="port of the dashboard")
    parser.add_argument("--sandbox-port", type=int, default=8001, help="port of the sandbox")
    parser.add_argument(
        "--sftp-port", type=int, default=8022, help="port of the demo SFTP file partner"
    )
    parser.add_argument(
        "--edi-port", type=int, default=8023, help="port of the demo EDI (AS2) partner"
    )
    parser.add_argument(
        "--var-dir",
        default=os.environ.get("VAR_DIR", str(BASE_DIR / "var")),
        help="SQLite database, file-system broker and logs (default $VAR_DIR or var/)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(run())
