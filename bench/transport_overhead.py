"""Transport.send overhead against a bare aiohttp loop, on a local aiohttp server.

    .venv/bin/python bench/transport_overhead.py [--requests 2000] [--rounds 5] [--probe]

The server runs in a separate process (its own event loop) so the client side is what is
compared. Prints requests/s, sequential and at concurrency 10, for: a bare ``ClientSession``
loop, ``Transport.send`` with capture (``record=True``) and without (``record=False``, the
latency-probe path). The clients take turns for ``--rounds`` rounds and the median is shown,
so a burst of load from elsewhere on the machine hits all of them alike; client CPU time per
request (``time.process_time``) is shown too, being much less sensitive to such load.

``--probe`` adds the latency-probe check: 2000 requests at concurrency 50 against a 20 ms
handler with ``record=False``; p95 of ``total_ms`` versus the handler's own p95 (measured in
the server process, from the request reaching the handler to the handler returning).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certification.engine.masking import Masker  # noqa: E402
from certification.engine.model import RunContext  # noqa: E402
from certification.engine.netpolicy import AddressPolicy  # noqa: E402
from certification.engine.transport import PreparedRequest, Transport  # noqa: E402

BODY = b'{"id": "ord_123", "status": "accepted", "items": [1, 2, 3]}'


def _serve(port: int) -> None:
    handled: list[float] = []

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    async def slow(request: web.Request) -> web.Response:
        started = time.perf_counter()
        await asyncio.sleep(0.020)
        handled.append((time.perf_counter() - started) * 1000)
        return web.Response(body=BODY, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        values = list(handled)
        handled.clear()
        return web.json_response(values)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _rate(
    total: int, concurrency: int, one: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """(requests/s, client CPU microseconds per request)."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    for _ in range(50):  # warm up connections and caches
        await one()
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return total / wall, cpu / total * 1e6


def _transport(base: str) -> Transport:
    return Transport(
        policy=AddressPolicy(["127.0.0.0/8"]),
        context=RunContext(endpoints={}),
        masker=Masker(["bench-secret-value"]),
    )


async def _throughput(base: str, total: int, rounds: int) -> None:
    url = f"{base}/ok"
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    async with aiohttp.ClientSession() as session, _transport(base) as transport:
        request = PreparedRequest("GET", url)

        async def bare() -> None:
            async with session.get(url) as response:
                await response.read()

        async def recorded() -> None:
            exchange = await transport.send(request)
            assert exchange.failure is None, exchange.failure

        async def probe() -> None:
            exchange = await transport.send(request, record=False)
            assert exchange.failure is None, exchange.failure

        clients = [
            ("bare aiohttp", bare),
            ("Transport record=True", recorded),
            ("Transport record=False", probe),
        ]
        for _ in range(rounds):
            for concurrency in (1, 10):
                for name, one in clients:
                    measured = await _rate(total, concurrency, one)
                    results.setdefault((name, concurrency), []).append(measured)
    print(f"{'client':<24} {'conc':>4} {'req/s':>9} {'vs bare':>8} {'CPU us/req':>11}")
    for concurrency in (1, 10):
        bare_rate = statistics.median(r for r, _ in results[("bare aiohttp", concurrency)])
        for name, _ in clients:
            runs = results[(name, concurrency)]
            rate = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(
                f"{name:<24} {concurrency:>4} {rate:>9.0f} {rate / bare_rate:>7.2f}x {cpu:>11.0f}"
            )


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


async def _probe_with(
    base: str, one: Callable[[], Awaitable[float]], label: str, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{base}/stats") as response:  # reset the server's record
        await response.read()
    latencies: list[float] = []
    remaining = 2000

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await one())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(50)))
    wall = time.perf_counter() - started
    async with session.get(f"{base}/stats") as response:
        server = await response.json()
    print(
        f"{label:<34} {2000 / wall:>6.0f} req/s  server p95 {_p95(server):6.2f} ms  "
        f"client p95 {_p95(latencies):6.2f} ms  diff {_p95(latencies) - _p95(server):+6.2f} ms"
    )


async def _probe(base: str) -> None:
    """2000 requests, concurrency 50, against the 20 ms handler; bare aiohttp as a reference
    for what this machine allows (50 / 20 ms needs 2500 requests/s from one event loop)."""
    url = f"{base}/slow"
    print("latency probe: 2000 requests at concurrency 50 against a 20 ms handler")
    async with aiohttp.ClientSession() as session, _transport(base) as transport:

        async def bare() -> float:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            return (time.perf_counter() - started) * 1000

        request = PreparedRequest("GET", url)

        async def probe() -> float:
            exchange = await transport.send(request, record=False)
            assert exchange.failure is None and exchange.timings.total_ms is not None
            return exchange.timings.total_ms

        await _probe_with(base, bare, "bare aiohttp (wall clock)", session)
        await _probe_with(base, probe, "Transport record=False (total_ms)", session)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probe", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(_throughput(base, args.requests, args.rounds))
        if args.probe:
            asyncio.run(_probe(base))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
