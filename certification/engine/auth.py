"""Endpoint authentication for the transport: headers, signatures, tokens, client certs.

``EndpointAuth`` holds the per-endpoint state for one run (an OAuth2 token cache, an mTLS
``SSLContext``) and adds credentials to outgoing requests. It never performs I/O itself: the
OAuth2 token request is made through a ``TokenFetcher`` supplied by the transport, so it goes
through the same address policy, deadline and body cap as every other request.

``verify_signature`` is the inbound side of the HMAC scheme (``X-Signature: t=<ts>,v1=<hex>``)
and is also used for partner webhooks.

Pure Python, no Django import.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from .auth_kinds import SCHEMES
from .model import EndpointConfig

__all__ = [
    "AUTH_KINDS",
    "Applied",
    "AuthFailure",
    "EndpointAuth",
    "OAuth2ClientCredentials",
    "TokenFetcher",
    "TokenResponse",
    "build_client_ssl_context",
    "sign",
    "verify_signature",
]

AUTH_KINDS = tuple(SCHEMES)

DEFAULT_API_KEY_HEADER = "X-API-Key"
DEFAULT_SIGNATURE_HEADER = "X-Signature"
KEY_ID_HEADER = "X-Key-Id"
TOKEN_EXPIRY_MARGIN_S = 30
DEFAULT_TOKEN_LIFETIME_S = 3600


class AuthFailure(Exception):
    """Credentials could not be applied; ``kind`` and ``message`` become a ``Failure``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


# ------------------------------------------------------------------------------------- HMAC


