"""Latency probes sent from several processes (``processes: N``): real child processes against
a real HTTP server on 127.0.0.1, the endpoint's auth and the address policy applied in each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from certification.engine import probe as probe_module
from certification.engine.model import EndpointConfig, RunContext, ScenarioOutcome
from certification.engine.netpolicy import AddressPolicy
from certification.engine.probe import ProbeShare, split
from certification.engine.runner import run_suite
from certification.engine.spec import SuiteInvalid, parse_suite
from tests.engine.servers import serve

POLICY = AddressPolicy(["127.0.0.0/8"])
KEY = "probe-key-SECRET"


class Partner:
    """Answers /health 200 with the right API key (401 without); counts requests and the most
    in flight at once, holding each until ``hold_until`` are in flight (or 2 s passed)."""

    def __init__(self, hold_until: int = 0, delay_s: float = 0.0) -> None:
        self.hold_until = hold_until
        self.delay_s = delay_s
        self.requests = 0
        self.unauthorised = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.reached = asyncio.Event()

    tokens_issued = 0
    token_delay_s = 1.0

    async def token(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.token_delay_s)
        self.tokens_issued += 1
        return web.json_response(
            {
                "access_token": f"tok-{self.tokens_issued}",
                "token_type": "Bearer",
                "expires_in": 3600,
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "").startswith("Bearer tok-")
        if request.headers.get("X-API-Key") != KEY and not bearer:
            self.unauthorised += 1
            return web.Response(status=401)
        self.requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self.hold_until:
            self.reached.set()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.hold_until:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.reached.wait(), 2)
            return web.json_response({"ok": True})
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/{behaviour}", self.health)
        app.router.add_post("/token", self.token)
        return app


def _context(base_url: str, *, oauth: bool = False, **extra: Any) -> RunContext:
    endpoint = EndpointConfig(
        name="api",
        base_url=base_url,
        auth_kind="api_key",
        auth_config={"header_name": "X-API-Key"},
        secrets={"api_key": KEY},
    )
    if oauth:
        endpoint = EndpointConfig(
            name="api",
            base_url=base_url,
            auth_kind="oauth2_client_credentials",
            auth_config={"token_url": f"{base_url}/token", "client_id": "c"},
            secrets={"client_secret": "client-secret-SECRET"},
        )
    return RunContext(endpoints={"api": endpoint}, default_endpoint="api", **extra)


def _suite(probe: str, url: str = "/health") -> str:
    return f"""
name: t
tests:
  - name: s
    steps:
      - action: {{type: latencyProbe, method: GET, url: {url}, {probe}}}
