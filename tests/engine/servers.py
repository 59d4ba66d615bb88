"""Real HTTP servers for the engine tests, started in-process on 127.0.0.1 with a free port.

``partner_app()`` is a well- and badly-behaved partner sandbox in one aiohttp application;
``serve_raw`` is a bare asyncio TCP server for misbehaviour aiohttp's server will not produce
(a reset mid-response). ``encoding_echo_app()`` echoes a request back in every encoding an
echo server might use. ``make_pki`` issues a throw-away CA, server and client certificates.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import html
import ipaddress
import json
import re
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certification.engine.auth import verify_signature

HITS: web.AppKey[Counter[str]] = web.AppKey("hits", Counter)
STATE: web.AppKey[dict[str, Any]] = web.AppKey("state", dict)


# ------------------------------------------------------------------------------- serving


@asynccontextmanager
async def serve(
    app: web.Application, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (free port) and yield its base URL."""
    # handler_cancellation: a handler still dripping or streaming stops when the client
    # goes away, so cleanup does not wait on it.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve_raw(handler: RawHandler) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1 speaking whatever ``handler`` writes."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


# ---------------------------------------------------------------------------- the partner


async def _echo(request: web.Request) -> web.Response:
    request.app[HITS][request.path] += 1
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": body.decode("utf-8", errors="replace"),
        }
    )


async def _delay(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "0")) / 1000)
    return web.json_response({"ok": True})


async def _bytes(request: web.Request) -> web.Response:
    size = int(request.query["n"])
    return web.Response(body=b"a" * size, content_type="text/plain")


async def _gzip_bomb(request: web.Request) -> web.Response:
    decoded = int(request.query["n"])
    body = gzip.compress(b"\0" * decoded, compresslevel=9)
    request.app[STATE]["bomb_compressed_size"] = len(body)
    return web.Response(
        body=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
    )


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"x" * 16384
    while True:
        await response.write(chunk)


async def _drip(request: web.Request) -> web.StreamResponse:
    interval = int(request.query.get("interval_ms", "200")) / 1000
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.content_length = 1000
    await response.prepare(request)
    for _ in range(1000):
        await response.write(b".")
        await asyncio.sleep(interval)
    return response


async def _redirect(request: web.Request) -> web.Response:
    request.app[HITS][request.path] += 1
    status = int(request.query.get("status", "302"))
    return web.Response(status=status, headers={"Location": request.query["to"]})


async def _loop(request: web.Request) -> web.Response:
    request.app[HITS][request.path] += 1
    step = int(request.query.get("n", "0")) + 1
    return web.Response(status=302, headers={"Location": f"/loop?n={step}"})


async def _status(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": int(request.match_info["code"])}, status=int(request.match_info["code"])
    )


async def _token(request: web.Request) -> web.Response:
    """OAuth2 token endpoint; behaviour from ``STATE``: ``token_error`` -> 400 with it."""
    state = request.app[STATE]
    request.app[HITS]["/token"] += 1
    form = await request.post()
    state.setdefault("token_requests", []).append(
        {"authorization": request.headers.get("Authorization"), "form": dict(form)}
    )
    if state.get("token_error"):
        return web.json_response({"error": state["token_error"]}, status=400)
    issued = state.get("issued", 0) + 1
    state["issued"] = issued
    return web.json_response(
        {
            "access_token": f"access-token-{issued:04d}-abcdef",
            "token_type": "Bearer",
            "expires_in": state.get("expires_in", 3600),
        }  # fmt: skip
    )


async def _api(request: web.Request) -> web.Response:
    """Accepts tokens not listed in ``STATE['rejected_tokens']``."""
    state = request.app[STATE]
    request.app[HITS]["/api"] += 1
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ")
    state.setdefault("api_tokens", []).append(token)
    if not auth.startswith("Bearer ") or token in state.get("rejected_tokens", ()):
        return web.json_response({"error": "invalid_token"}, status=401)
    return web.json_response({"ok": True, "token": token})


async def _close(request: web.Request) -> web.Response:
    """Answers and closes the connection, so the next request needs a new one."""
    request.app[HITS][request.path] += 1
    response = web.json_response({"host": request.headers.get("Host")})
    response.force_close()
    return response


async def _signed(request: web.Request) -> web.Response:
    """Verifies the HMAC signature with ``STATE['signing_secret']``."""
    request.app[STATE].setdefault("signed", []).append(request.method)
    body = await request.read()
    try:
        verify_signature(
            request.headers.get("X-Signature", ""), body, request.app[STATE]["signing_secret"]
        )
    except ValueError as exc:
        return web.json_response({"verified": False, "error": str(exc)}, status=401)
    return web.json_response({"verified": True, "key_id": request.headers.get("X-Key-Id")})


def partner_app() -> web.Application:
    app = web.Application()
    app[HITS] = Counter()
    app[STATE] = {}
    app.router.add_route("*", "/echo", _echo)
    app.router.add_route("*", "/echo/{tail:.*}", _echo)
    app.router.add_get("/delay", _delay)
    app.router.add_get("/bytes", _bytes)
    app.router.add_get("/gzip-bomb", _gzip_bomb)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/drip", _drip)
    app.router.add_route("*", "/redirect", _redirect)
    app.router.add_get("/loop", _loop)
    app.router.add_get("/status/{code}", _status)
    app.router.add_post("/token", _token)
    app.router.add_get("/api", _api)
    app.router.add_route("*", "/signed", _signed)
    app.router.add_get("/close", _close)
    return app


