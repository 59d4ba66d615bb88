"""`make run` as a user sees it: the supervisor (``python -m demo.run``) started for real on free
ports, twice, against one temporary SQLite database, var directory and file-system broker (so
that its worker takes no other test's tasks), then stopped by SIGTERM and by Ctrl-C's SIGINT.

Both sessions are recorded once by the module fixture and each test checks one thing a user
would notice; together they take about half a minute. The error-page tests at the end render the
product's 404 and 500 pages in process, with DEBUG off as under `make run`.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.template import loader
from django.test import Client
from django.urls import path

BASE_DIR = Path(settings.BASE_DIR)
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
STATIC_FILES = ("vendor/htmx.min.js", "vendor/plotly.min.js", "css/app.css", "js/app.js")
SHUTDOWN_LINE = re.compile(r"(warm|cold) shutdown", re.IGNORECASE)
TECHNICAL_PAGE_MARKS = (
    "Using the URLconf",
    "Traceback",
    "DEBUG = True",
    "urlpatterns",
    "config.urls",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _process_groups() -> dict[int, int]:
    """pid -> process group of every live (not zombie) process."""
    groups = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            groups[int(stat.parent.name)] = int(fields[2])
    return groups


def _children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@dataclass
class Page:
    status: int
    body: str


def _get(opener: urllib.request.OpenerDirector, url: str) -> Page:
    try:
        with opener.open(url, timeout=10) as response:
            return Page(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return Page(exc.code, exc.read().decode(errors="replace"))


def _logged_in(base_url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """A browser-like client (cookies, CSRF token from the form) logged in through /login/."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = _get(opener, f"{base_url}/login/").body
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, "no CSRF token in the login form"
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token[1]}
    ).encode()
    with opener.open(f"{base_url}/login/", data=data, timeout=10) as response:
        assert "/login/" not in response.url, "the demo login was refused"
    return opener


@dataclass
class Session:
    """One `make run` from start to stop, as observed from outside."""

    output: list[str] = field(default_factory=list)
    healthz_when_announced: int = 0
    pages: dict[str, Page] = field(default_factory=dict)
    child_pids: list[int] = field(default_factory=list)
    exit_code: int | None = None
    stop_seconds: float = 0.0
    left_over: list[int] = field(default_factory=list)
    worker_log: str = ""


def _session(
    *, var_dir: Path, env: dict[str, str], stop_with: signal.Signals, look: bool
) -> Session:
    port, sandbox_port, sftp_port, edi_port = (_free_port() for _ in range(4))
    base_url = f"http://127.0.0.1:{port}"
    session = Session()
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.run", "--port", str(port), "--sandbox-port", str(sandbox_port)]
        + ["--sftp-port", str(sftp_port), "--edi-port", str(edi_port), "--var-dir", str(var_dir)],
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    announced = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            session.output.append(line)
            if line.startswith("Dashboard on"):
                announced.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not announced.wait(0.1):
            assert process.poll() is None, "make run ended early:\n" + "".join(session.output)
            assert time.monotonic() < deadline, "no 'Dashboard on':\n" + "".join(session.output)
        opener = urllib.request.build_opener()
        session.healthz_when_announced = _get(opener, f"{base_url}/healthz").status
        session.child_pids = _children_of(process.pid)
        if look:
            _look_around(session, base_url)
        started_stop = time.monotonic()
        process.send_signal(stop_with)
        session.exit_code = process.wait(timeout=STOP_TIMEOUT_S)
        session.stop_seconds = time.monotonic() - started_stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    deadline = time.monotonic() + 5
    while True:
        groups = _process_groups()
        session.left_over = [
            pid
            for pid, group in groups.items()
            if pid in session.child_pids or group in session.child_pids
        ]
        if not session.left_over or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in session.left_over:  # only ours: members of the groups this session started
        os.kill(pid, signal.SIGKILL)
    session.worker_log = (var_dir / "worker.log").read_text(errors="replace")
    return session


def _look_around(session: Session, base_url: str) -> None:
    anonymous = urllib.request.build_opener()
    session.pages["login"] = _get(anonymous, f"{base_url}/login/")
    for name in STATIC_FILES:
        session.pages[name] = _get(anonymous, f"{base_url}/static/{name}")
    session.pages["anonymous 404"] = _get(anonymous, f"{base_url}/no-such-page/")
    partner_user = _logged_in(base_url, "acme", "acme-demo-pass")
    session.pages["partner 404"] = _get(partner_user, f"{base_url}/no-such-page/")
    session.pages["partner missing run"] = _get(partner_user, f"{base_url}/runs/999999/")
    session.pages["partner runs"] = _get(partner_user, f"{base_url}/runs/")


