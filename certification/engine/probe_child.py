"""One process of a multi-process latency probe: ``python -m certification.engine.probe_child``.

Reads its job (one JSON line, see :func:`certification.engine.probe.child_job`) from stdin,
builds its own policy-guarded transport, prints ``ready``, waits for ``go`` and sends its share
of the probe; prints its tally as one JSON line and exits. Pure Python, no Django import; it
writes nothing else, so no secret of the job can reach a log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .masking import Masker
from .model import EndpointConfig, RunContext
from .netpolicy import AddressPolicy
from .probe import ProbeShare, ProbeTally, drive
from .transport import PreparedRequest, Transport


async def run_job(
    job: dict[str, Any],
    ready: Callable[[], None] | None = None,
    go: asyncio.Future[None] | None = None,
) -> ProbeTally:
    """Send the job's share; once the transport is built, calls ``ready`` and waits for
    ``go`` (when given)."""
    request = dict(job["request"])
    if request["body"] is not None:
        request["body"] = base64.b64decode(request["body"])
    prepared = PreparedRequest(**request)
    endpoint = EndpointConfig(**job["endpoint"]) if job["endpoint"] else None
    endpoints = {endpoint.name: endpoint} if endpoint else {}
    context = RunContext(endpoints=endpoints, **job["context"])
    pinned = {key: list(addresses) for key, addresses in job["pinned"].items()}

    def resolve(host: str, port: int) -> list[str]:
        # The addresses the parent resolved and checked, checked again here by the policy;
        # a host the parent did not reach (a redirect's) is resolved by the system.
        found = pinned.get(f"{host}:{port}")
        if found is None:
            import socket

            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return [str(info[4][0]) for info in infos]
        return found

    masker = Masker(endpoint.secrets.values() if endpoint else ())
    policy = AddressPolicy(job["allowed_networks"])
    share = ProbeShare(**job["share"])
    async with Transport(policy=policy, context=context, masker=masker, resolve=resolve) as t:
        if ready is not None:
            ready()
        if go is not None:
            await go
        return await drive(t.send, prepared, endpoint, share, set(job["expect"]))


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
    go: asyncio.Future[None] = loop.create_future()

    async def released() -> None:
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            os._exit(1)  # the probe was abandoned (its parent gone): send nothing
        go.set_result(None)

    waiting: list[asyncio.Task[None]] = []

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        waiting.append(asyncio.ensure_future(released()))

    tally = await run_job(job, ready, go)
    sys.stdout.write(json.dumps(tally.to_dict()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_main())
