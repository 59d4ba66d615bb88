"""One process of a multi-process latency probe: ``python -m certification.engine.probe_child``.

Reads its job (one JSON line, see :func:`certification.engine.probe.child_job`) from stdin,
builds its own policy-guarded transport and warms it up (host checked, TLS store loaded, OAuth
token fetched), prints ``ready``, waits for ``go <instant>`` and from that instant sends its
share of the probe; prints its tally as one JSON line and exits. Pure Python, no Django
import; it writes nothing else to stdout, so no secret of the job can reach a report.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .masking import Masker
from .model import EndpointConfig, RunContext
from .netpolicy import AddressPolicy
from .probe import ProbeShare, ProbeTally, drive
from .transport import PreparedRequest, Transport


async def run_job(
    job: dict[str, Any],
    ready: Callable[[], None] | None = None,
    go: Awaitable[float] | None = None,
) -> ProbeTally:
    """Send the job's share. Once the transport is warm, calls ``ready`` and waits for ``go``
    (when given), which yields the shared start (a ``time.monotonic()`` instant)."""
    request = dict(job["request"])
    if request["body"] is not None:
        request["body"] = base64.b64decode(request["body"])
    prepared = PreparedRequest(**request)
    endpoint = EndpointConfig(**job["endpoint"]) if job["endpoint"] else None
    endpoints = {endpoint.name: endpoint} if endpoint else {}
    context = RunContext(endpoints=endpoints, **job["context"])
    pinned = {key: list(addresses) for key, addresses in job["pinned"].items()}
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: int) -> list[str]:
        # The addresses the parent resolved and checked, checked again here by the policy;
        # a host the parent never reached (a redirect's) is resolved off the event loop.
        found = pinned.get(f"{host}:{port}")
        if found is not None:
            return found
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    masker = Masker(endpoint.secrets.values() if endpoint else ())
    policy = AddressPolicy(job["allowed_networks"])
    share = ProbeShare(**job["share"])
    async with Transport(policy=policy, context=context, masker=masker, resolve=resolve) as t:
        await t.warm_up(prepared, endpoint)
        if ready is not None:
            ready()
        start_at = await go if go is not None else None
        return await drive(t.send, prepared, endpoint, share, set(job["expect"]), start_at=start_at)


def _die_with_parent() -> None:
    """Linux: be killed when the process that started this one dies (a worker SIGKILLed
    mid-probe must not leave its children loading the partner)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before that took effect
        os._exit(1)


async def _main() -> None:
    _die_with_parent()
    loop = asyncio.get_running_loop()
    job = json.loads(await loop.run_in_executor(None, sys.stdin.readline))

    async def released() -> float:
        word, _, instant = (await loop.run_in_executor(None, sys.stdin.readline)).partition(" ")
        if word != "go":
            os._exit(1)  # the probe was abandoned (its parent gone): send nothing
        return float(instant)

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    tally = await run_job(job, ready, released())
    sys.stdout.write(json.dumps(tally.to_dict()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_main())
