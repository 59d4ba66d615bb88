"""The engine's HTTP client: one policy-guarded aiohttp session per run.

Every scenario request and latency probe goes through :meth:`Transport.send`, which returns an
:class:`Exchange` instead of raising: whatever the partner's server does (refuse, reset, drip,
redirect in circles, send a gzip bomb) the runner gets a ``Failure`` with a short message.

SSRF. The address policy is applied when a connection is made, to the addresses actually
connected to: a custom aiohttp resolver asks :class:`AddressPolicy` (which resolves the name and
checks every answer) and hands aiohttp only the checked addresses, so the TCP connection goes to
a checked IP while the Host header and TLS SNI keep the hostname. The answer is cached per
(host, port) for the life of the transport ("pinned"): a partner's DNS cannot rebind a name to
an internal address halfway through a run. aiohttp never calls a resolver for IP literals, so
every URL (each redirect hop included) is also checked before the request is sent; for a known
host that is one dict lookup.

Deadlines and caps. ``timeout_ms`` is one deadline for the whole exchange: connection, TLS,
OAuth2 token fetch, redirects and body. Bodies are read in chunks and counted after decoding
(aiohttp decompresses incrementally with a bounded output per step), so a server sending an
endless or highly compressed body is cut as soon as it passes ``max_body_bytes``.

Timings (milliseconds, ``time.perf_counter``), for the final hop of the exchange:

* ``connect_ms``: new connection only (``None`` when a keep-alive connection was reused):
  from asking the connector for a connection (the pinned lookup is a dict hit: no DNS) to the
  TCP connection being established. For https that is the moment the TLS handshake starts; for
  http it is the moment the connection is handed over.
* ``tls_ms``: https on a new connection only: the TLS handshake, from the first ClientHello to
  the handshake completing (measured by the SSL object the handshake runs on).
* ``ttfb_ms``: from the connection being in hand (new or reused), at which point aiohttp
  writes the request, to the response status line and headers having been received and
  parsed. It includes writing the request (microseconds, plus upload time for a large body)
  and the server's think time; it excludes connection set-up.
* ``total_ms``: from the call to :meth:`Transport.send` to the body being fully read (or the
  failure), including policy checks, auth, token fetch and every redirect hop.

Pure Python, no Django import.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import Connection
from yarl import URL

from .auth import Applied, AuthFailure, EndpointAuth, TokenResponse
from .masking import Masker, is_sensitive_header
from .model import (
    MISSING,
    EndpointConfig,
    Failure,
    RedirectHop,
    RequestRecord,
    ResponseRecord,
    RunContext,
    Timings,
)
from .netpolicy import AddressPolicy, AddressRefused, AnyResolver, ResolvedTarget, UrlRefused

__all__ = ["Exchange", "PreparedRequest", "Transport"]

_now = time.perf_counter

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Request headers that describe the body; dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "content-language", "content-location"}
)
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream",
                 "application/pdf", "application/zip", "application/gzip")  # fmt: skip


@dataclass
class PreparedRequest:
    """A request ready to send: templates rendered, URL absolute."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout_ms: int | None = None  # whole exchange; default RunContext.request_timeout_ms
    follow_redirects: bool = True
    use_auth: bool = True  # False: none of the endpoint's credentials (headers, client cert)


