"""End to end: a partner sandbox that echoes a request's credentials back, in every encoding an
echo server uses, leaves none of them readable in what the transport records."""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from certification.engine.masking import MASK, Masker
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.transport import Exchange, PreparedRequest, Transport
from tests.engine.servers import encoding_echo_app, serve

LOOPBACK = AddressPolicy(["127.0.0.0/8"])
RUN_SECRET = 'sk_live/AbC+def=ghi"jk\\é'  # a {{secret.*}} of the run
API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"  # the endpoint's api_key
SECRETS = (RUN_SECRET, API_KEY)
_WINDOW = 8  # any run of this many characters of a secret counts as a trace
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _decodings(text: str) -> Iterator[str]:
    """What one decoding step can get out of ``text``: JSON strings, percent-, HTML-, hex- and
    base64-decoded text (hex and base64 runs at every alignment)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    yield from _strings(value)
    yield unquote(text)
    yield unquote_plus(text)
    yield html.unescape(text)
    for run in _HEX_RUN.findall(text):
        for start in (0, 1):
            digits = run[start : start + (len(run) - start) // 2 * 2]
            yield bytes.fromhex(digits).decode("utf-8", errors="replace")
    for run in _BASE64_RUN.findall(text):
        standard = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            chunk = standard[start : start + (len(standard) - start) // 4 * 4]
            try:
                data = base64.b64decode(chunk)
            except binascii.Error:
                continue
            yield data.decode("utf-8", errors="replace")


def decoded_views(text: str, depth: int = 4) -> set[str]:
    """``text`` and everything decodable out of it, up to ``depth`` decodings deep."""
    views = {text}
    frontier = {text}
    for _ in range(depth):
        frontier = {found for view in frontier for found in _decodings(view)} - views
        views |= frontier
    return views


def traces(text: str) -> list[str]:
    """The secrets (runs of ``_WINDOW`` characters) readable in ``text``, once decoded."""
    found = []
    for view in decoded_views(text):
        for secret in SECRETS:
            found += [
                secret[i : i + _WINDOW]
                for i in range(len(secret) - _WINDOW + 1)
                if secret[i : i + _WINDOW] in view
            ]
    return found


def echo_exchange() -> Exchange:
    endpoint = EndpointConfig(
        name="api",
        base_url="",
        auth_kind="api_key",
        auth_config={"header_name": "X-Partner-Key"},
        secrets={"api_key": API_KEY},
    )
    basic = base64.b64encode(f"user:{RUN_SECRET}".encode()).decode()

    async def scenario() -> Exchange:
        async with (
            serve(encoding_echo_app()) as base,
            Transport(
                policy=LOOPBACK,
                context=RunContext(endpoints={"api": endpoint}, secrets={"s": RUN_SECRET}),
                # As the runner does: the run's secrets up front; the transport adds the
                # endpoint's own.
                masker=Masker([RUN_SECRET]),
            ) as transport,
        ):
            request = PreparedRequest(
                "POST",
                f"{base}/echo-encoded?token={quote(RUN_SECRET, safe='')}&key={API_KEY}",
                headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
                body=json.dumps({"password": RUN_SECRET, "key": API_KEY}).encode(),
            )
            return await transport.send(request, endpoint=endpoint)

    return asyncio.run(scenario())


def test_echoed_secrets_leave_no_trace_in_any_encoding_in_the_recorded_exchange() -> None:
    exchange = echo_exchange()
    assert exchange.failure is None and exchange.status == 200
    request, response = exchange.request, exchange.response
    assert request is not None and response is not None and not response.truncated

    # The server did echo both secrets in every encoding, so finding none below means
    # something. (Exchange.body and .headers are the unmasked copies kept for assertions.)
    echoed = json.loads(exchange.body)
    assert len(echoed) == 12
    for name, value in echoed.items():
        text = value if isinstance(value, str) else json.dumps(value)
        for secret in SECRETS:
            assert any(secret in view for view in decoded_views(text)), (name, secret)
    echo_headers = {k: v for k, v in exchange.headers.items() if k.startswith("x-echo-")}
    assert len(echo_headers) == 8
    assert any(API_KEY in view for view in decoded_views(exchange.headers["x-echo-query"]))

    recorded = json.loads(response.body)  # masking keeps the JSON valid
    assert list(recorded) == list(echoed)
    for name, value in recorded.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        assert MASK in text, name
        assert not traces(text), name
    assert not traces(response.body)
    for name, value in response.headers.items():
        assert not traces(value), name
    assert not traces(json.dumps([request.url, request.headers, request.body]))
