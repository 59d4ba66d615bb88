"""The load loop of a latency probe, in this process or spread over several.

``drive`` sends one share of a probe's requests and tallies what came back: a histogram of
the successful exchanges, statuses, errors by kind, and the client's own load (CPU time of the
event loop's thread over the probe's wall time, and how far an open-model schedule fell
behind). A probe with ``processes: N`` splits its requests into N shares
(:func:`split`), sends each from its own Python process (:func:`drive_in_processes`, the
children run :mod:`certification.engine.probe_child`) and merges the tallies, so that a load
one core cannot generate without queueing is still measured from the partner's side.

Every child gets the prepared request, the endpoint (with its secrets, over a pipe, never on
the command line or in the environment), the address policy and the address the parent pinned
the host to; it builds its own transport, so the endpoint's auth (an OAuth token per process)
and the address policy apply to every request it sends. Children start, report ready, and
only then are all told to go, so their requests overlap as the probe asks. Pure Python, no
Django import.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .histogram import Histogram
from .model import EndpointConfig, RunContext
from .transport import Exchange, PreparedRequest

Send = Callable[..., Awaitable[Exchange]]

# How long children may take to start (import, build their transport) before the probe fails.
START_TIMEOUT_S = 60.0
CHILD_MODULE = "certification.engine.probe_child"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class ProbeProcessError(Exception):
    """A probe process could not start or did not report; the message is for the user."""


@dataclass(frozen=True)
class ProbeShare:
    """The requests one process sends. Closed model: ``concurrency`` workers back to back.
    Open model: the probe's requests ``first``, ``first + stride`` ... of the whole schedule,
    request ``i`` due at ``i / rate`` seconds after the start, so that the shares together
    keep the probe's rate and spacing."""

    requests: int
    concurrency: int | None = None
    rate: float | None = None
    first: int = 0
    stride: int = 1


@dataclass
class ProbeTally:
    histogram: Histogram = field(default_factory=Histogram)
    statuses: dict[str, int] = field(default_factory=dict)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    wall_ms: float = 0.0
    cpu_percent: float = 0.0  # the busiest process's event loop, as a share of one core
    lag_max_ms: float = 0.0  # open model: the latest any request started after its time
    lag_p95_ms: float = 0.0  # open model: 95 % of requests started within this of their time
    processes: int = 1

    def merge(self, other: ProbeTally) -> ProbeTally:
        self.histogram.merge(other.histogram)
        for mine, theirs in ((self.statuses, other.statuses),
                             (self.errors_by_kind, other.errors_by_kind)):  # fmt: skip
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.wall_ms = max(self.wall_ms, other.wall_ms)
        self.cpu_percent = max(self.cpu_percent, other.cpu_percent)
        self.lag_max_ms = max(self.lag_max_ms, other.lag_max_ms)
        self.lag_p95_ms = max(self.lag_p95_ms, other.lag_p95_ms)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["histogram"] = self.histogram.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeTally:
        return cls(
            histogram=Histogram.from_dict(data["histogram"]),
            statuses={str(k): int(v) for k, v in data["statuses"].items()},
            errors_by_kind={str(k): int(v) for k, v in data["errors_by_kind"].items()},
            wall_ms=float(data["wall_ms"]),
            cpu_percent=float(data["cpu_percent"]),
            lag_max_ms=float(data["lag_max_ms"]),
            lag_p95_ms=float(data["lag_p95_ms"]),
        )


def split(
    requests: int, processes: int, *, concurrency: int | None, rate: float | None
) -> list[ProbeShare]:
    """``requests`` (and the closed model's workers) spread as evenly as they go over at most
    ``processes`` processes; none gets nothing to do."""
    processes = max(1, min(processes, requests, concurrency or requests))
    shares = []
    for k in range(processes):
        count = requests // processes + (k < requests % processes)
        if rate:
            shares.append(ProbeShare(count, rate=rate, first=k, stride=processes))
        else:
            workers = (concurrency or 1) // processes + (k < (concurrency or 1) % processes)
            shares.append(ProbeShare(count, concurrency=workers))
    return shares


