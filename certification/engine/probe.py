"""The load loop of a latency probe, in this process or spread over several.

``drive`` sends one share of a probe's requests and tallies what came back: a histogram of
the successful exchanges, statuses, errors by kind, and the client's own load (CPU time of the
event loop's thread over the probe's wall time, on Linux the time it waited for a core, and
how far an open-model schedule fell behind). A probe with ``processes: N`` splits its
requests into N shares (:func:`split`), sends each from its own Python process
(:func:`drive_in_processes`, the children run :mod:`certification.engine.probe_child`) and
merges the tallies, so that a load one core cannot generate without queueing is still
measured from the partner's side.

Every child gets the prepared request, the endpoint (with its secrets, over a pipe, never on
the command line or in the environment), the address policy and the addresses the parent
pinned; it builds and warms its own transport, so the endpoint's auth (an OAuth token per
process) and the address policy apply to every request it sends. Children start, report
ready, and only then are all given one start instant, so their requests overlap as the probe
asks and their schedules are one. Pure Python, no Django import.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .histogram import Histogram
from .masking import Masker
from .model import EndpointConfig, RunContext
from .transport import Exchange, PreparedRequest

Send = Callable[..., Awaitable[Exchange]]

# How long children may take to start (import, build their transport, fetch a token) before
# the probe fails; how far ahead of the release the shared start is set, so that every child
# has read it before it comes.
START_TIMEOUT_S = 60.0
START_MARGIN_S = 0.05
CHILD_MODULE = "certification.engine.probe_child"
REPORT_LIMIT = 16 * 1024 * 1024  # one child's tally, one line of JSON (a histogram: < 1 MiB)
STDERR_TAIL = 4096  # what is kept of a child's stderr, for the server log when it fails
# The environment a child gets: what Python, locale and TLS need, none of the product's
# settings (database, broker and keys are no business of a process that sends requests).
_CHILD_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE",
              "SSL_CERT_DIR", "PYTHONDONTWRITEBYTECODE")  # fmt: skip
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


log = logging.getLogger(__name__)


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
    # Linux: the share of the wall time that event loop was ready to run but waited for a core
    # (CPU time alone does not show a client starved by other processes). None elsewhere.
    wait_percent: float | None = None
    # CPU plus waiting for a core, of the one process where the two together were highest:
    # what saturation is judged on (the busiest CPU and the longest wait may be two processes).
    busy_percent: float = 0.0
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
        if other.wait_percent is not None:
            self.wait_percent = max(self.wait_percent or 0.0, other.wait_percent)
        self.busy_percent = max(self.busy_percent, other.busy_percent)
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
            wait_percent=None if data["wait_percent"] is None else float(data["wait_percent"]),
            busy_percent=float(data["busy_percent"]),
            lag_max_ms=float(data["lag_max_ms"]),
            lag_p95_ms=float(data["lag_p95_ms"]),
        )


def split(
    requests: int, processes: int, *, concurrency: int | None, rate: float | None
) -> list[ProbeShare]:
    """``requests`` spread over at most ``processes`` processes; none gets nothing to do.

    Closed model: the workers are spread as evenly as they go and each process gets requests
    in proportion to its workers (largest remainder), so that every worker stays busy about
    as long as the others and the probe keeps its concurrency to the end. Open model: process
    ``k`` sends requests ``k, k + N, k + 2N ...`` of the one schedule."""
    processes = max(1, min(processes, requests, concurrency or requests))
    if rate:
        return [
            ProbeShare(requests // processes + (k < requests % processes), rate=rate, first=k,
                       stride=processes)
            for k in range(processes)
        ]  # fmt: skip
    total = concurrency or 1
    workers = [total // processes + (k < total % processes) for k in range(processes)]
    exact = [requests * w / total for w in workers]
    counts = [max(1, int(x)) for x in exact]
    # Largest remainder first, while requests are left; then take back from the largest
    # shares if the floor of one made the sum exceed ``requests``.
    order = sorted(range(processes), key=lambda k: exact[k] - int(exact[k]), reverse=True)
    i = 0
    while sum(counts) < requests:
        counts[order[i % processes]] += 1
        i += 1
    while sum(counts) > requests:
        counts[max(range(processes), key=lambda k: counts[k])] -= 1
    return [ProbeShare(n, concurrency=w) for n, w in zip(counts, workers, strict=True)]


def _waited_s() -> float | None:
    """Linux: seconds this thread has spent runnable but waiting for a core."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def drive(
    send: Send,
    prepared: PreparedRequest,
    endpoint: EndpointConfig | None,
    share: ProbeShare,
    expect: set[int],
    *,
    start_at: float | None = None,
) -> ProbeTally:
    """Send ``share`` of a probe from this event loop; never raises for a failed request
    (each is counted by its failure's kind). ``start_at`` (a ``time.monotonic()`` instant,
    the same for every process of a probe) is when the probe starts: its schedule, lag and
    wall time count from then."""
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
    if start_at is not None:
        started = start_at + (started - time.monotonic())  # the shared start, this clock
        if started > time.perf_counter():
            await asyncio.sleep(started - time.perf_counter())
    # The probe's own load: CPU time of this event loop's thread (other threads of the
    # process, such as a sandbox served in-process by tests, are not the client's work), and
    # the time it was ready to run but waited for a core.
    cpu_started, wait_started = time.thread_time(), _waited_s()
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
    wall_ms = max(tally.wall_ms, 1e-3)
    cpu_ms = (time.thread_time() - cpu_started) * 1000
    tally.cpu_percent = round(100 * cpu_ms / wall_ms, 1)
    wait_ended = _waited_s()
    if wait_started is not None and wait_ended is not None:
        tally.wait_percent = round(100 * (wait_ended - wait_started) * 1000 / wall_ms, 1)
    tally.busy_percent = round(tally.cpu_percent + (tally.wait_percent or 0.0), 1)
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


