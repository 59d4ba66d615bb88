"""The bare aiohttp loop the engine benchmark compares against: the engine workload's requests
and checks (create an order, read it back, pay, replay the payment) written by hand, with no
suite, no recording and no persistence. Imports nothing of the product, so that run as a
process (``python bench/bare_loop.py URL --parallel 10``) it is what a hand-written client
costs from start-up to exit.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp


async def bare_scenario(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.post(
        f"{url}/v1/orders", json={"customerId": 1, "items": [{"sku": "WIDGET-001", "quantity": 1}]}
    ) as r:
        body = await r.json()
        ok = r.status == 201 and body["order"]["totalCents"] == 999
    order_id = body["order"]["id"]
    async with session.get(f"{url}/v1/orders/{order_id}") as r:
        body = await r.json()
        ok &= r.status == 200 and body["order"]["id"] == order_id
    headers = {"Idempotency-Key": f"pay-{order_id}"}
    payload = {"paymentMethod": "pm_test_visa"}
    async with session.post(f"{url}/v1/orders/{order_id}/pay", json=payload, headers=headers) as r:
        body = await r.json()
        ok &= r.status == 200 and body["order"]["status"] == "paid"
    payment_id = body["payment"]["id"]
    async with session.post(f"{url}/v1/orders/{order_id}/pay", json=payload, headers=headers) as r:
        body = await r.json()
        ok &= r.status == 200 and body["payment"]["id"] == payment_id
    return ok


async def bare_suite(url: str, scenarios: int, parallel: int) -> int:
    """Run ``scenarios`` scenarios, ``parallel`` at a time; returns how many did not pass."""
    gate = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> bool:
            async with gate:
                return await bare_scenario(session, url)

        results = await asyncio.gather(*(one() for _ in range(scenarios)))
    return sum(not ok for ok in results)


async def bare_probe(url: str, requests: int, concurrency: int) -> list[float]:
    """A closed-model latency probe by hand: ``requests`` GETs of /health, ``concurrency``
    at a time; the milliseconds of each 200 answer."""
    samples: list[float] = []
    remaining = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.get(f"{url}/health") as response:
                    await response.read()
                if response.status == 200:
                    samples.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    failed = asyncio.run(bare_suite(args.url, args.scenarios, args.parallel))
    print(f"{args.scenarios - failed} passed, {failed} not passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
