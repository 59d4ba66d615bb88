"""Endpoint auth through the transport, against real local servers: API keys, bearer tokens,
HMAC signatures, OAuth2 client credentials and mTLS client certificates."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from certification.engine import auth as auth_module
from certification.engine.auth import (
    AuthFailure,
    OAuth2ClientCredentials,
    TokenResponse,
    sign,
    verify_signature,
)
from certification.engine.masking import MASK, Masker
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.transport import Exchange, PreparedRequest, Transport
from tests.engine.servers import HITS, STATE, make_pki, partner_app, serve

LOOPBACK = AddressPolicy(["127.0.0.0/8"])


def make_transport(**kwargs: Any) -> Transport:
    return Transport(policy=LOOPBACK, context=RunContext(endpoints={}), masker=Masker([]), **kwargs)


async def send_with(
    endpoint: EndpointConfig, url: str, *, transport: Transport | None = None, **kwargs: Any
) -> Exchange:
    method = kwargs.pop("method", "GET")
    request = PreparedRequest(method, url, **kwargs)
    if transport is not None:
        return await transport.send(request, endpoint=endpoint)
    async with make_transport() as fresh:
        return await fresh.send(request, endpoint=endpoint)


# -------------------------------------------------------------------- api_key / bearer


def test_api_key_reaches_the_server_in_the_configured_header_and_is_masked() -> None:
    endpoint = EndpointConfig(
        name="api",
        base_url="",
        auth_kind="api_key",
        auth_config={"header_name": "X-Partner-Key"},
        secrets={"api_key": "partner-key-123456"},
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/echo")
        assert exchange.json()["headers"]["X-Partner-Key"] == "partner-key-123456"
        request, response = exchange.request, exchange.response
        assert request is not None and response is not None
        assert request.headers["X-Partner-Key"] == MASK
        assert "partner-key-123456" not in response.body  # the echo is masked too

    asyncio.run(scenario())


def test_api_key_header_defaults_to_x_api_key() -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="api_key", secrets={"api_key": "default-header-key"}
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/echo")
        assert exchange.json()["headers"]["X-API-Key"] == "default-header-key"

    asyncio.run(scenario())


def test_bearer_token_reaches_the_server_and_is_masked() -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="bearer", secrets={"token": "bearer-token-abcdef"}
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/echo")
        assert exchange.json()["headers"]["Authorization"] == "Bearer bearer-token-abcdef"
        assert exchange.request is not None and exchange.response is not None
        assert exchange.request.headers["Authorization"] == MASK
        assert "bearer-token-abcdef" not in exchange.response.body

    asyncio.run(scenario())


def test_http_basic_reaches_the_server_and_its_encoded_credentials_are_masked() -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="basic", auth_config={"username": "AC0123456789"},
        secrets={"password": "basic-password-xyz"},
    )  # fmt: skip
    encoded = base64.b64encode(b"AC0123456789:basic-password-xyz").decode()

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/echo")
        assert exchange.json()["headers"]["Authorization"] == f"Basic {encoded}"
        assert exchange.request is not None and exchange.response is not None
        assert exchange.request.headers["Authorization"] == MASK
        assert encoded not in exchange.response.body  # echoed back, still masked
        assert "basic-password-xyz" not in exchange.response.body

    asyncio.run(scenario())


def test_http_basic_without_a_username_is_an_error_naming_the_endpoint() -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="basic", secrets={"password": "basic-password-xyz"}
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/echo")
        assert exchange.failure is not None
        assert "'api' (basic)" in exchange.failure.message
        assert "username" in exchange.failure.message

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "header"),
    [
        ("bearer", {}, {"token": "bearer-token-abcdef"}, "Authorization"),
        ("api_key", {}, {"api_key": "partner-key-123456"}, "X-API-Key"),
        ("basic", {"username": "AC01"}, {"password": "basic-password-xyz"}, "Authorization"),
        ("hmac", {}, {"signing_secret": "hmac-secret-123456"}, "X-Signature"),
    ],
)
def test_a_request_without_auth_carries_none_of_the_endpoints_credentials(
    kind: str, config: dict[str, str], secrets: dict[str, str], header: str
) -> None:
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind=kind, auth_config=config, secrets=secrets
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(endpoint, f"{base}/api", use_auth=False)
        assert exchange.response is not None and exchange.response.status == 401
        assert header not in exchange.request.headers
        assert exchange.failure is None  # a 401 is an answer, for the assertions to judge

    asyncio.run(scenario())


def test_an_explicit_authorization_header_wins_over_the_endpoint_auth() -> None:
    # Exception scenarios send a wrong token on purpose and expect a 401.
    endpoint = EndpointConfig(
        name="api", base_url="", auth_kind="bearer", secrets={"token": "the-real-token"}
    )

    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(
                endpoint, f"{base}/echo", headers={"authorization": "Bearer wrong"}
            )
        headers = exchange.json()["headers"]
        assert headers["Authorization"] == "Bearer wrong"

    asyncio.run(scenario())


def test_misconfigured_auth_is_a_failure_not_a_crash() -> None:
    missing = EndpointConfig(name="api", base_url="", auth_kind="bearer", secrets={})
    unknown = EndpointConfig(name="api2", base_url="", auth_kind="kerberos")

    async def scenario() -> None:
        async with serve(partner_app()) as base, make_transport() as transport:
            first = await send_with(missing, f"{base}/echo", transport=transport)
            second = await send_with(unknown, f"{base}/echo", transport=transport)
        assert first.failure is not None and second.failure is not None
        assert (first.failure.kind, second.failure.kind) == ("error", "error")
        assert "secret 'token' is missing" in first.failure.message
        assert "unknown auth kind 'kerberos'" in second.failure.message

    asyncio.run(scenario())


# --------------------------------------------------------------------------------- HMAC


def hmac_endpoint(**config: str) -> EndpointConfig:
    return EndpointConfig(
        name="signed",
        base_url="",
        auth_kind="hmac",
        auth_config=config,
        secrets={"signing_secret": "whsec-signing-secret"},
    )


def test_hmac_signature_is_accepted_by_the_server_and_masked() -> None:
    app = partner_app()
    app[STATE]["signing_secret"] = "whsec-signing-secret"

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await send_with(
                hmac_endpoint(key_id="key-2026"), f"{base}/signed", method="POST", body=b'{"a":1}'
            )
        assert exchange.status == 200, exchange.body
        assert exchange.json() == {"verified": True, "key_id": "key-2026"}
        assert exchange.request is not None
        assert exchange.request.headers["X-Signature"] == MASK
        assert exchange.request.headers["X-Key-Id"] == "key-2026"

    asyncio.run(scenario())


def test_hmac_request_is_resigned_when_a_303_drops_the_body() -> None:
    app = partner_app()
    app[STATE]["signing_secret"] = "whsec-signing-secret"

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await send_with(
                hmac_endpoint(),
                f"{base}/redirect?status=303&to=/signed",
                method="POST",
                body=b'{"order": 1}',
            )
        assert app[STATE]["signed"] == ["GET"]
        assert exchange.json()["verified"] is True

    asyncio.run(scenario())


def test_hmac_signature_verifies_round_trip() -> None:
    header = sign(b'{"id": 1}', "secret-key", timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    verify_signature(header, b'{"id": 1}', "secret-key", now=1_700_000_100)
    # The playbook spells it with a space after the comma; both are accepted.
    verify_signature(header.replace(",", ", "), '{"id": 1}', "secret-key", now=1_700_000_000)


def test_hmac_signature_outside_the_window_is_expired() -> None:
    header = sign(b"{}", "secret-key", timestamp=1_700_000_000)
    with pytest.raises(ValueError, match="^expired$"):
        verify_signature(header, b"{}", "secret-key", now=1_700_000_601)
    with pytest.raises(ValueError, match="^expired$"):
        verify_signature(header, b"{}", "secret-key", now=1_699_999_000)  # from the future


def test_hmac_signature_of_a_tampered_body_is_invalid() -> None:
    header = sign(b'{"amount": 10}', "secret-key", timestamp=1_700_000_000)
    with pytest.raises(ValueError, match="^invalid signature$"):
        verify_signature(header, b'{"amount": 1000}', "secret-key", now=1_700_000_000)
    with pytest.raises(ValueError, match="^invalid signature$"):
        verify_signature(header, b'{"amount": 10}', "other-key", now=1_700_000_000)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=abc,v1=00", "t=1", "garbage"])
def test_malformed_hmac_signature_header_is_rejected(header: str) -> None:
    with pytest.raises(ValueError, match="^malformed$"):
        verify_signature(header, b"", "secret-key", now=1)


# ------------------------------------------------------------------------------- OAuth2


def oauth_endpoint(base: str, **config: str) -> EndpointConfig:
    return EndpointConfig(
        name="oauth-api",
        base_url=base,
        auth_kind="oauth2_client_credentials",
        auth_config={"token_url": f"{base}/token", "client_id": "client-42", **config},
        secrets={"client_secret": "client-secret-value"},
    )


def test_oauth2_token_is_fetched_once_for_many_concurrent_requests() -> None:
    app = partner_app()

    async def scenario() -> None:
        async with serve(app) as base, make_transport() as transport:
            endpoint = oauth_endpoint(base, scope="orders:read")
            exchanges = await asyncio.gather(
                *(send_with(endpoint, f"{base}/api", transport=transport) for _ in range(20))
            )
            exchanges.append(await send_with(endpoint, f"{base}/api", transport=transport))
        assert [e.status for e in exchanges] == [200] * 21
        assert app[HITS]["/token"] == 1
        (token_request,) = app[STATE]["token_requests"]
        expected = base64.b64encode(b"client-42:client-secret-value").decode()
        assert token_request["authorization"] == f"Basic {expected}"
        assert token_request["form"] == {"grant_type": "client_credentials", "scope": "orders:read"}
        assert set(app[STATE]["api_tokens"]) == {"access-token-0001-abcdef"}

    asyncio.run(scenario())


def test_oauth2_access_token_is_masked_in_the_capture() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            exchange = await send_with(oauth_endpoint(base), f"{base}/api")
        assert exchange.json()["token"] == "access-token-0001-abcdef"
        assert exchange.request is not None and exchange.response is not None
        assert exchange.request.headers["Authorization"] == MASK
        assert "access-token-0001" not in exchange.response.body

    asyncio.run(scenario())


def test_oauth2_token_is_refreshed_once_on_401_and_the_request_retried() -> None:
    app = partner_app()
    app[STATE]["rejected_tokens"] = {"access-token-0001-abcdef"}  # revoked early

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await send_with(oauth_endpoint(base), f"{base}/api")
        assert exchange.status == 200
        assert exchange.json()["token"] == "access-token-0002-abcdef"
        assert app[HITS]["/token"] == 2
        assert app[STATE]["api_tokens"] == ["access-token-0001-abcdef", "access-token-0002-abcdef"]

    asyncio.run(scenario())


def test_oauth2_retries_only_once_when_the_api_keeps_answering_401() -> None:
    app = partner_app()
    app[STATE]["rejected_tokens"] = {f"access-token-{n:04d}-abcdef" for n in range(1, 10)}

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await send_with(oauth_endpoint(base), f"{base}/api")
        assert exchange.failure is None
        assert exchange.status == 401  # reported as is, for the assertions to judge
        assert (app[HITS]["/token"], app[HITS]["/api"]) == (2, 2)

    asyncio.run(scenario())


def test_oauth2_token_endpoint_error_is_classified() -> None:
    app = partner_app()
    app[STATE]["token_error"] = "invalid_client"

    async def scenario() -> None:
        async with serve(app) as base:
            exchange = await send_with(oauth_endpoint(base), f"{base}/api")
        assert exchange.failure is not None
        assert exchange.failure.kind == "error"
        assert exchange.failure.message == (
            f"OAuth2 token request to {base}/token failed: 400 invalid_client"
        )
        assert app[HITS]["/api"] == 0

    asyncio.run(scenario())


def test_oauth2_token_request_goes_through_the_address_policy() -> None:
    async def scenario() -> None:
        async with serve(partner_app()) as base:
            endpoint = oauth_endpoint(base, token_url="http://169.254.169.254/token")
            exchange = await send_with(endpoint, f"{base}/api")
        assert exchange.failure is not None
        assert exchange.failure.kind == "blocked_address"
        assert exchange.failure.message.startswith(
            "OAuth2 token request to http://169.254.169.254/token failed:"
        )

    asyncio.run(scenario())


def test_oauth2_token_is_cached_until_30_seconds_before_expiry() -> None:
    now = [1000.0]
    issued: list[str] = []

    async def fetch(url: str, headers: dict[str, str], body: bytes) -> TokenResponse:
        issued.append(f"t{len(issued) + 1}")
        return TokenResponse(200, f'{{"access_token": "{issued[-1]}", "expires_in": 600}}'.encode())

    async def scenario() -> None:
        oauth = OAuth2ClientCredentials(
            token_url="http://127.0.0.1/token",
            client_id="c",
            client_secret="s",
            clock=lambda: now[0],
        )
        assert await oauth.token(fetch) == "t1"
        now[0] += 569
        assert await oauth.token(fetch) == "t1"
        now[0] += 2  # 571 s: inside the 30 s margin
        assert await oauth.token(fetch) == "t2"

    asyncio.run(scenario())


def test_oauth2_concurrent_waiters_share_a_failed_fetch() -> None:
    calls = 0

    async def fetch(url: str, headers: dict[str, str], body: bytes) -> TokenResponse:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return TokenResponse(401, b'{"error": "invalid_client"}')

    async def scenario() -> None:
        oauth = OAuth2ClientCredentials(
            token_url="http://x.test/t", client_id="c", client_secret="s"
        )
        results = await asyncio.gather(
            *(oauth.token(fetch) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, AuthFailure) for r in results)
        assert calls == 1

    asyncio.run(scenario())


# --------------------------------------------------------------------------------- mTLS


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    return make_pki(tmp_path)


def mtls_endpoint(pki: Any) -> EndpointConfig:
    return EndpointConfig(
        name="mtls",
        base_url="",
        auth_kind="mtls",
        secrets={"client_cert_pem": pki.client_cert_pem, "client_key_pem": pki.client_key_pem},
    )


def test_mtls_request_succeeds_with_the_client_certificate(pki: Any) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def scenario() -> None:
        async with serve(partner_app(), ssl_context=pki.server_context()) as base:
            # A name, not an IP: the server certificate is checked against the hostname (SNI)
            # while the connection goes to the pinned address.
            url = base.replace("127.0.0.1", "partner.test") + "/echo"
            async with make_transport(resolve=resolve, ca_pem=pki.ca_pem) as transport:
                exchange = await send_with(mtls_endpoint(pki), url, transport=transport)
        assert exchange.failure is None, exchange.failure
        assert exchange.status == 200
        timings = exchange.timings
        assert timings.connect_ms is not None and timings.tls_ms is not None
        assert timings.tls_ms > 0

    asyncio.run(scenario())


def test_request_without_the_client_certificate_fails_with_tls_error(pki: Any) -> None:
    async def scenario() -> None:
        async with (
            serve(partner_app(), ssl_context=pki.server_context()) as base,
            make_transport(ca_pem=pki.ca_pem) as transport,
        ):
            exchange = await transport.send(PreparedRequest("GET", f"{base}/echo"))
        assert exchange.failure is not None
        assert exchange.failure.kind == "tls_error"

    asyncio.run(scenario())


def test_untrusted_server_certificate_fails_with_tls_error(pki: Any) -> None:
    async def scenario() -> None:
        async with (
            serve(partner_app(), ssl_context=pki.server_context()) as base,
            make_transport() as transport,  # the test CA is not trusted
        ):
            exchange = await send_with(mtls_endpoint(pki), f"{base}/echo", transport=transport)
        assert exchange.failure is not None
        assert exchange.failure.kind == "tls_error"
        assert "certificate verify failed" in exchange.failure.message

    asyncio.run(scenario())


def test_mtls_key_material_is_written_privately_and_deleted_after_loading(
    pki: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    original = auth_module.ssl.SSLContext.load_cert_chain

    def spy(self: Any, certfile: str, keyfile: str | None = None, **kwargs: Any) -> None:
        for path in (certfile, keyfile):
            assert path is not None
            seen.append((path, os.stat(path).st_mode & 0o777))
        seen.append((os.path.dirname(certfile), os.stat(os.path.dirname(certfile)).st_mode & 0o777))
        original(self, certfile, keyfile, **kwargs)

    monkeypatch.setattr(auth_module.ssl.SSLContext, "load_cert_chain", spy)
    context = auth_module.build_client_ssl_context(pki.client_cert_pem, pki.client_key_pem)
    assert context is not None
    assert [mode for _, mode in seen] == [0o600, 0o600, 0o700]
    assert all(not os.path.exists(path) for path, _ in seen)
    assert seen[0][0].startswith(tempfile.gettempdir())


def test_mtls_context_is_built_once_per_endpoint(pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[float] = []
    original = auth_module.build_client_ssl_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(time.monotonic())
        return original(*args, **kwargs)

    monkeypatch.setattr(auth_module, "build_client_ssl_context", counting)

    async def scenario() -> None:
        async with (
            serve(partner_app(), ssl_context=pki.server_context()) as base,
            make_transport(ca_pem=pki.ca_pem) as transport,
        ):
            endpoint = mtls_endpoint(pki)
            exchanges = await asyncio.gather(
                *(send_with(endpoint, f"{base}/close", transport=transport) for _ in range(5))
            )
        assert [e.status for e in exchanges] == [200] * 5
        assert len(builds) == 1

    asyncio.run(scenario())