def _counted(tally: ProbeTally) -> int:
    """Requests a tally accounts for: every response by status, plus failures without one."""
    failures = sum(n for kind, n in tally.errors_by_kind.items() if not kind.startswith("status "))
    return sum(tally.statuses.values()) + failures


class _Child:
    """One probe process: its pipes, the tail of its stderr, and how to describe its end."""

    def __init__(self, process: asyncio.subprocess.Process, number: int, total: int) -> None:
        self.process = process
        self.name = f"probe process {number} of {total}"
        self.stderr_tail = b""
        self._drain = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr_tail = (self.stderr_tail + chunk)[-STDERR_TAIL:]

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    async def line(self) -> bytes:
        assert self.process.stdout is not None
        try:
            return await self.process.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            raise ProbeProcessError(f"{self.name} sent a report too large to read") from None

    async def ended(self) -> str:
        """Why the process stopped without reporting (it is given 5 s to finish exiting)."""
        try:
            async with asyncio.timeout(5):
                code = await self.process.wait()
        except TimeoutError:
            return f"{self.name} stopped answering"
        if code < 0:
            killed = " (SIGKILL: out of memory, or killed by hand?)" if code == -9 else ""
            return f"{self.name} was killed by signal {-code}{killed} before it reported"
        return f"{self.name} exited with code {code} before it reported"

    async def close(self) -> None:
        """Kill the process if it still runs, and reap it. Its pipes are read to their end
        first: a pipe left full would keep ``wait()`` from ever returning."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        assert self.process.stdout is not None
        with contextlib.suppress(Exception):
            await self.process.stdout.read()
        with contextlib.suppress(Exception):
            await self._drain
        await self.process.wait()


async def drive_in_processes(jobs: list[dict[str, Any]]) -> ProbeTally:
    """Run each job in its own child process, all started at one instant once every one is
    ready; the merged tally. Raises :class:`ProbeProcessError` when a child fails to start
    or report, or reports other than its share (the others are stopped at once)."""
    env = {key: os.environ[key] for key in _CHILD_ENV if key in os.environ}
    env["PYTHONPATH"] = str(_PACKAGE_ROOT)
    children: list[_Child] = []
    failed = False
    try:
        for number, job in enumerate(jobs, 1):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", CHILD_MODULE,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, cwd=str(_PACKAGE_ROOT),
                limit=REPORT_LIMIT,
            )  # fmt: skip
            children.append(_Child(process, number, len(jobs)))
            children[-1].send(json.dumps(job).encode() + b"\n")

        async def ready(child: _Child) -> None:
            line = await child.line()
            if line.strip() != b"ready":
                raise ProbeProcessError(
                    await child.ended() if not line else f"{child.name} did not start properly"
                )

        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await _all_or_first_failure([ready(child) for child in children])
        except TimeoutError:
            raise ProbeProcessError(
                f"the probe's {len(children)} processes did not all start within "
                f"{START_TIMEOUT_S:g} s"
            ) from None
        # The start barrier: every child is ready; all start at one instant a little ahead.
        start_at = time.monotonic() + START_MARGIN_S
        for child in children:
            child.send(f"go {start_at!r}\n".encode())

        async def report(child: _Child, share: dict[str, Any]) -> ProbeTally:
            line = await child.line()
            if not line:
                raise ProbeProcessError(await child.ended())
            try:
                tally = ProbeTally.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ProbeProcessError(f"{child.name} sent an unreadable report") from None
            if _counted(tally) != share["requests"]:
                raise ProbeProcessError(
                    f"{child.name} reported {_counted(tally)} requests, not the "
                    f"{share['requests']} it was given"
                )
            return tally

        parts = await _all_or_first_failure(
            [report(child, job["share"]) for child, job in zip(children, jobs, strict=True)]
        )
        tally = parts[0]
        for part in parts[1:]:
            tally.merge(part)
        tally.processes = len(children)
        return tally
    except ProbeProcessError:
        failed = True
        raise
    finally:
        await asyncio.gather(*(child.close() for child in children))
        # Only now, with every child reaped, is what each wrote to stderr all read.
        for child, job in zip(children, jobs, strict=False):
            if failed and child.stderr_tail:
                secrets = (job.get("endpoint") or {}).get("secrets", {}).values()
                log.warning(
                    "%s: its last output: %s",
                    child.name,
                    Masker(secrets).mask(child.stderr_tail.decode("utf-8", "replace")),
                )


async def _all_or_first_failure(coroutines: list[Awaitable[Any]]) -> list[Any]:
    """Every result in order, or the first failure as soon as it happens (the rest cancelled)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