def sign(body: bytes, secret: str, *, timestamp: int) -> str:
    """The signature header value ``t=<ts>,v1=<hex>`` for ``body`` at ``timestamp``.

    The signed message is ``f"{t}.{body}"``: binding the timestamp into the MAC is what lets
    the receiver reject replays outside its window.
    """
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _parse_signature(header_value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header_value.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise ValueError("malformed")
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise ValueError("malformed")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # Unknown schemes (v0, v2...) are ignored so senders can add them during a migration.
    if timestamp is None or not signatures:
        raise ValueError("malformed")
    return timestamp, signatures


def verify_signature(
    header_value: str,
    body: bytes | str,
    secret: str,
    *,
    window_s: int = 600,
    now: float | None = None,
) -> None:
    """Check a ``t=<ts>,v1=<hex>`` signature (spaces after commas allowed); return or raise.

    Raises ``ValueError("malformed")`` when the header cannot be parsed,
    ``ValueError("invalid signature")`` when no ``v1`` matches (several are allowed, for key
    rotation), and ``ValueError("expired")`` when the signed timestamp is more than
    ``window_s`` seconds away from ``now`` in either direction (a clock far ahead is as
    suspicious as a replay). The signature is checked before the timestamp so a tampered
    message is reported as such whatever its age. Comparisons are constant-time.
    """
    timestamp, candidates = _parse_signature(header_value)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = sign(raw, secret, timestamp=timestamp).rpartition("v1=")[2]
    matched = False
    for candidate in candidates:
        # Accumulate instead of returning early so timing does not reveal which one matched.
        matched |= hmac.compare_digest(expected, candidate.lower())
    if not matched:
        raise ValueError("invalid signature")
    current = time.time() if now is None else now
    if abs(current - timestamp) > window_s:
        raise ValueError("expired")


# ------------------------------------------------------------------------------------- mTLS


def build_client_ssl_context(
    cert_pem: str, key_pem: str, *, ca_pem: str | None = None
) -> ssl.SSLContext:
    """A verifying client context presenting the given certificate chain and key.

    ``ssl`` can only load a certificate chain from files, so the PEMs are written to a
    private directory (0700, files 0600, created exclusively) and removed as soon as they are
    loaded, even if loading fails. ``ca_pem`` adds trusted CAs for the server certificate.
    """
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    directory = tempfile.mkdtemp(prefix="certdash-mtls-")
    try:
        paths = []
        for name, pem in (("cert.pem", cert_pem), ("key.pem", key_pem)):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(pem)
            paths.append(path)
        context.load_cert_chain(certfile=paths[0], keyfile=paths[1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


# ------------------------------------------------------------------------------------ OAuth2


@dataclass
class TokenResponse:
    status: int
    body: bytes


# (url, headers, form body) -> the token endpoint's answer; raises AuthFailure when the
# request itself fails (blocked, refused, timeout...).
TokenFetcher = Callable[[str, dict[str, str], bytes], Awaitable[TokenResponse]]


class OAuth2ClientCredentials:
    """Client-credentials grant with a cached token, shared by every request of the endpoint.

    One fetch at a time (``asyncio.Lock``); requests that waited on the lock reuse the
    result of the fetch that ran meanwhile, including its failure, so a broken token endpoint
    is asked once per wave of concurrent requests rather than once per request.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._completed = 0
        self._error: AuthFailure | None = None
        self.fetches = 0

    def _valid(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the API rejected it (a newer token is kept)."""
        if self._token == token:
            self._token = None

    async def token(self, fetch: TokenFetcher) -> str:
        if (token := self._valid()) is not None:
            return token
        # _completed counts finished fetches: if it moved while we waited for the lock, the
        # fetch that ran meanwhile answers for us, success or failure. A fetch cancelled
        # half-way (its request hit its deadline) does not count, so waiters try themselves.
        seen = self._completed
        async with self._lock:
            if self._completed != seen:
                if self._error is not None:
                    raise self._error
                if (token := self._valid()) is not None:
                    return token
            try:
                token, lifetime = await self._fetch(fetch)
            except AuthFailure as exc:
                self._token, self._error = None, exc
                self._completed += 1
                raise
            self._token, self._error = token, None
            self._expires_at = self._clock() + lifetime
            self._completed += 1
            return token

    def _failed(self, detail: str) -> AuthFailure:
        return AuthFailure("error", f"OAuth2 token request to {self.token_url} failed: {detail}")

    async def _fetch(self, fetch: TokenFetcher) -> tuple[str, float]:
        self.fetches += 1
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        # RFC 6749 section 2.3.1: id and secret are form-encoded before HTTP Basic.
        credentials = (
            f"{quote_plus(self.client_id, safe='')}:{quote_plus(self._client_secret, safe='')}"
        )
        basic = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            answer = await fetch(self.token_url, headers, urlencode(form).encode("ascii"))
        except AuthFailure as exc:
            raise AuthFailure(exc.kind, self._failed(exc.message).message) from None
        try:
            payload = json.loads(answer.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        if answer.status != 200:
            error = payload.get("error")
            detail = f"{answer.status} {error}" if isinstance(error, str) else str(answer.status)
            description = payload.get("error_description")
            if isinstance(description, str) and description:
                detail += f" ({description[:200]})"
            raise self._failed(detail)
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._failed(f"{answer.status} response has no access_token")
        return token, _lifetime(payload.get("expires_in"))


def _lifetime(expires_in: object) -> float:
    """Seconds to keep the token: ``expires_in`` minus the margin, so a token is not used
    in its last seconds (clock skew, a slow request). Very short lifetimes keep half their
    life instead, otherwise every request would fetch a new token."""
    try:
        seconds = float(expires_in) if expires_in is not None else DEFAULT_TOKEN_LIFETIME_S
    except (TypeError, ValueError):
        seconds = DEFAULT_TOKEN_LIFETIME_S
    if seconds > 2 * TOKEN_EXPIRY_MARGIN_S:
        return seconds - TOKEN_EXPIRY_MARGIN_S
    return max(seconds, 0.0) / 2


# ----------------------------------------------------------------------------- per endpoint


@dataclass(frozen=True)
class Applied:
    """What :meth:`EndpointAuth.apply` added: the OAuth2 token (to invalidate on a 401) and
    whether it signed the request (to re-sign when a redirect changes the body)."""

    token: str | None = None
    signed: bool = False


_NOTHING = Applied()
_SIGNED = Applied(signed=True)


def _set_default(headers: MutableMapping[str, str], name: str, value: str) -> None:
    """Add a header unless the request already has it (any case): a scenario that sends its
    own ``Authorization`` on purpose (e.g. a wrong token, to test a 401) must win."""
    lowered = name.lower()
    if not any(key.lower() == lowered for key in headers):
        headers[name] = value


class EndpointAuth:
    """An endpoint's credentials as applied to requests during one run.

    ``header_names`` (lower-case) lists the headers this auth may add; the transport strips
    them on a redirect to another origin. ``ssl_context`` is the mTLS client context.
    """

    def __init__(self, endpoint: EndpointConfig, *, ca_pem: str | None = None) -> None:
        self.endpoint = endpoint
        self.kind = endpoint.auth_kind or "none"
        self.header_names: frozenset[str] = frozenset()
        self.ssl_context: ssl.SSLContext | None = None
        self.oauth: OAuth2ClientCredentials | None = None
        # Values computed from the secrets that carry them readably (Basic's base64 of
        # "user:password"): the transport masks them like the secrets themselves.
        self.derived_secrets: tuple[str, ...] = ()
        self._error: AuthFailure | None = None
        config = endpoint.auth_config
        try:
            if self.kind == "api_key":
                self._api_key_header = config.get("header_name") or DEFAULT_API_KEY_HEADER
                self._api_key = self._secret("api_key")
                self.header_names = frozenset({self._api_key_header.lower()})
            elif self.kind == "bearer":
                self._token = self._secret("token")
                self.header_names = frozenset({"authorization"})
            elif self.kind == "basic":
                username = config.get("username") or ""
                if not username or ":" in username:
                    raise self._misconfigured("auth_config needs a username without ':'")
                pair = f"{username}:{self._secret('password')}".encode()
                self._basic = base64.b64encode(pair).decode("ascii")
                self.derived_secrets = (self._basic,)
                self.header_names = frozenset({"authorization"})
            elif self.kind == "oauth2_client_credentials":
                token_url = config.get("token_url")
                client_id = config.get("client_id")
                if not token_url or not client_id:
                    raise self._misconfigured("auth_config needs token_url and client_id")
                self.oauth = OAuth2ClientCredentials(
                    token_url=token_url,
                    client_id=client_id,
                    client_secret=self._secret("client_secret"),
                    scope=config.get("scope") or None,
                )
                self.header_names = frozenset({"authorization"})
            elif self.kind == "hmac":
                self._signing_secret = self._secret("signing_secret")
                self._signature_header = config.get("signature_header") or DEFAULT_SIGNATURE_HEADER
                self._key_id = config.get("key_id") or None
                self.header_names = frozenset({self._signature_header.lower(), "x-key-id"})
            elif self.kind == "mtls":
                try:
                    self.ssl_context = build_client_ssl_context(
                        self._secret("client_cert_pem"),
                        self._secret("client_key_pem"),
                        ca_pem=ca_pem,
                    )
                except (ssl.SSLError, OSError, ValueError) as exc:
                    raise self._misconfigured(
                        f"client certificate could not be loaded ({exc})"
                    ) from None
            elif self.kind != "none":
                raise self._misconfigured(f"unknown auth kind {self.kind!r}")
        except AuthFailure as exc:
            # Reported on every request of the endpoint instead of crashing the run.
            self._error = exc

    def _misconfigured(self, detail: str) -> AuthFailure:
        return AuthFailure("error", f"Endpoint {self.endpoint.name!r} ({self.kind}): {detail}.")

    def _secret(self, key: str) -> str:
        value = self.endpoint.secrets.get(key)
        if not value:
            raise self._misconfigured(f"secret {key!r} is missing")
        return value

    async def apply(
        self, headers: dict[str, str], body: bytes | None, fetch: TokenFetcher
    ) -> Applied:
        """Add this endpoint's credentials to ``headers`` (in place), except those the request
        already sets itself. Raises :class:`AuthFailure` when they cannot be produced."""
        if self._error is not None:
            raise self._error
        kind = self.kind
        if kind == "none" or kind == "mtls":
            return _NOTHING
        if kind == "api_key":
            _set_default(headers, self._api_key_header, self._api_key)
        elif kind == "bearer":
            _set_default(headers, "Authorization", f"Bearer {self._token}")
        elif kind == "basic":
            _set_default(headers, "Authorization", f"Basic {self._basic}")
        elif kind == "hmac":
            if self._has(headers, self._signature_header):
                return _NOTHING
            self.resign(headers, body)
            if self._key_id:
                _set_default(headers, KEY_ID_HEADER, self._key_id)
            return _SIGNED
        elif kind == "oauth2_client_credentials":
            if self._has(headers, "Authorization"):
                return _NOTHING
            assert self.oauth is not None
            token = await self.oauth.token(fetch)
            headers["Authorization"] = f"Bearer {token}"
            return Applied(token=token)
        return _NOTHING

    def resign(self, headers: dict[str, str], body: bytes | None) -> None:
        """(Re)write the HMAC signature header for ``body`` (a redirect may change it)."""
        name = self._signature_header.lower()
        for key in [key for key in headers if key.lower() == name]:
            del headers[key]
        headers[self._signature_header] = sign(
            body or b"", self._signing_secret, timestamp=int(time.time())
        )

    @staticmethod
    def _has(headers: dict[str, str], name: str) -> bool:
        lowered = name.lower()
        return any(key.lower() == lowered for key in headers)