_UNPARSED: Any = object()
_NOTHING_APPLIED = Applied()
_MAX_MESSAGE = 300
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class Exchange:
    """What happened to one :class:`PreparedRequest`.

    ``request``/``response`` are the masked capture records (``None`` with ``record=False``,
    and ``response`` is ``None`` when nothing was received). When ``failure`` is set the step
    failed; ``status``/``headers``/``body`` then hold whatever had arrived. After redirects,
    ``request``/``response``/``status`` describe the final hop and ``redirects`` lists the
    URLs followed, in order; ``hops`` gives each redirect answered (status and requested URL).
    ``sent`` is what went on the wire in the final hop, unmasked (method, URL, every header
    including the endpoint's auth), for assertions; never store it.
    """

    request: RequestRecord | None
    response: ResponseRecord | None
    timings: Timings
    failure: Failure | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, unmasked
    body: bytes = b""  # full decoded body, unmasked (empty with record=False)
    redirects: list[str] = field(default_factory=list)
    hops: list[RedirectHop] = field(default_factory=list)
    sent: SentRequest | None = None
    _json: Any = field(default=_UNPARSED, repr=False, compare=False)

    def json(self) -> Any:
        """The body parsed as JSON (whatever the Content-Type says), or ``MISSING``."""
        if self._json is _UNPARSED:
            try:
                self._json = json.loads(self.body) if self.body else MISSING
            except (ValueError, RecursionError):
                self._json = MISSING
        return self._json