async def drive(
    send: Send,
    prepared: PreparedRequest,
    endpoint: EndpointConfig | None,
    share: ProbeShare,
    expect: set[int],
) -> ProbeTally:
    """Send ``share`` of a probe from this event loop; never raises for a failed request
    (each is counted by its failure's kind)."""
    tally = ProbeTally()
    histogram, statuses, errors_by_kind = tally.histogram, tally.statuses, tally.errors_by_kind

    def account(exchange: Exchange, elapsed_ms: float) -> None:
        # Only successful exchanges are latency samples: a refused connection answers fast
        # and a 404 is no measure of the endpoint's latency.
        if exchange.failure is not None:
            kind = exchange.failure.kind
        else:
            key = str(exchange.status)
            statuses[key] = statuses.get(key, 0) + 1
            if exchange.status in expect:
                histogram.record(elapsed_ms)
                return
            kind = f"status {exchange.status}"
        errors_by_kind[kind] = errors_by_kind.get(kind, 0) + 1

    started = time.perf_counter()
    # The probe's own load: CPU time of this event loop's thread (other threads of the
    # process, such as a sandbox served in-process by tests, are not the client's work).
    cpu_started = time.thread_time()
    if share.rate:
        # Open model: request i is due at start + i/rate and is sent then, whether or not
        # earlier ones were answered, so a slow server cannot slow the probe down (no
        # coordinated omission). Requests are started one by one from a dispatcher rather
        # than all created up front, and latency counts from when a request was actually
        # started: a client that falls behind its schedule (a busy event loop) is reported
        # as lag, not blamed on the partner.
        interval = 1.0 / share.rate
        lags: list[float] = []

        async def one() -> None:
            t0 = time.perf_counter()
            exchange = await send(prepared, endpoint=endpoint, record=False)
            account(exchange, (time.perf_counter() - t0) * 1000)

        running: set[asyncio.Task[None]] = set()
        for j in range(share.requests):
            due = started + (share.first + j * share.stride) * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, time.perf_counter() - due) * 1000)
            task = asyncio.ensure_future(one())
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
        if lags:
            tally.lag_max_ms = max(lags)
            tally.lag_p95_ms = sorted(lags)[int(len(lags) * 0.95)]
    else:
        remaining = share.requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                exchange = await send(prepared, endpoint=endpoint, record=False)
                account(exchange, (time.perf_counter() - t0) * 1000)

        workers = min(share.concurrency or 1, share.requests)
        await asyncio.gather(*(worker() for _ in range(workers)))
    tally.wall_ms = (time.perf_counter() - started) * 1000
    cpu_ms = (time.thread_time() - cpu_started) * 1000
    tally.cpu_percent = round(100 * cpu_ms / max(tally.wall_ms, 1e-3), 1)
    return tally


# ------------------------------------------------------------------------- several processes


def child_job(
    prepared: PreparedRequest,
    endpoint: EndpointConfig | None,
    share: ProbeShare,
    expect: set[int],
    *,
    context: RunContext,
    allowed_networks: list[str],
    pinned: dict[str, list[str]],
) -> dict[str, Any]:
    """What one child is told, as JSON: everything it needs to send its share as the parent
    would (``pinned``: ``host:port`` to the addresses the parent's policy check accepted)."""
    request = dataclasses.asdict(prepared)
    request["body"] = None if prepared.body is None else base64.b64encode(prepared.body).decode()
    return {
        "request": request,
        "endpoint": None if endpoint is None else dataclasses.asdict(endpoint),
        "share": dataclasses.asdict(share),
        "expect": sorted(expect),
        "context": {
            "request_timeout_ms": context.request_timeout_ms,
            "max_body_bytes": context.max_body_bytes,
            "max_redirects": context.max_redirects,
            "body_capture_bytes": context.body_capture_bytes,
        },
        "allowed_networks": allowed_networks,
        "pinned": pinned,
    }


async def _read_line(stream: asyncio.StreamReader, deadline: float | None) -> bytes:
    if deadline is None:
        return await stream.readline()
    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
        return await stream.readline()


async def drive_in_processes(jobs: list[dict[str, Any]]) -> ProbeTally:
    """Run each job in its own child process, all released together once every one is ready;
    the merged tally. Raises :class:`ProbeProcessError` when a child fails to start or
    report (the others are stopped)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )}  # fmt: skip
    children: list[asyncio.subprocess.Process] = []
    try:
        for job in jobs:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", CHILD_MODULE,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=env, cwd=str(_PACKAGE_ROOT),
            )  # fmt: skip
            children.append(child)
            assert child.stdin is not None
            child.stdin.write(json.dumps(job).encode() + b"\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        for number, child in enumerate(children, 1):
            assert child.stdout is not None
            try:
                line = await _read_line(child.stdout, deadline)
            except TimeoutError:
                raise ProbeProcessError(
                    f"probe process {number} of {len(children)} did not start within "
                    f"{START_TIMEOUT_S:g} s"
                ) from None
            if line.strip() != b"ready":
                raise ProbeProcessError(await _exit_reason(child, number, len(children)))
        for child in children:  # the start barrier: every child is ready, now all go
            assert child.stdin is not None
            child.stdin.write(b"go\n")
        for child in children:
            assert child.stdin is not None
            await child.stdin.drain()
        tally: ProbeTally | None = None
        for number, child in enumerate(children, 1):
            assert child.stdout is not None
            line = await child.stdout.readline()
            try:
                part = ProbeTally.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                raise ProbeProcessError(await _exit_reason(child, number, len(children))) from None
            tally = part if tally is None else tally.merge(part)
        assert tally is not None
        tally.processes = len(children)
        return tally
    finally:
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
            await child.wait()


async def _exit_reason(child: asyncio.subprocess.Process, number: int, total: int) -> str:
    try:
        async with asyncio.timeout(5):
            code = await child.wait()
    except TimeoutError:
        return f"probe process {number} of {total} stopped answering"
    return f"probe process {number} of {total} exited with code {code} before it reported"