"""


def _probe(
    partner: Partner,
    probe: str,
    *,
    policy: AddressPolicy = POLICY,
    url: str = "/health",
    **context: Any,
) -> ScenarioOutcome:
    suite = parse_suite(_suite(probe, url), filename="suite.yaml")

    async def go() -> list[ScenarioOutcome]:
        async with serve(partner.app()) as url:
            return await run_suite(suite, _context(url, **context), policy=policy)

    (outcome,) = asyncio.run(go())
    return outcome


def test_a_probe_spread_over_processes_sends_every_request_once_with_the_endpoints_auth() -> None:
    partner = Partner()
    outcome = _probe(partner, "requests: 60, concurrency: 4, processes: 2")
    step = outcome.steps[0]
    assert step.status == "passed", (step.failure, step.notes)
    latency = step.latency
    assert (latency.requests, latency.ok, latency.errors) == (60, 60, 0)
    assert latency.histogram["count"] == 60 and latency.status == {"200": 60}
    assert latency.client_processes == 2
    assert (partner.requests, partner.unauthorised) == (60, 0)
    assert latency.p50 is not None and latency.p50 <= latency.p95 <= latency.max


def test_the_processes_of_a_probe_send_at_the_same_time() -> None:
    # Every request is held until four are in flight: four workers over two processes only
    # get there if both processes were released together.
    partner = Partner(hold_until=4)
    outcome = _probe(partner, "requests: 4, concurrency: 4, processes: 2")
    assert outcome.steps[0].status == "passed"
    assert partner.most_in_flight == 4
    assert outcome.steps[0].latency.max < 1900  # none waited out the 2 s hold


def test_an_open_model_probe_over_processes_keeps_its_request_count_and_rate() -> None:
    partner = Partner()
    outcome = _probe(partner, "requests: 40, rate: 200, processes: 2")
    latency = outcome.steps[0].latency
    assert (latency.ok, latency.client_processes, partner.requests) == (40, 2, 40)
    # 40 requests at 200/s are due over 195 ms, whichever process sends them.
    assert latency.wall_ms >= 190


def test_the_address_policy_refuses_the_requests_of_every_probe_process() -> None:
    partner = Partner()
    outcome = _probe(partner, "requests: 6, concurrency: 2, processes: 2", policy=AddressPolicy())
    step = outcome.steps[0]
    assert step.status == "failed" and step.failure.kind == "no_success"
    assert step.latency.errors_by_kind == {"blocked_address": 6}
    assert partner.requests + partner.unauthorised == 0


def test_a_probe_asking_for_more_processes_than_allowed_uses_the_allowed_number_and_says_so() -> (
    None
):
    partner = Partner()
    outcome = _probe(partner, "requests: 10, concurrency: 2, processes: 2", probe_max_processes=1)
    step = outcome.steps[0]
    assert step.latency.client_processes == 1 and step.latency.ok == 10
    assert any("PROBE_MAX_PROCESSES" in note for note in step.notes), step.notes


def test_a_probe_process_that_dies_before_reporting_fails_the_step_with_a_plain_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(probe_module, "CHILD_MODULE", "certification.engine.no_such_module")
    partner = Partner()
    outcome = _probe(partner, "requests: 10, concurrency: 2, processes: 2")
    step = outcome.steps[0]
    assert step.status == "error" and step.failure.kind == "probe_process"
    assert re.fullmatch(  # whichever of the two is noticed first
        r"probe process [12] of 2 exited with code 1 before it reported", step.failure.message
    )
    assert "Traceback" not in step.failure.message and partner.requests == 0
    # What it wrote to stderr is for the operator's log, not the run.
    assert "No module named" in caplog.text and "No module named" not in step.failure.message


def test_probe_requests_and_workers_are_split_evenly_and_no_process_is_idle() -> None:
    # Requests in proportion to workers, so every worker is busy to the end.
    assert split(10, 3, concurrency=4, rate=None) == [
        ProbeShare(5, concurrency=2), ProbeShare(3, concurrency=1), ProbeShare(2, concurrency=1)
    ]  # fmt: skip
    assert split(300, 2, concurrency=3, rate=None) == [
        ProbeShare(200, concurrency=2), ProbeShare(100, concurrency=1)
    ]  # fmt: skip
    assert [share.requests for share in split(3, 3, concurrency=10, rate=None)] == [1, 1, 1]
    assert split(5, 2, concurrency=None, rate=50.0) == [
        ProbeShare(3, rate=50.0, first=0, stride=2), ProbeShare(2, rate=50.0, first=1, stride=2)
    ]  # fmt: skip
    assert len(split(2, 8, concurrency=None, rate=10.0)) == 2


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ("requests: 10, concurrency: 2, processes: 3",
         "'processes' (3) must be at most the probe's 'concurrency' (2)"),
        ("requests: 2, rate: 10, processes: 3",
         "'processes' (3) must be at most the probe's 'requests' (2)"),
        ("requests: 100, concurrency: 100, processes: 65",
         "'processes' must be an integer from 1 to 64, not 65"),
        ("requests: 10, concurrency: 2, processes: 0",
         "'processes' must be an integer from 1 to 64, not 0"),
    ],
)  # fmt: skip
def test_probe_processes_out_of_bounds_are_refused_where_written(probe: str, expected: str) -> None:
    with pytest.raises(SuiteInvalid) as caught:
        parse_suite(_suite(probe), filename="suite.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("suite.yaml:6:")  # the line of the probe


_PARENT = """
import asyncio, sys
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite

suite = parse_suite(sys.argv[2], filename="suite.yaml")
context = RunContext(endpoints={"api": EndpointConfig(name="api", base_url=sys.argv[1])},
                     default_endpoint="api")