# ------------------------------------------------------------------- the encoding echo


_LOWER_HEX = re.compile("%[0-9A-F]{2}")


def _u_json(value: Any) -> str:
    """JSON with every character of every string written ``\\uXXXX`` (a paranoid encoder)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_u_json(k)}: {_u_json(v)}" for k, v in value.items()) + "}"
    data = str(value).encode("utf-16-be", "surrogatepass")
    units = (int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    return '"' + "".join(f"\\u{unit:04X}" for unit in units) + '"'


def _each_value(
    echoed: dict[str, Any], encode: Callable[[bytes], str], *, skip: tuple[str, ...] = ()
) -> str:
    """JSON of ``echoed`` with every header (but ``skip``) and query value, and the body, run
    through ``encode``, as an echo server shows binary-safe values."""
    return json.dumps(
        {
            "headers": {
                k: encode(v.encode()) for k, v in echoed["headers"].items() if k not in skip
            },
            "args": {k: encode(v.encode()) for k, v in echoed["args"].items()},
            "body": encode(echoed["body"].encode()),
        }
    )


async def _echo_encoded(request: web.Request) -> web.Response:
    """Echoes the request's headers, query and body back the ways echo servers do: as JSON
    (Node-style, PHP-style with escaped slashes, every character \\u-escaped), as a JSON
    document inside a JSON string (httpbin's ``data``), HTML-escaped, percent-encoded, each
    value in hex and base64; and the credential headers back in response headers, hex,
    base64 and JSON."""
    body = await request.read()
    echoed = {
        "headers": dict(request.headers),
        "query": request.query_string,  # as the server sees it: partly decoded
        "args": dict(request.query),
        "url": str(request.url),
        "body": body.decode("utf-8", errors="replace"),
    }
    document = json.dumps(echoed)
    php = document.replace("/", "\\/")
    fields = {
        "node": json.dumps(echoed, ensure_ascii=False),
        "php": php,
        "unicode": _u_json(echoed),
        "as_string": json.dumps(document),
        "php_as_string": json.dumps(php).replace("/", "\\/"),
        # An HTML page of the request inside a JSON string (an error page, or an API
        # returning rendered HTML); the body is left out, which would be a 4th encoding.
        "html": json.dumps(html.escape(json.dumps({**echoed, "body": ""}))),
        "percent": json.dumps(quote(document, safe="")),
        "form": json.dumps(_LOWER_HEX.sub(lambda m: m.group(0).lower(), quote_plus(document))),
        "hex": _each_value(echoed, bytes.hex),
        "HEX": _each_value(echoed, lambda data: data.hex().upper()),
        # Not a Basic Authorization: base64 of base64, which the masker does not look for.
        "base64": _each_value(
            echoed, lambda data: base64.b64encode(data).decode(), skip=("Authorization",)
        ),
        "base64url": _each_value(
            echoed,
            lambda data: base64.urlsafe_b64encode(data).decode().rstrip("="),
            skip=("Authorization",),
        ),
    }
    text = "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"
    headers = {"X-Echo-Query": request.query_string}
    for name in ("Authorization", "X-Partner-Key"):
        value = request.headers.get(name, "")
        headers[f"X-Echo-{name}"] = value
        headers[f"X-Echo-{name}-Hex"] = value.encode().hex()
        headers[f"X-Echo-{name}-Json"] = json.dumps(value).replace("/", "\\/")
    headers["X-Echo-X-Partner-Key-Base64"] = base64.b64encode(
        headers["X-Echo-X-Partner-Key"].encode()
    ).decode()
    return web.Response(text=text, content_type="application/json", headers=headers)


def encoding_echo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo-encoded", _echo_encoded)
    return app


# ----------------------------------------------------------------------------------- PKI


@dataclass
class Pki:
    ca_pem: str
    server_cert: Path
    server_key: Path
    client_cert_pem: str
    client_key_pem: str

    def server_context(self, *, require_client_cert: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(cadata=self.ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        return context


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _issue(
    subject: str,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),  # fmt: skip
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        assert issuer_key is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("partner.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def make_pki(directory: Path) -> Pki:
    ca, ca_key = _issue("Certdash Test CA", None, None, ca=True)
    server, server_key = _issue("partner.test", ca.subject, ca_key, server=True)
    client, client_key = _issue("certdash-client", ca.subject, ca_key)
    server_cert_path = directory / "server.pem"
    server_key_path = directory / "server.key"
    server_cert_path.write_text(_pem(server))
    server_key_path.write_text(_key_pem(server_key))
    return Pki(
        ca_pem=_pem(ca),
        server_cert=server_cert_path,
        server_key=server_key_path,
        client_cert_pem=_pem(client),
        client_key_pem=_key_pem(client_key),
    )


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")