@dataclass
class Demo:
    first: Session
    restart: Session
    demo_runs: int
    file_runs: list[str]  # Globex's runs (the file partner), by status
    edi_runs: list[str]  # Initech's runs (the EDI partner), by status
    archived: list[str]  # the files Globex accepted (var/sftp/archive)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    var_dir = tmp_path_factory.mktemp("make-run")
    database = var_dir / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "ALLOWED_HOSTS"}}
    env.update(
        APP_ENV="development",
        DATABASE_URL=f"sqlite:///{database}",
        CELERY_BROKER_URL="filesystem://localhost//",
        VAR_DIR=str(var_dir),
    )
    first = _session(var_dir=var_dir, env=env, stop_with=signal.SIGTERM, look=True)
    restart = _session(var_dir=var_dir, env=env, stop_with=signal.SIGINT, look=False)
    with sqlite3.connect(database) as db:
        (demo_runs,) = db.execute(
            "SELECT count(*) FROM certification_run r JOIN partners_partner p "
            "ON p.id = r.partner_id WHERE p.external_id = 'p_001'"
        ).fetchone()
        file_runs = [
            status
            for (status,) in db.execute(
                "SELECT r.status FROM certification_run r JOIN partners_partner p "
                "ON p.id = r.partner_id WHERE p.external_id = 'p_002'"
            )
        ]
        edi_runs = [
            status
            for (status,) in db.execute(
                "SELECT r.status FROM certification_run r JOIN partners_partner p "
                "ON p.id = r.partner_id WHERE p.external_id = 'p_003'"
            )
        ]
    archived = sorted(p.name for p in (var_dir / "sftp" / "archive").iterdir())
    yield Demo(
        first=first, restart=restart, demo_runs=demo_runs, file_runs=file_runs,
        edi_runs=edi_runs, archived=archived,
    )  # fmt: skip


def _no_internals(page: Page) -> list[str]:
    return [mark for mark in TECHNICAL_PAGE_MARKS if mark in page.body]


@pytest.mark.worker
def test_make_run_announces_the_dashboard_once_when_it_answers(demo: Demo) -> None:
    for session in (demo.first, demo.restart):
        announcements = [line for line in session.output if line.startswith("Dashboard on")]
        assert len(announcements) == 1
        assert session.healthz_when_announced == 200


@pytest.mark.worker
def test_make_run_serves_the_login_page_with_its_static_files(demo: Demo) -> None:
    assert demo.first.pages["login"].status == 200
    assert 'name="password"' in demo.first.pages["login"].body
    assert {name: demo.first.pages[name].status for name in STATIC_FILES} == dict.fromkeys(
        STATIC_FILES, 200
    )


@pytest.mark.worker
def test_make_run_certifies_the_file_partner_over_sftp_once(demo: Demo) -> None:
    assert demo.file_runs == ["passed"]


@pytest.mark.worker
def test_make_run_sends_globex_its_files_pgp_encrypted(demo: Demo) -> None:
    files = [name for name in demo.archived if name.endswith((".csv", ".csv.pgp"))]
    assert files and all(name.endswith(".csv.pgp") for name in files), demo.archived


@pytest.mark.worker
def test_make_run_certifies_the_edi_partner_over_as2_once(demo: Demo) -> None:
    assert demo.edi_runs == ["passed"]


@pytest.mark.worker
def test_make_run_shows_the_partner_user_their_demo_run(demo: Demo) -> None:
    runs = demo.first.pages["partner runs"]
    assert runs.status == 200
    assert "checkout-certification" in runs.body


@pytest.mark.worker
@pytest.mark.parametrize("page", ["anonymous 404", "partner 404", "partner missing run"])
def test_make_run_404_page_lists_no_url_patterns(demo: Demo, page: str) -> None:
    shown = demo.first.pages[page]
    assert shown.status == 404
    assert "Page not found" in shown.body
    assert _no_internals(shown) == []


@pytest.mark.worker
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_make_run_stops_cleanly_on_a_signal(demo: Demo, stop: str) -> None:
    session = demo.first if stop == "SIGTERM" else demo.restart
    assert session.exit_code == 0
    assert session.stop_seconds < STOP_TIMEOUT_S
    assert "Traceback" not in "".join(session.output)
    assert session.output[-1].strip() == "Stopped."


@pytest.mark.worker
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_make_run_leaves_no_process_behind(demo: Demo, stop: str) -> None:
    session = demo.first if stop == "SIGTERM" else demo.restart
    # sandbox, SFTP partner, EDI partner, worker, beat, web server
    assert len(session.child_pids) == 6
    assert session.left_over == []


@pytest.mark.worker
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_make_run_signals_the_worker_once(demo: Demo, stop: str) -> None:
    # None when the worker was stopped before it got as far as handling signals.
    session = demo.first if stop == "SIGTERM" else demo.restart
    assert len(SHUTDOWN_LINE.findall(session.worker_log)) <= 1


@pytest.mark.worker
def test_make_run_restart_adds_no_second_demo_run(demo: Demo) -> None:
    assert demo.demo_runs == 1
    assert any("no demo run started" in line for line in demo.restart.output)


def _fails(request: Any) -> Any:
    raise RuntimeError("secret internals: /srv/certdash/config/settings.py SECRET_KEY=abc")


urlpatterns = [path("boom/", _fails)]


@pytest.mark.urls(__name__)
def test_server_error_page_shows_no_internals() -> None:
    assert not settings.DEBUG  # as under `make run` and in production
    response = Client(raise_request_exception=False).get("/boom/")
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body
    assert "RuntimeError" not in body and "secret internals" not in body
    assert _no_internals(Page(500, body)) == []


def test_server_error_page_renders_without_request_or_database() -> None:
    # No django_db mark: touching the database here fails the test.
    body = loader.get_template("500.html").render()
    assert '<a href="/">Go to the dashboard</a>' in body
    assert "{%" not in body


def test_not_found_page_links_a_partner_user_home(partner_a_client: Client) -> None:
    response = partner_a_client.get("/runs/999999/")
    body = response.content.decode()
    assert response.status_code == 404
    assert '<a href="/">Go to the dashboard</a>' in body
    assert _no_internals(Page(404, body)) == []