class _Fail(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


def _too_large(limit: int) -> _Fail:
    return _Fail("too_large", f"response body exceeds {limit} bytes")


class _Hop:
    """Per-hop timestamps, filled in by :class:`_TimingConnector` and :class:`_TimedSSLObject`
    (both find the hop through ``_current_hop``)."""

    __slots__ = ("conn_start", "conn_end", "tls_start", "tls_end", "ready", "headers_received")

    def __init__(self) -> None:
        self.conn_start: float | None = None
        self.conn_end: float | None = None
        self.tls_start: float | None = None
        self.tls_end: float | None = None
        self.ready: float | None = None  # connection in hand, request about to be written
        self.headers_received: float | None = None


# The hop being sent by the current task. aiohttp obtains the connection in the requesting
# task, and asyncio runs a new connection's protocol callbacks (so the TLS handshake) in the
# context of the task that created it: that is how the connector and SSL object find the hop.
_current_hop: ContextVar[_Hop | None] = ContextVar("certdash_transport_hop", default=None)


class _TimedSSLObject(ssl.SSLObject):
    """Records when the TLS handshake starts and ends into the current hop.

    asyncio calls ``do_handshake`` as soon as the TCP connection is up and again each time
    handshake data arrives, until it stops raising ``SSLWantReadError``; that is the only
    place the TCP/TLS boundary is visible without reimplementing aiohttp's connector.
    """

    _hop: _Hop | None = None

    def do_handshake(self) -> None:
        hop = self._hop
        if hop is None:
            hop = self._hop = _current_hop.get() or _Hop()
            hop.tls_start = _now()
        super().do_handshake()
        hop.tls_end = _now()


class _TimingConnector(aiohttp.TCPConnector):
    """Times connection set-up for the current hop.

    This replaces an ``aiohttp.TraceConfig``: tracing creates trace objects and awaits a
    signal per request phase, which measured as the largest part of the transport's
    per-request overhead. ``connect`` is the connector's public entry point; a connection is
    new when its protocol has not been seen before (a reused keep-alive one has).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seen: weakref.WeakSet[Any] = weakref.WeakSet()

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        hop = _current_hop.get()
        if hop is None:
            return await super().connect(req, traces, timeout)
        hop.conn_start = _now()  # provisional: also tells a timeout it hit while connecting
        connection = await super().connect(req, traces, timeout)
        hop.ready = end = _now()
        protocol = connection.protocol
        if protocol is not None and protocol not in self._seen:
            self._seen.add(protocol)
            hop.conn_end = end
        else:
            hop.conn_start = None
        return connection


class _Progress:
    """Everything known so far about one send, so a failure can still be reported with it."""

    __slots__ = (
        "started", "method", "url", "headers", "body", "hop", "response", "status",
        "response_headers", "sent_headers", "chunks", "received", "redirects", "hops",
        "reading",
    )  # fmt: skip

    def __init__(self, request: PreparedRequest) -> None:
        self.started = _now()
        self.reset(request)

    def reset(self, request: PreparedRequest) -> None:
        """Back to "nothing sent yet" (the OAuth2 retry), keeping the start time."""
        self.method = request.method.upper()
        self.url = request.url
        self.headers = request.headers
        self.body = request.body
        self.hop = _Hop()
        self.response: aiohttp.ClientResponse | None = None
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.sent_headers: Any = None
        self.chunks: list[bytes] = []
        self.received = 0
        self.redirects: list[str] = []
        self.hops: list[RedirectHop] = []
        self.reading = False


class _PinnedResolver(AbstractResolver):
    """aiohttp resolver answering only with addresses the policy checked (see module doc)."""

    def __init__(self, pin: Callable[[str, int], Awaitable[ResolvedTarget]]) -> None:
        self._pin = pin

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = await self._pin(host, port)
        results: list[ResolveResult] = []
        for address in target.addresses:
            found = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, found):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=found,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise OSError(f"{host} has no checked address of the requested family")
        return results

    async def close(self) -> None:
        return None


def _refusal_kind(exc: UrlRefused) -> str:
    """Tell the policy's refusals apart: a blocked address, a resolution failure, or a URL
    that is malformed (bad scheme, credentials, bad host or port)."""
    if isinstance(exc.__cause__, AddressRefused):
        return "blocked_address"
    if isinstance(exc.__cause__, OSError | UnicodeError) or "resolve" in str(exc):
        return "dns"
    return "bad_url"


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 6 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _ssl_reason(chain: list[BaseException]) -> str:
    # The innermost ssl error carries the reason; aiohttp's wrappers (also ssl.SSLError
    # subclasses) only repeat it with connection details.
    ssl_errors = [e for e in chain if isinstance(e, ssl.SSLError | ssl.CertificateError)]
    exc = next((e for e in ssl_errors if not isinstance(e, aiohttp.ClientError)), ssl_errors[0])
    reason = getattr(exc, "reason", None)
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return str(exc).split(" (_ssl.c")[0] or type(exc).__name__


def _host_of(url: str) -> str:
    try:
        parsed = URL(url)
        return f"{parsed.host}:{parsed.port}"
    except (ValueError, TypeError):
        return url


_CLOSED = (aiohttp.ServerDisconnectedError, ConnectionResetError, aiohttp.ClientOSError)


def _classify(exc: Exception, url: str, hop: _Hop, status: int | None) -> tuple[str, str]:
    """Map an exception from aiohttp/asyncio/ssl to a Failure kind and a one-line message."""
    where = _host_of(url)
    chain = _exception_chain(exc)
    if any(isinstance(item, ssl.SSLError | ssl.CertificateError) for item in chain):
        return "tls_error", f"TLS error with {where}: {_ssl_reason(chain)}"
    closed = any(isinstance(item, _CLOSED) for item in chain)
    if closed and hop.tls_start is not None and hop.tls_end is None:
        return "tls_error", f"TLS handshake with {where} failed: the server closed the connection"
    if closed and hop.tls_end is not None and status is None:
        # TLS 1.3 finishes the client's side of the handshake before the server has checked
        # our certificate; a server that then refuses it and does not send the alert (asyncio
        # servers do not) just closes the new connection without a byte of response.
        return "tls_error", (
            f"{where} closed the new TLS connection without responding; it most likely "
            "rejected the TLS session (a missing or untrusted client certificate)"
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", f"{where} could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "refused", f"connection refused by {where}"
        if isinstance(exc.os_error, ConnectionResetError):
            return "connection_reset", f"connection reset by {where} while connecting"
        detail = exc.os_error.strerror or type(exc.os_error).__name__
        return "error", f"cannot connect to {where}: {detail}"
    if isinstance(exc, aiohttp.InvalidURL):
        return "bad_url", f"invalid URL {str(exc.url)[:200]!r}"
    encoding_error = any(
        isinstance(item, aiohttp.http_exceptions.ContentEncodingError) for item in chain
    )
    if encoding_error:
        return "invalid_response", f"{where} sent a body that cannot be decoded"
    for item in chain:
        if isinstance(item, aiohttp.ServerDisconnectedError | ConnectionResetError):
            return "connection_reset", f"{where} closed the connection before the response ended"
        if isinstance(item, BrokenPipeError):
            return "connection_reset", f"{where} closed the connection while we were sending"
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = str(exc)
        if "not completed" in text or "Not enough data" in text:
            return "connection_reset", f"{where} closed the connection before the body ended"
        return "invalid_response", f"{where} sent a malformed body: {text[:200]}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid_response", f"{where} sent an invalid HTTP response: {exc.message[:200]}"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return "error", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _headers_dict(headers: Any) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " (RFC 9110 field combination)."""
    result = {name.lower(): value for name, value in headers.items()}
    if len(result) == len(headers):
        return result  # the usual case: no repeated header
    result = {}
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _looks_binary(prefix: bytes, text: str, content_type: str) -> bool:
    if content_type.startswith(_BINARY_TYPES):
        return True
    if b"\0" in prefix:
        return True
    # Mostly-UTF-8 text with a few bad bytes stays text (errors="replace"); a body where more
    # than 1 character in 20 is undecodable is binary.
    return text.count("\ufffd") * 20 > max(len(text), 1)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shared task's exception as seen: its waiters may all have been cancelled."""
    if not task.cancelled():
        task.exception()


def _default_ssl_context(ca_pem: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    context.set_alpn_protocols(["http/1.1"])  # as aiohttp's own default context
    context.sslobject_class = _TimedSSLObject
    return context


class Transport:
    """Policy-guarded HTTP client for one run; use as ``async with Transport(...) as t``.

    ``resolve`` replaces the system resolver for names (it may be sync or async and gets
    ``(host, port)``; tests use it to point a fake name at 127.0.0.1). ``ca_pem`` adds trusted
    CA certificates for https (sandboxes behind a private CA), including mTLS endpoints.
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        context: RunContext,
        masker: Masker,
        resolve: AnyResolver | None = None,
        ca_pem: str | None = None,
    ) -> None:
        self._policy = policy
        self._context = context
        self._masker = masker
        self._resolve = resolve
        self._ca_pem = ca_pem
        self._session: aiohttp.ClientSession | None = None
        self._pinned: dict[tuple[str, int], ResolvedTarget] = {}
        self._pending: dict[tuple[str, int], asyncio.Task[ResolvedTarget]] = {}
        self._refused: dict[tuple[str, int], UrlRefused] = {}
        self._auth_by_id: dict[int, EndpointAuth] = {}
        self._auth_by_value: dict[tuple[Any, ...], EndpointAuth] = {}
        self._auth_pending: dict[tuple[Any, ...], asyncio.Task[EndpointAuth]] = {}
        self._default_ssl: ssl.SSLContext | None = None
        self._default_ssl_task: asyncio.Task[ssl.SSLContext] | None = None

    # ------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Transport:
        connector = _TimingConnector(
            resolver=_PinnedResolver(self._pin),
            # Our own pin cache is the DNS cache; aiohttp's would expire and re-resolve.
            use_dns_cache=False,
            limit=0,  # concurrency is the runner's business (probes, parallel scenarios)
            limit_per_host=0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The deadline is enforced by send() with asyncio.timeout over the whole exchange.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None),
            # No implicit state between scenarios: cookies are whatever the suite sends.
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,  # an environment proxy would bypass the address policy
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        for task in [*self._pending.values(), *self._auth_pending.values()]:
            task.cancel()

    # ------------------------------------------------------------------------ address pinning

    async def _pin(self, host: str, port: int) -> ResolvedTarget:
        key = (host, port)
        target = self._pinned.get(key)
        if target is not None:
            return target
        refused = self._refused.get(key)
        if refused is not None:
            raise refused
        task = self._pending.get(key)
        if task is None:
            # One resolution per (host, port), shared by concurrent first requests.
            task = asyncio.ensure_future(self._check(host, port))
            task.add_done_callback(_retrieve)
            self._pending[key] = task
        try:
            # shield: a request hitting its deadline must not cancel the shared lookup.
            return await asyncio.shield(task)
        finally:
            if task.done() and self._pending.get(key) is task:
                del self._pending[key]

    async def _check(self, host: str, port: int) -> ResolvedTarget:
        key = (host, port)
        shown = f"[{host}]" if ":" in host else host
        try:
            target = await self._policy.check_url_async(
                f"http://{shown}:{port}/", resolve=self._resolve
            )
        except UrlRefused as exc:
            # A refused address stays refused for the run; a failed lookup may be transient.
            if _refusal_kind(exc) != "dns":
                self._refused[key] = exc
            raise
        self._pinned[key] = target
        return target

    async def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https"):
            raise _Fail("bad_url", f"The URL scheme must be http or https, not {url.scheme!r}.")
        host = url.raw_host
        if not host:
            raise _Fail("bad_url", "The URL has no host.")
        if url.raw_user is not None or url.raw_password is not None:
            raise _Fail("bad_url", "The URL must not contain credentials (user:password@host).")
        port = url.port
        assert port is not None
        if (host, port) not in self._pinned:
            await self._pin(host, port)

    async def pinned_addresses(self, url: str) -> dict[str, list[str]]:
        """Every ``host:port`` this transport has pinned, to the addresses it checked, with
        ``url``'s host pinned now if it had not been: for a process that must send to the
        same places. A refused or malformed ``url`` is left out (its sends report it)."""
        with contextlib.suppress(UrlRefused, _Fail, ValueError):
            await self._check_url(URL(url))
        return {
            f"{target.host}:{target.port}": [str(address) for address in target.addresses]
            for target in self._pinned.values()
        }

    async def warm_up(self, request: PreparedRequest, endpoint: EndpointConfig | None) -> None:
        """Do now what the first send of ``request`` would otherwise do inside a measurement:
        check and pin its host, load the TLS trust store for https, build the endpoint's
        credentials and fetch its OAuth token. What fails here is left for the sends to
        report, each as it would have without the warm-up."""
        with contextlib.suppress(UrlRefused, _Fail, ValueError):
            url = URL(request.url)
            await self._check_url(url)
            if url.scheme == "https":
                await self._ssl_default()
        if endpoint is None or not request.use_auth or endpoint.kind != "http":
            return
        with contextlib.suppress(AuthFailure, OSError, ValueError):
            auth = await self._auth_for(endpoint)
            if auth.oauth is not None:
                self._masker.add(await auth.oauth.token(self._fetch_token))

    # ----------------------------------------------------------------------------- auth

    async def _auth_for(self, endpoint: EndpointConfig) -> EndpointAuth:
        auth = self._auth_by_id.get(id(endpoint))
        if auth is not None and auth.endpoint is endpoint:
            return auth
        # A runner that rebuilds EndpointConfig objects still shares one token cache.
        key = (
            endpoint.name,
            endpoint.auth_kind,
            tuple(sorted(endpoint.auth_config.items())),
            tuple(sorted(endpoint.secrets.items())),
        )
        auth = self._auth_by_value.get(key)
        if auth is None:
            task = self._auth_pending.get(key)
            if task is None:
                task = asyncio.ensure_future(self._make_auth(endpoint))
                task.add_done_callback(_retrieve)
                self._auth_pending[key] = task
            auth = await asyncio.shield(task)
            self._auth_by_value[key] = auth
            self._auth_pending.pop(key, None)
        self._auth_by_id[id(endpoint)] = auth
        return auth

    async def _make_auth(self, endpoint: EndpointConfig) -> EndpointAuth:
        # Whatever the caller's masker was given, this endpoint's secrets are masked.
        self._masker.add(
            *(value for name, value in endpoint.secrets.items() if not name.endswith("_pem"))
        )
        if endpoint.auth_kind != "mtls":
            auth = EndpointAuth(endpoint)
            self._masker.add(*auth.derived_secrets)
            return auth
        # Temp files and the CA store load take tens of milliseconds: not on the event loop,
        # where they would stall every request in flight (and a latency probe's percentiles).
        auth = await asyncio.to_thread(EndpointAuth, endpoint, ca_pem=self._ca_pem)
        if auth.ssl_context is not None:
            auth.ssl_context.sslobject_class = _TimedSSLObject
        return auth

    async def _fetch_token(self, url: str, headers: dict[str, str], body: bytes) -> TokenResponse:
        """The OAuth2 token request, through the same session, policy, deadline and caps."""
        request = PreparedRequest("POST", url, headers, body, follow_redirects=False)
        progress, failure = await self._perform(request, None, keep_body=True)
        if failure is not None:
            raise AuthFailure(failure.kind, failure.message)
        assert progress.status is not None
        return TokenResponse(progress.status, b"".join(progress.chunks))

    # ------------------------------------------------------------------------------ sending

    async def _ssl_default(self) -> ssl.SSLContext:
        # Built once, on first https use, in a thread: loading the system CA store takes
        # 50+ ms, which on the event loop would stall every request in flight.
        if self._default_ssl is not None:
            return self._default_ssl
        if self._default_ssl_task is None:
            self._default_ssl_task = asyncio.ensure_future(
                asyncio.to_thread(_default_ssl_context, self._ca_pem)
            )
        self._default_ssl = await asyncio.shield(self._default_ssl_task)
        return self._default_ssl

    async def send(
        self,
        request: PreparedRequest,
        *,
        endpoint: EndpointConfig | None = None,
        record: bool = True,
    ) -> Exchange:
        """Send ``request`` (with ``endpoint``'s auth) and return what happened; never raises
        except ``asyncio.CancelledError`` when the caller itself is cancelled.

        ``record=False`` (latency probes) skips the capture records, headers and body (the
        body is still read to the end and size-checked); timings are measured either way.
        """
        progress, failure = await self._perform(request, endpoint, keep_body=record)
        return self._exchange(progress, failure, record)

    async def _perform(
        self, request: PreparedRequest, endpoint: EndpointConfig | None, *, keep_body: bool
    ) -> tuple[_Progress, Failure | None]:
        progress = _Progress(request)
        timeout_ms = request.timeout_ms or self._context.request_timeout_ms
        deadline = asyncio.timeout(timeout_ms / 1000)
        failure: Failure | None = None
        try:
            async with deadline:
                if endpoint is None:
                    # Straight to _follow: every coroutine layer is paid again on each resume.
                    await self._follow(
                        progress, request, request.headers, None, _NOTHING_APPLIED, keep_body
                    )
                else:
                    await self._run(progress, request, endpoint, keep_body)
        except TimeoutError:
            failure = self._timeout(progress, timeout_ms)
        except _Fail as exc:
            failure = Failure(exc.kind, exc.message)
        except AuthFailure as exc:
            failure = Failure(exc.kind, exc.message)
        except UrlRefused as exc:
            failure = Failure(_refusal_kind(exc), str(exc))
        except Exception as exc:
            if deadline.expired():
                # aiohttp may turn the deadline's cancellation into its own error type.
                failure = self._timeout(progress, timeout_ms)
            else:
                failure = Failure(*_classify(exc, progress.url, progress.hop, progress.status))
        finally:
            if progress.response is not None:
                # Release (keep-alive) after a complete body, otherwise close the connection:
                # a cut-off body must not be drained or reused.
                if progress.reading:
                    progress.response.close()
                else:
                    progress.response.release()
        if failure is not None:
            # One short line: messages are shown in tables and never carry a traceback.
            # Masked before it is shortened: a cut or a collapsed space inside a secret would
            # leave the rest of it readable.
            message = self._masker.mask(failure.message)
            failure.message = " ".join(message.split())[:_MAX_MESSAGE]
        return progress, failure

    def _timeout(self, progress: _Progress, timeout_ms: int) -> Failure:
        hop = progress.hop
        if progress.reading:
            phase = "reading the response body"
        elif hop.conn_start is not None and hop.conn_end is None:
            phase = "connecting"
        elif hop.ready is None:
            phase = "before the request was sent"
        else:
            phase = "waiting for the response headers"
        return Failure("timeout", f"no complete response within {timeout_ms} ms ({phase})")

    async def _run(
        self,
        progress: _Progress,
        request: PreparedRequest,
        endpoint: EndpointConfig,
        keep_body: bool,
    ) -> None:
        headers = dict(request.headers)  # auth adds to a copy, never to the caller's request
        if not request.use_auth:
            await self._follow(progress, request, headers, None, _NOTHING_APPLIED, keep_body)
            return
        auth = await self._auth_for(endpoint)
        applied = await auth.apply(headers, request.body, self._fetch_token)
        if applied.token is not None:
            self._masker.add(applied.token)
        await self._follow(progress, request, headers, auth, applied, keep_body)
        if applied.token is not None and progress.status == 401:
            # The token may have been revoked or expired early: one fresh token, one retry.
            assert auth.oauth is not None
            auth.oauth.invalidate(applied.token)
            headers = dict(request.headers)
            applied = await auth.apply(headers, request.body, self._fetch_token)
            if applied.token is not None:
                self._masker.add(applied.token)
            progress.reset(request)
            await self._follow(progress, request, headers, auth, applied, keep_body)

    async def _follow(
        self,
        progress: _Progress,
        request: PreparedRequest,
        headers: dict[str, str],
        auth: EndpointAuth | None,
        applied: Applied,
        keep_body: bool,
    ) -> None:
        session = self._session
        if session is None:
            raise RuntimeError("Transport used outside 'async with'")
        try:
            url = URL(request.url)
        except (ValueError, TypeError) as exc:
            raise _Fail("bad_url", f"The URL is malformed: {exc}.") from None
        if not url.is_absolute():
            raise _Fail("bad_url", f"The URL {request.url[:200]!r} is not absolute.")
        method = progress.method
        body = request.body
        ssl_context = auth.ssl_context if auth is not None else None
        signed = applied.signed
        max_redirects = self._context.max_redirects
        while True:
            await self._check_url(url)
            progress.url, progress.method, progress.headers, progress.body = (
                str(url), method, headers, body
            )  # fmt: skip
            hop = progress.hop = _Hop()
            _current_hop.set(hop)
            if url.scheme == "https":
                tls: ssl.SSLContext | bool = ssl_context or (
                    self._default_ssl or await self._ssl_default()
                )
            else:
                tls = True  # unused for http
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                ssl=tls,
            )
            hop.headers_received = _now()
            progress.response = response
            progress.status = response.status
            if keep_body:
                progress.response_headers = _headers_dict(response.headers)
                progress.sent_headers = response.request_info.headers
            location = response.headers.get("Location")
            if (
                not request.follow_redirects
                or response.status not in REDIRECT_STATUSES
                or location is None
            ):
                break
            if len(progress.redirects) >= max_redirects:
                raise _Fail("redirect_limit", f"more than {max_redirects} redirects")
            try:
                next_url = url.join(URL(location))
            except (ValueError, TypeError):
                raise _Fail("bad_url", f"redirect to a malformed URL {location[:200]!r}") from None
            response.release()
            progress.response = None
            status = response.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                # What browsers do; 307/308 (and 301/302 for other methods) keep method + body.
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
            cross_origin = next_url.origin() != url.origin()
            if cross_origin:
                # Credentials are for the origin they were configured for, never another one;
                # they stay dropped even if a later hop comes back.
                names = auth.header_names if auth is not None else frozenset()
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() not in names and not is_sensitive_header(k)
                }
                ssl_context = None  # nor is the mTLS client certificate presented elsewhere
                signed = False
            elif signed and body is None and progress.body is not None:
                assert auth is not None
                auth.resign(headers, body)  # the signature covered the body just dropped
            progress.redirects.append(str(next_url))
            progress.hops.append(RedirectHop(status=status, url=str(url)))
            url = next_url

        # The body, inline rather than in its own coroutine (see _perform).
        limit = self._context.max_body_bytes
        progress.reading = True
        length = response.content_length
        if length is not None and length > limit and "Content-Encoding" not in response.headers:
            raise _too_large(limit)  # no need to read what will be refused
        content = response.content
        chunks = progress.chunks
        received = 0
        while chunk := await content.readany():
            received += len(chunk)
            progress.received = received
            if received > limit:
                raise _too_large(limit)
            if keep_body:
                chunks.append(chunk)
        progress.reading = False
        response.release()
        progress.response = None

    # ---------------------------------------------------------------------------- results

    def _timings(self, progress: _Progress) -> Timings:
        end = _now()
        hop = progress.hop
        connect = tls = ttfb = None
        if hop.conn_start is not None and hop.conn_end is not None:
            if hop.tls_start is not None and hop.tls_end is not None:
                connect = (hop.tls_start - hop.conn_start) * 1000
                tls = (hop.tls_end - hop.tls_start) * 1000
            else:
                connect = (hop.conn_end - hop.conn_start) * 1000
        if hop.headers_received is not None and hop.ready is not None:
            ttfb = (hop.headers_received - hop.ready) * 1000
        return Timings(
            connect_ms=connect, tls_ms=tls, ttfb_ms=ttfb, total_ms=(end - progress.started) * 1000
        )

    def _capture_body(self, data: bytes, content_type: str) -> tuple[str, int, str, bool]:
        """(masked text, full size, sha256 of the full body, truncated) for one body."""
        if not data:
            return "", 0, _EMPTY_SHA256, False  # every GET: skip the hashing and masking
        size = len(data)
        cap = self._context.body_capture_bytes
        truncated = size > cap
        prefix = data[:cap] if truncated else data
        text = prefix.decode("utf-8", errors="replace")
        if _looks_binary(prefix, text, content_type):
            text = "base64:" + base64.b64encode(prefix).decode("ascii")
        masker = self._masker
        masked = masker.mask_truncated(text) if truncated else masker.mask(text)
        return masked, size, hashlib.sha256(data).hexdigest(), truncated

    def _exchange(self, progress: _Progress, failure: Failure | None, record: bool) -> Exchange:
        timings = self._timings(progress)
        if not record:
            return Exchange(
                request=None,
                response=None,
                timings=timings,
                failure=failure,
                status=progress.status,
                redirects=progress.redirects,
                hops=progress.hops,
            )
        masker = self._masker
        sent = progress.sent_headers if progress.sent_headers is not None else progress.headers
        sent_headers = _joined(sent)
        request_type = sent_headers.get("Content-Type") or sent_headers.get("content-type") or ""
        text, size, digest, truncated = self._capture_body(progress.body or b"", request_type)
        request_record = RequestRecord(
            method=progress.method,
            url=masker.mask(progress.url),
            headers=masker.mask_headers(sent_headers),
            body=text,
            body_size=size,
            body_sha256=digest,
            truncated=truncated,
        )
        body = b"".join(progress.chunks)
        response_record = None
        if progress.status is not None:
            headers = progress.response_headers
            text, size, digest, truncated = self._capture_body(
                body, headers.get("content-type", "")
            )
            response_record = ResponseRecord(
                status=progress.status,
                redirects=[RedirectHop(h.status, masker.mask(h.url)) for h in progress.hops],
                headers=masker.mask_headers(headers),
                body=text,
                body_size=size,
                body_sha256=digest,
                truncated=truncated,
            )
        return Exchange(
            request=request_record,
            response=response_record,
            timings=timings,
            failure=failure,
            status=progress.status,
            headers=progress.response_headers,
            body=body,
            redirects=progress.redirects,
            hops=progress.hops,
            sent=SentRequest(progress.method, progress.url, sent_headers, progress.body),
        )


def _joined(headers: Any) -> dict[str, str]:
    """Header names as sent; repeated headers joined with ", " (RFC 9110 field combination)."""
    result = dict(headers.items())
    if len(result) == len(headers):
        return result
    result = {}
    for name, value in headers.items():
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result
