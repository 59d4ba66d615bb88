"""Transport against real local HTTP servers: captures, timings, caps, deadlines, failure
classification, redirects and the address policy at connect time."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from typing import Any

import pytest
from aiohttp import web

from certification.engine.masking import MASK, Masker
from certification.engine.model import MISSING, EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy, ResolvedTarget
from certification.engine.transport import Exchange, PreparedRequest, Transport
from tests.engine.servers import (
    HITS,
    STATE,
    closed_port,
    partner_app,
    read_request_head,
    serve,
    serve_raw,
)

LOOPBACK = AddressPolicy(["127.0.0.0/8"])


def make_transport(
    policy: AddressPolicy = LOOPBACK, masker: Masker | None = None, **context: Any
) -> Transport:
    return Transport(
        policy=policy,
        context=RunContext(endpoints={}, **context),
        masker=masker or Masker([]),
    )


async def fetch(url: str, *, transport: Transport | None = None, **kwargs: Any) -> Exchange:
    """One request on a fresh transport (or the one given)."""
    method = kwargs.pop("method", "GET")
    request = PreparedRequest(method, url, **kwargs)
    if transport is not None:
        return await transport.send(request)
    async with make_transport() as fresh:
        return await fresh.send(request)


def test_get_json_round_trip_is_captured_with_size_and_sha256() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(f"{base}/echo?q=1", headers={"Accept": "application/json"})
        assert exchange.failure is None
        assert exchange.status == 200
        assert exchange.headers["content-type"].startswith("application/json")
        assert exchange.json()["query"] == {"q": "1"}
        request, response = exchange.request, exchange.response
        assert request is not None and response is not None
        assert (request.method, request.url) == ("GET", f"{base}/echo?q=1")
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Host"] == base.removeprefix("http://")  # as actually sent
        assert response.status == 200
        assert response.body == exchange.body.decode()
        assert response.body_size == len(exchange.body)
        assert response.body_sha256 == hashlib.sha256(exchange.body).hexdigest()
        assert not response.truncated

    asyncio.run(scenario())


def test_post_json_round_trip_captures_the_request_body() -> None:
    payload = json.dumps({"order": "ord_1", "qty": 2}).encode()

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(
                f"{base}/echo",
                method="post",
                headers={"Content-Type": "application/json"},
                body=payload,
            )
        assert exchange.failure is None
        echoed = exchange.json()
        assert echoed["method"] == "POST"
        assert json.loads(echoed["body"]) == {"order": "ord_1", "qty": 2}
        request = exchange.request
        assert request is not None
        assert request.method == "POST"
        assert request.body == payload.decode()
        assert request.body_size == len(payload)
        assert request.body_sha256 == hashlib.sha256(payload).hexdigest()
        assert request.headers["Content-Type"] == "application/json"

    asyncio.run(scenario())


def test_timings_are_measured_and_total_covers_the_server_delay() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(f"{base}/delay?ms=150")
        timings = exchange.timings
        assert exchange.failure is None
        assert timings.connect_ms is not None and timings.connect_ms > 0
        assert timings.tls_ms is None  # plain http
        assert timings.ttfb_ms is not None and timings.ttfb_ms >= 145
        assert timings.total_ms is not None and timings.total_ms >= timings.ttfb_ms >= 145

    asyncio.run(scenario())


def test_reused_keep_alive_connection_has_no_connect_time() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport() as transport:
            first = await fetch(f"{base}/echo", transport=transport)
            second = await fetch(f"{base}/echo", transport=transport)
        assert first.timings.connect_ms is not None
        assert second.timings.connect_ms is None
        assert second.timings.ttfb_ms is not None and second.timings.total_ms is not None

    asyncio.run(scenario())


def test_body_capture_is_truncated_but_hashes_the_full_body() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(body_capture_bytes=100) as t:
            exchange = await fetch(f"{base}/bytes?n=5000", transport=t)
        response = exchange.response
        assert response is not None
        assert response.truncated
        assert response.body == "a" * 100
        assert response.body_size == 5000
        assert response.body_sha256 == hashlib.sha256(b"a" * 5000).hexdigest()
        assert exchange.body == b"a" * 5000  # assertions still see everything

    asyncio.run(scenario())


def test_binary_body_is_captured_as_base64() -> None:
    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/bin", binary)

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await fetch(f"{base}/bin")
        response = exchange.response
        assert response is not None
        assert response.body.startswith("base64:")
        assert response.body_size == 256
        assert exchange.json() is MISSING

    asyncio.run(scenario())


def test_body_over_the_cap_fails_too_large() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(max_body_bytes=10_000) as t:
            exchange = await fetch(f"{base}/bytes?n=10001", transport=t)
            within = await fetch(f"{base}/bytes?n=10000", transport=t)
        assert exchange.failure is not None
        assert exchange.failure.kind == "too_large"
        assert exchange.failure.message == "response body exceeds 10000 bytes"
        assert within.failure is None

    asyncio.run(scenario())


def test_gzip_bomb_fails_too_large_on_decoded_size() -> None:
    app = partner_app()

    async def scenario() -> None:
        async with serve(app) as base, make_transport(max_body_bytes=1_000_000) as transport:
            exchange = await fetch(f"{base}/gzip-bomb?n=50000000", transport=transport)
        assert app[STATE]["bomb_compressed_size"] < 100_000  # small on the wire, 50 MB decoded
        assert exchange.failure is not None
        assert exchange.failure.kind == "too_large"
        assert len(exchange.body) <= 1_000_000

    asyncio.run(scenario())


def test_endless_chunked_body_fails_too_large() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(max_body_bytes=200_000) as t:
            started = time.perf_counter()
            exchange = await fetch(f"{base}/endless", transport=t)
            elapsed = time.perf_counter() - started
        assert exchange.failure is not None
        assert exchange.failure.kind == "too_large"
        assert exchange.status == 200
        assert elapsed < 5

    asyncio.run(scenario())


def test_dripping_server_is_cut_at_the_deadline() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            started = time.perf_counter()
            exchange = await fetch(f"{base}/drip?interval_ms=200", timeout_ms=1000)
            elapsed = time.perf_counter() - started
        assert exchange.failure is not None
        assert exchange.failure.kind == "timeout"
        assert "1000 ms" in exchange.failure.message
        assert 0.95 <= elapsed < 1.6

    asyncio.run(scenario())


def test_connection_refused_is_classified_refused() -> None:
    async def scenario() -> None:
        exchange = await fetch(f"http://127.0.0.1:{closed_port()}/")
        assert exchange.failure is not None
        assert exchange.failure.kind == "refused"
        assert exchange.response is None
        assert exchange.request is not None  # what we tried to send is still recorded

    asyncio.run(scenario())


def test_socket_closed_mid_response_is_connection_reset() -> None:
    async def half_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with serve_raw(half_response) as base:
            exchange = await fetch(f"{base}/")
        assert exchange.failure is not None
        assert exchange.failure.kind == "connection_reset"
        assert exchange.status == 200  # the headers did arrive

    asyncio.run(scenario())


def test_malformed_http_response_is_classified_invalid_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with serve_raw(garbage) as base:
            exchange = await fetch(f"{base}/")
        assert exchange.failure is not None
        assert exchange.failure.kind == "invalid_response"
        assert "\n" not in exchange.failure.message

    asyncio.run(scenario())


def test_redirect_is_followed_and_recorded() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(f"{base}/redirect?to=/echo/final")
        assert exchange.failure is None
        assert exchange.status == 200
        assert exchange.redirects == [f"{base}/echo/final"]
        assert exchange.json()["path"] == "/echo/final"
        assert exchange.request is not None and exchange.request.url == f"{base}/echo/final"

    asyncio.run(scenario())


@pytest.mark.parametrize(("status", "method", "kept"), [(303, "GET", False), (302, "GET", False)])
def test_post_redirected_by_303_or_302_becomes_a_get_without_body(
    status: int, method: str, kept: bool
) -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(
                f"{base}/redirect?status={status}&to=/echo",
                method="POST",
                headers={"Content-Type": "application/json"},
                body=b'{"a": 1}',
            )
        echoed = exchange.json()
        assert (echoed["method"], echoed["body"]) == (method, "")
        assert "Content-Type" not in echoed["headers"]

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_keep_the_method_and_body(status: int) -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(
                f"{base}/redirect?status={status}&to=/echo", method="PUT", body=b"payload"
            )
        echoed = exchange.json()
        assert (echoed["method"], echoed["body"]) == ("PUT", "payload")

    asyncio.run(scenario())


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"])
def test_redirect_to_an_internal_address_is_blocked_before_connecting(target: str) -> None:
    # pytest-socket only lets tests connect to loopback: had the transport tried to connect
    # to the target, the failure would be a socket error, not blocked_address.
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await fetch(f"{base}/redirect?to={target}")
        assert exchange.failure is not None
        assert exchange.failure.kind == "blocked_address"
        assert "is not a public address" in exchange.failure.message
        assert exchange.redirects == [target]

    asyncio.run(scenario())


def test_redirect_loop_fails_with_redirect_limit_after_five() -> None:
    app = partner_app()

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await fetch(f"{base}/loop")
        assert exchange.failure is not None
        assert exchange.failure.kind == "redirect_limit"
        assert len(exchange.redirects) == 5
        assert app[HITS]["/loop"] == 6  # the original request and five redirects

    asyncio.run(scenario())


def test_authorization_is_not_forwarded_to_another_origin() -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="api_key", secrets={"api_key": "key-for-origin-a"}
    )

    async def scenario() -> None:
        async with (
            serve(partner_app()) as origin_a,
            serve(partner_app()) as origin_b,  # another port: another origin
            make_transport() as transport,
        ):
            request = PreparedRequest(
                "GET",
                f"{origin_a}/redirect?to={origin_b}/echo",
                headers={"Authorization": "Bearer for-a-only", "Cookie": "s=1", "X-Trace": "t"},
            )
            crossed = await transport.send(request, endpoint=endpoint)
            same = await transport.send(
                PreparedRequest("GET", f"{origin_a}/redirect?to=/echo", headers=request.headers),
                endpoint=endpoint,
            )
        received = crossed.json()["headers"]
        assert "Authorization" not in received
        assert "Cookie" not in received
        assert "X-API-Key" not in received
        assert received["X-Trace"] == "t"
        kept = same.json()["headers"]
        assert kept["Authorization"] == "Bearer for-a-only"
        assert kept["X-API-Key"] == "key-for-origin-a"

    asyncio.run(scenario())


def test_policy_without_loopback_refuses_127_0_0_1() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(AddressPolicy()) as transport:
            exchange = await fetch(f"{base}/echo", transport=transport)
        assert exchange.failure is not None
        assert exchange.failure.kind == "blocked_address"
        assert exchange.failure.message == (
            "The URL host '127.0.0.1' is not a public address: loopback."
        )
        assert exchange.response is None

    asyncio.run(scenario())


class CountingPolicy(AddressPolicy):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checks: list[str] = []

    async def check_url_async(self, url: str, **kwargs: Any) -> ResolvedTarget:
        self.checks.append(url)
        return await super().check_url_async(url, **kwargs)


def test_localhost_is_checked_once_and_pinned_for_the_run() -> None:
    policy = CountingPolicy(["127.0.0.0/8"])
    app = partner_app()

    async def scenario() -> None:
        async with serve(app) as base, make_transport(policy) as transport:
            url = base.replace("127.0.0.1", "localhost") + "/close"
            # /close drops every connection, so each request connects (and resolves) anew.
            exchanges = [await fetch(url, transport=transport) for _ in range(3)]
            exchanges += await asyncio.gather(*(fetch(url, transport=transport) for _ in range(5)))
        assert [e.failure for e in exchanges] == [None] * 8
        assert all(e.timings.connect_ms is not None for e in exchanges)
        assert app[HITS]["/close"] == 8
        assert len(policy.checks) == 1
        port = base.rsplit(":", 1)[1]
        assert exchanges[0].json()["host"] == f"localhost:{port}"

    asyncio.run(scenario())


def test_hostname_is_resolved_once_and_the_checked_address_is_connected() -> None:
    lookups: list[tuple[str, int]] = []

    async def fake_dns(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        await asyncio.sleep(0.01)  # concurrent first requests must share this lookup
        return ["127.0.0.1"]

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            port = int(base.rsplit(":", 1)[1])
            transport = Transport(
                policy=LOOPBACK,
                context=RunContext(endpoints={}),
                masker=Masker([]),
                resolve=fake_dns,
            )
            async with transport:
                url = f"http://partner.test:{port}/close"
                exchanges = await asyncio.gather(
                    *(fetch(url, transport=transport) for _ in range(4))
                )
                exchanges.append(await fetch(url, transport=transport))
        assert [e.failure for e in exchanges] == [None] * 5
        assert lookups == [("partner.test", port)]
        assert {e.json()["host"] for e in exchanges} == {f"partner.test:{port}"}

    asyncio.run(scenario())


def test_hostname_resolving_to_an_internal_address_is_blocked() -> None:
    async def rebinding_dns(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    async def scenario() -> None:
        transport = Transport(
            policy=LOOPBACK,
            context=RunContext(endpoints={}),
            masker=Masker([]),
            resolve=rebinding_dns,
        )
        async with transport:
            exchange = await fetch("http://evil.test/", transport=transport)
        assert exchange.failure is not None
        assert exchange.failure.kind == "blocked_address"
        assert "10.1.2.3" in exchange.failure.message

    asyncio.run(scenario())


def test_dns_failure_is_classified_dns() -> None:
    def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def scenario() -> None:
        transport = Transport(
            policy=LOOPBACK,
            context=RunContext(endpoints={}),
            masker=Masker([]),
            resolve=no_such_host,
        )
        async with transport:
            exchange = await fetch("http://missing.test/", transport=transport)
        assert exchange.failure is not None
        assert exchange.failure.kind == "dns"
        assert "missing.test" in exchange.failure.message

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/file", "http://user:pw@127.0.0.1/", "/relative/path", "http:///x"]
)
def test_bad_url_is_classified_bad_url(url: str) -> None:
    async def scenario() -> None:
        exchange = await fetch(url)
        assert exchange.failure is not None
        assert exchange.failure.kind == "bad_url"

    asyncio.run(scenario())


def test_record_false_skips_capture_but_still_reads_and_checks_the_body() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(max_body_bytes=1000) as t:
            ok = await t.send(PreparedRequest("GET", f"{base}/bytes?n=1000"), record=False)
            big = await t.send(PreparedRequest("GET", f"{base}/bytes?n=1001"), record=False)
        assert (ok.request, ok.response, ok.failure, ok.status) == (None, None, None, 200)
        assert ok.timings.total_ms is not None and ok.timings.ttfb_ms is not None
        assert big.failure is not None and big.failure.kind == "too_large"

    asyncio.run(scenario())


def test_known_secrets_are_masked_in_url_headers_and_bodies() -> None:
    masker = Masker(["run-secret-value"])

    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport(masker=masker) as transport:
            exchange = await fetch(
                f"{base}/echo?key=run-secret-value",
                transport=transport,
                method="POST",
                headers={"X-Custom": "run-secret-value", "Authorization": "Basic abc"},
                body=b'{"password": "run-secret-value"}',
            )
        request, response = exchange.request, exchange.response
        assert request is not None and response is not None
        captured = json.dumps([request.url, request.headers, request.body, response.body])
        assert "run-secret-value" not in captured
        assert request.url.endswith(f"key={MASK}")
        assert request.headers["Authorization"] == MASK
        assert exchange.json()["query"]["key"] == "run-secret-value"  # unmasked for assertions

    asyncio.run(scenario())