asyncio.run(run_suite(suite, context, policy=AddressPolicy(["127.0.0.0/8"])))
"""


def _children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"probe_child" in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_probe_processes_die_with_the_process_that_started_them() -> None:
    """A worker SIGKILLed mid-probe leaves no probe process loading the partner."""
    from demo.sandbox import SandboxServer

    with SandboxServer(delay_ms=200) as slow:
        parent = subprocess.Popen(
            [sys.executable, "-c", _PARENT, slow.url,
             _suite("requests: 100000, concurrency: 2, processes: 2")],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "DATABASE_URL": "sqlite:///nothing"},
        )  # fmt: skip
        try:
            assert _wait(lambda: len(_children_of(parent.pid)) == 2), "no probe processes"
            children = _children_of(parent.pid)
            for pid in children:  # the product's settings are none of a probe process's business
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                assert not any(item.startswith(b"DATABASE_URL=") for item in environ)
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            assert _wait(lambda: not any(_alive(pid) for pid in children)), children
        finally:
            if parent.poll() is None:
                parent.kill()


def test_probe_splits_always_add_up_to_the_probes_requests() -> None:
    for requests in (1, 2, 3, 7, 10, 99, 1000):
        for processes in (1, 2, 3, 8):
            for concurrency in (1, 2, 3, 5, 64):
                shares = split(requests, processes, concurrency=concurrency, rate=None)
                assert sum(share.requests for share in shares) == requests
                assert sum(share.concurrency or 0 for share in shares) == concurrency or (
                    len(shares) < processes
                )
                assert all(share.requests >= 1 for share in shares)
            shares = split(requests, processes, concurrency=None, rate=10.0)
            indices = sorted(
                share.first + j * share.stride for share in shares for j in range(share.requests)
            )
            assert indices == list(range(requests))


def test_processes_of_an_open_model_probe_keep_one_schedule_from_a_shared_start() -> None:
    """Two shares of one schedule started at one instant interleave: the union is the
    probe's schedule, and each request is sent at its own time."""
    from certification.engine.model import Timings
    from certification.engine.probe import drive
    from certification.engine.transport import Exchange, PreparedRequest

    sent: list[tuple[float, int]] = []

    def sender(first: int) -> Any:
        async def send(request: Any, **_: Any) -> Exchange:
            sent.append((time.perf_counter(), first))
            return Exchange(request=None, response=None, timings=Timings(), status=200)

        return send

    async def both() -> list[Any]:
        start_at = time.monotonic() + 0.02
        request = PreparedRequest("GET", "http://127.0.0.1:9/")
        return await asyncio.gather(*(
            drive(sender(k), request, None, ProbeShare(5, rate=50.0, first=k, stride=2), {200},
                  start_at=start_at)
            for k in (0, 1)
        ))  # fmt: skip

    tallies = asyncio.run(both())
    assert [first for _, first in sorted(sent)] == [0, 1] * 5
    assert all(tally.histogram.count == 5 for tally in tallies)
    # From the shared start: share 0's last request is due at 160 ms, share 1's at 180 ms.
    assert tallies[0].wall_ms >= 159 and tallies[1].wall_ms >= 179


def test_an_oauth_token_fetch_is_not_counted_as_the_partners_latency() -> None:
    partner = Partner()  # its token endpoint takes 1 s
    for processes in (1, 2):
        outcome = _probe(
            partner, f"requests: 20, concurrency: 2, processes: {processes}", oauth=True
        )
        latency = outcome.steps[0].latency
        assert latency.ok == 20, outcome.steps[0].failure
        assert latency.max < 1000, (processes, latency)
    assert partner.tokens_issued == 3  # one in this process, one in each probe process


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("huge", r"probe process [12] of 2 sent a report too large to read"),
        ("liar", r"probe process [12] of 2 reported 2000000000 requests, not the 5 it was given"),
        ("crash", r"probe process [12] of 2 exited with code 3 before it reported"),
    ],
)
def test_a_probe_process_that_misbehaves_fails_the_step_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch, behaviour: str, message: str
) -> None:
    monkeypatch.setattr(probe_module, "CHILD_MODULE", "tests.engine.fake_probe_child")
    started = time.monotonic()
    outcome = _probe(Partner(), "requests: 10, concurrency: 2, processes: 2", url=f"/{behaviour}")
    step = outcome.steps[0]
    assert step.status == "error" and step.failure.kind == "probe_process"
    assert re.fullmatch(message, step.failure.message), step.failure.message
    assert time.monotonic() - started < 30  # and it returned: no pipe left to block on
    assert not _children_of(os.getpid())


def test_a_client_waiting_for_a_core_is_flagged_saturated_though_its_cpu_is_low(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waited = iter([0.0, 1000.0])  # seconds spent runnable, waiting: before and after
    monkeypatch.setattr(probe_module, "_waited_s", lambda: next(waited))
    outcome = _probe(Partner(delay_s=0.02), "requests: 5, concurrency: 1")
    latency = outcome.steps[0].latency
    assert latency.client_cpu_percent < 80 and latency.client_wait_percent > 80
    assert latency.client_saturated
    assert any("waited for a core" in note for note in outcome.steps[0].notes)


def test_saturation_is_judged_per_process_not_from_the_busiest_cpu_and_longest_wait_of_two() -> (
    None
):
    from certification.engine.probe import ProbeTally

    running = ProbeTally(cpu_percent=70.0, wait_percent=0.0, busy_percent=70.0)
    waiting = ProbeTally(cpu_percent=10.0, wait_percent=60.0, busy_percent=70.0)
    merged = running.merge(waiting)
    assert (merged.cpu_percent, merged.wait_percent, merged.busy_percent) == (70.0, 60.0, 70.0)
