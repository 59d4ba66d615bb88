"""Server-side request forgery (SSRF) address policy for partner sandbox URLs.

Partners give us URLs and the certification engine fetches them from inside our network.
Without a policy, a URL such as ``http://169.254.169.254/latest/meta-data/`` or
``http://0x7f.1:6379/`` would make us talk to cloud metadata services, Redis, the database
or the admin site on our side of the firewall.

The policy answers one question: *may we open a TCP connection to this address?* It is
applied to the **resolved** addresses, not to the URL text, because the URL text can be
spelt in many ways that a naive string check misses (decimal, octal and hex IPv4, short
forms such as ``127.1``, IPv4-mapped IPv6, NAT64, 6to4, Teredo, ``localhost.``) and because
a hostname can resolve to anything.

This module is pure standard library on purpose (no Django import): the HTTP transport
(aiohttp) calls it at connect time and connects to ``ResolvedTarget.addresses[0]``, the
address that was checked, instead of resolving the name a second time. Resolving twice
would reopen the door to DNS rebinding (a name answering a public address to the check and
a private one to the connection).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "ResolvedTarget",
    "UrlRefused",
    "classify",
    "embedded_ipv4",
    "parse_host_literal",
    "parse_networks",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
SyncResolver = Callable[[str, int], Sequence[str]]
AnyResolver = Callable[[str, int], Sequence[str] | Awaitable[Sequence[str]]]

ALLOWED_SCHEMES = {"http": 80, "https": 443}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class AddressRefused(ValueError):
    """An IP address the policy will not connect to.

    ``address`` is the address as text and ``reason`` the short classification returned by
    :func:`classify` (for example ``"loopback (IPv4-mapped)"``).
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"{address} is not a public address: {reason}")


class UrlRefused(ValueError):
    """A URL the policy will not fetch; the message is safe to show to the partner.

    Raised for a bad scheme, a missing or malformed host, credentials in the URL, a bad
    port, a host that does not resolve, or (chained from :class:`AddressRefused`) a host
    that is or resolves to a blocked address. ``host`` is the host as written when known.
    """

    def __init__(self, message: str, *, host: str | None = None) -> None:
        self.host = host
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s,]+")


def parse_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse an allowlist such as ``"127.0.0.0/8, ::1/128"`` into network objects.

    A string is split on commas and whitespace; an iterable is taken entry by entry (each
    entry may itself hold several comma/whitespace separated networks, which is convenient
    for environment variables). A bare address means a single host (``/32`` or ``/128``).

    Host bits must be clear (``10.0.0.1/8`` is refused rather than silently widened to
    ``10.0.0.0/8``): a typo in an allowlist must not open more than the operator meant.

    Raises ``ValueError`` naming the offending entry.
    """
    chunks = [spec] if isinstance(spec, str) else list(spec)
    networks: list[IPNetwork] = []
    for chunk in chunks:
        if not isinstance(chunk, str):
            raise ValueError(f"invalid network entry {chunk!r}: expected a string")
        for entry in _SEPARATORS.split(chunk.strip()):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError as exc:
                raise ValueError(f"invalid network {entry!r}: {exc}") from None
    return tuple(networks)


_DECIMAL = re.compile(r"[0-9]+", re.ASCII)
_OCTAL = re.compile(r"[0-7]+", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]+", re.ASCII)


def _parse_ipv4_number(part: str) -> int | None:
    """One dotted part, WHATWG/inet_aton style: ``0x`` hex, leading ``0`` octal, else decimal.

    Only ASCII digits count (``int()`` alone would accept Arabic-Indic digits and ``_``).
    """
    if not part:
        return None
    pattern, radix = _DECIMAL, 10
    if part[:2] in ("0x", "0X"):
        part, pattern, radix = part[2:], _HEX, 16
    elif len(part) > 1 and part[0] == "0":
        part, pattern, radix = part[1:], _OCTAL, 8
    if not part:  # "0x" alone is zero for inet_aton and browsers
        return 0
    if not pattern.fullmatch(part):
        return None
    return int(part, radix)


def _ends_in_a_number(parts: list[str]) -> bool:
    """WHATWG "ends in a number": a host whose last label is numeric is an IPv4 address."""
    last = parts[-1]
    return bool(_DECIMAL.fullmatch(last)) or _parse_ipv4_number(last) is not None


def _to_ascii_host(host: str) -> str:
    """Map a non-ASCII host to ASCII the way browsers do (IDNA, which also applies NFKC).

    This matters for security, not only for display: ``"１２７.０.０.１"`` (full-width digits)
    becomes ``"127.0.0.1"``, so the literal check must see the mapped form.
    """
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"host {host!r} is not a valid internationalised name") from exc


def _strip_scope(ip: IPAddress) -> IPAddress:
    """Drop an IPv6 zone id (``fe80::1%eth0`` -> ``fe80::1``); IPv4 is returned unchanged."""
    if isinstance(ip, IPv6Address) and ip.scope_id is not None:
        return IPv6Address(int(ip))
    return ip


def parse_host_literal(host: str) -> IPAddress | None:
    """Interpret a URL host as a permissive resolver would; ``None`` for a real hostname.

    A naive ``ipaddress.ip_address(host)`` check is fooled by spellings that ``inet_aton``,
    browsers and curl happily accept, so this follows the WHATWG URL host parser:

    * IPv4 with 1-4 parts, each decimal, octal (leading ``0``) or hex (``0x``); the last part
      fills the remaining bytes: ``2130706433``, ``0177.0.0.1``, ``127.1``, ``0x7f.0.0.1``,
      ``0x7f000001`` and ``127.0.1`` are all ``127.0.0.1``. One trailing dot is allowed.
    * IPv6, with or without brackets, including embedded dotted quads and zone ids
      (``fe80::1%eth0`` and the URL-encoded ``%25eth0`` both give ``fe80::1``).
    * Non-ASCII hosts are IDNA-mapped first, so full-width digits are decoded too.

    Returns ``None`` when the host is not numeric (a name for DNS). Raises ``ValueError``
    when the host *looks* numeric (its last label is a number, it contains ``:`` or it is
    bracketed) but is not a valid address, e.g. ``256.0.0.1`` or ``1.2.3.4.5``: browsers
    reject those too, and guessing would only give an attacker room to play.
    """
    text = host
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
        if ":" not in text:
            raise ValueError(f"{host!r} is not a valid IPv6 literal")
    if ":" in text:
        address, _, _zone = text.partition("%")
        try:
            return IPv6Address(address)
        except ValueError as exc:
            raise ValueError(f"{host!r} is not a valid IPv6 literal") from exc

    text = _to_ascii_host(text)
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot, as in "127.0.0.1."
    if not parts[-1] or not _ends_in_a_number(parts):
        return None

    numbers = [_parse_ipv4_number(part) for part in parts]
    if len(parts) > 4 or None in numbers:
        raise ValueError(f"{host!r} looks like an IPv4 address but is not a valid one")
    values = [number for number in numbers if number is not None]
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        raise ValueError(f"{host!r} looks like an IPv4 address but is out of range")
    packed = last
    for index, value in enumerate(leading):
        packed += value << (8 * (3 - index))
    return IPv4Address(packed)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------

_V4 = IPv4Network
_V6 = IPv6Network

_METADATA: frozenset[IPAddress] = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean...
        IPv4Address("169.254.170.2"),  # AWS ECS task metadata / credentials
        IPv4Address("100.100.100.200"),  # Alibaba Cloud
        IPv4Address("192.0.0.192"),  # Oracle Cloud (legacy)
        IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
    }
)

# IANA IPv4 Special-Purpose Address Registry, plus multicast and class E. First match wins,
# so more specific entries come first. Deliberately stricter than IANA's "globally
# reachable" column: anycast service addresses inside 192.0.0.0/24 (PCP, TURN) are never a
# partner sandbox and are refused with the rest of the block.
_IPV4_BLOCKED: tuple[tuple[IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "this network (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (100.64.0.0/10)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved (deprecated 6to4 relay anycast)"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

# IANA IPv6 Special-Purpose Address Registry. The transition prefixes that embed an IPv4
# address (::ffff:0:0/96, ::/96, 64:ff9b::/96, 2002::/16, 2001::/32) are handled first, by
# classifying the embedded address. Anything outside 2000::/3 (global unicast) that is not
# listed here is refused as "reserved".
_IPV6_BLOCKED: tuple[tuple[IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2001::/23"), "IETF protocol assignments"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
_IPV6_GLOBAL_UNICAST = _V6("2000::/3")

# Destinations that are not a single unicast host. On Linux, connecting to 0.0.0.0 or ::
# reaches the local machine, so an allowlist entry such as 127.0.0.0/8 or a catch-all
# 0.0.0.0/0 must not open them: only an allowlist entry lying inside the block does.
_NON_UNICAST: tuple[IPNetwork, ...] = (
    _V4("0.0.0.0/8"),
    _V4("224.0.0.0/4"),
    _V4("255.255.255.255/32"),
    _V6("::/128"),
    _V6("ff00::/8"),
)

_MAPPED = _V6("::ffff:0:0/96")
_COMPATIBLE = _V6("::/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")

# Forms in which the local IPv6 stack itself talks to the embedded IPv4 host, so that an
# allowlisted IPv4 network also covers them. Translated forms (NAT64, 6to4, Teredo) reach
# the embedded address through someone else's translator, so they do not inherit it.
_LOCAL_KINDS = frozenset({"IPv4-mapped", "IPv4-compatible"})

_LOW32 = 0xFFFFFFFF


def _embedded(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """Return (kind, embedded IPv4) for the IPv6 transition forms, else ``None``."""
    ip = IPv6Address(int(ip))
    value = int(ip)
    if ip in _MAPPED:
        return "IPv4-mapped", IPv4Address(value & _LOW32)
    if ip in _COMPATIBLE:
        if value in (0, 1):  # :: and ::1 are themselves, not IPv4-compatible addresses
            return None
        return "IPv4-compatible", IPv4Address(value & _LOW32)
    if ip in _TRANSLATED:
        return "IPv4-translated", IPv4Address(value & _LOW32)
    if ip in _NAT64:
        return "NAT64", IPv4Address(value & _LOW32)
    if ip in _NAT64_LOCAL:
        return "local-use NAT64", IPv4Address(value & _LOW32)
    if ip in _SIX_TO_FOUR:
        return "6to4", IPv4Address((value >> 80) & _LOW32)
    if ip in _TEREDO:
        return "Teredo", IPv4Address((value & _LOW32) ^ _LOW32)
    return None


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 transition address stands for, or ``None``.

    Recognised forms: IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96`` (except ``::``
    and ``::1``), IPv4-translated ``::ffff:0:0:0/96``, NAT64 ``64:ff9b::/96`` and local-use
    ``64:ff9b:1::/48`` (last 32 bits), 6to4 ``2002::/16`` (bits 16-48) and Teredo
    ``2001::/32`` (client address: last 32 bits XOR ``0xffffffff``).
    """
    found = _embedded(ip)
    return found[1] if found else None


def _classify_v4(ip: IPv4Address) -> str | None:
    if ip in _METADATA:
        return "cloud metadata"
    for network, reason in _IPV4_BLOCKED:
        if ip in network:
            return reason
    if not ip.is_global:  # belt and braces: the stdlib table may know something we don't
        return "not globally routable"
    return None


def _classify_v6(ip: IPv6Address) -> str | None:
    if ip in _METADATA:
        return "cloud metadata"
    found = _embedded(ip)
    if found is not None:
        kind, inner = found
        reason = _classify_v4(inner)
        if reason is not None:
            return f"{reason} ({kind})"
        if kind == "Teredo":
            server = IPv4Address((int(ip) >> 64) & _LOW32)
            server_reason = _classify_v4(server)
            if server_reason is not None:
                return f"{server_reason} (Teredo server)"
        if kind != "local-use NAT64":
            return None
    for network, reason in _IPV6_BLOCKED:
        if ip in network:
            return reason
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def classify(ip: IPAddress) -> str | None:
    """``None`` for a public (global unicast) address, else a short reason string.

    Uses explicit tables built from the IANA special-purpose registries instead of
    ``is_global``/``is_private``, which on Python 3.11 miss several cases (IPv4-mapped
    loopback, NAT64/6to4/Teredo forms of private addresses, 100.64.0.0/10 details). For an
    IPv6 transition address the embedded IPv4 address is classified and the form is named,
    e.g. ``"loopback (IPv4-mapped)"`` or ``"cloud metadata (NAT64)"``. Known cloud metadata
    endpoints are reported as ``"cloud metadata"`` rather than their enclosing range.
    """
    ip = _strip_scope(ip)
    if isinstance(ip, IPv4Address):
        return _classify_v4(ip)
    return _classify_v6(ip)


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTarget:
    """A URL that passed the policy, with every address its host resolved to.

    A transport must connect to ``addresses[0]`` (pinned, already checked) while sending
    ``host`` as the Host header and TLS SNI; it must not resolve ``host`` again.
    ``host`` is as written in the URL, normalised: lower-case, IDNA ASCII, no trailing dot,
    no IPv6 brackets and no zone id.
    """

    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
_PORT = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class _UrlParts:
    scheme: str
    host: str
    port: int
    literal: IPAddress | None


def _split_url(url: str) -> _UrlParts:
    """Validate everything about the URL that does not need DNS."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlRefused(f"The URL is malformed: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme or "(none)"
        raise UrlRefused(f"The URL scheme must be http or https, not {shown!r}.")
    netloc = parts.netloc
    if "@" in netloc:
        raise UrlRefused("The URL must not contain credentials (user:password@host).")
    if "\\" in netloc:
        raise UrlRefused("The URL host must not contain a backslash.")

    if netloc.startswith("["):
        raw_host, bracket, rest = netloc[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UrlRefused(f"The URL host {netloc!r} is not a valid IPv6 literal.")
        raw_host = f"[{raw_host}]"
        port_text = rest[1:] if rest else None
    else:
        raw_host, colon, port_text_or_empty = netloc.partition(":")
        port_text = port_text_or_empty if colon else None
        if ":" in port_text_or_empty:
            raise UrlRefused(
                f"The URL host {netloc!r} is malformed (IPv6 addresses need [brackets])."
            )
    if raw_host in ("", "[]"):
        raise UrlRefused("The URL has no host.")

    port = ALLOWED_SCHEMES[scheme]
    if port_text:  # "http://host:/" means the default port
        if not _PORT.fullmatch(port_text):
            raise UrlRefused(f"The URL port {port_text!r} is not a number.", host=raw_host)
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise UrlRefused(
                f"The URL port must be between 1 and 65535, not {port}.", host=raw_host
            )

    try:
        if raw_host.startswith("["):
            literal = parse_host_literal(raw_host)
            host = raw_host[1:-1].partition("%")[0].lower()
        else:
            host = _to_ascii_host(raw_host).lower()
            if host.endswith("."):
                host = host[:-1]
            literal = parse_host_literal(host) if host else None
    except ValueError as exc:
        raise UrlRefused(
            f"The URL host {raw_host!r} is not valid ({exc}).", host=raw_host
        ) from None

    if literal is None and not _is_hostname(host):
        raise UrlRefused(f"The URL host {raw_host!r} is not a valid hostname.", host=raw_host)
    return _UrlParts(scheme=scheme, host=host, port=port, literal=literal)


def _is_hostname(host: str) -> bool:
    """Plain DNS names only: this rejects percent-encoding, spaces and other characters that
    some HTTP clients decode or truncate differently from us."""
    if not host or len(host) > 253:
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in host.split("."))


def _is_localhost(host: str) -> bool:
    """RFC 6761: ``localhost`` and ``*.localhost`` are loopback, whatever DNS might say."""
    return host == "localhost" or host.endswith(".localhost")


_LOCALHOST_ADDRESSES: tuple[IPAddress, ...] = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def _unique_addresses(infos: Iterable[tuple]) -> list[str]:
    """Unique IP strings from ``getaddrinfo`` results, in resolver order."""
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


def _default_resolve(host: str, port: int) -> list[str]:
    """All address families, as the connection would use them."""
    return _unique_addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


async def _default_resolve_async(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique_addresses(infos)


def _same_address(host: str, address: str) -> bool:
    """True when the host is already the canonical spelling (no need to repeat it)."""
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


def _coerce_address(value: object) -> IPAddress:
    """Turn a resolver answer or caller input into an address object, without a zone id."""
    if isinstance(value, IPv4Address | IPv6Address):
        return _strip_scope(value)
    if isinstance(value, str):
        parsed = parse_host_literal(value)
        if parsed is None:
            raise AddressRefused(value, "not an IP address")
        return _strip_scope(parsed)
    raise AddressRefused(repr(value), "not an IP address")


class AddressPolicy:
    """Decides which addresses and URLs the engine may connect to.

    By default only public (global unicast) addresses pass. ``allowed_networks`` opens
    specific ranges, typically ``127.0.0.0/8, ::1/128`` in development or a partner's VPN
    range; an allowlisted IPv4 network also covers its IPv4-mapped IPv6 spelling. Unspecified,
    "this network", broadcast and multicast destinations are only opened by an allowlist
    entry that lies inside that block, never by a wider one such as ``0.0.0.0/0``.
    """

    def __init__(self, allowed_networks: Iterable[str | IPNetwork] = ()) -> None:
        if isinstance(allowed_networks, str):
            allowed_networks = [allowed_networks]
        networks: list[IPNetwork] = []
        for entry in allowed_networks:
            if isinstance(entry, IPv4Network | IPv6Network):
                networks.append(entry)
            else:
                networks.extend(parse_networks(entry))
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(networks)

    def __repr__(self) -> str:
        allowed = ", ".join(str(network) for network in self.allowed_networks)
        return f"AddressPolicy(allowed_networks=[{allowed}])"

    def _in_allowed(self, ip: IPAddress) -> bool:
        block = next((net for net in _NON_UNICAST if ip in net), None)
        for network in self.allowed_networks:
            if network.version != ip.version or ip not in network:
                continue
            if block is None or network.subnet_of(block):
                return True
        return False

    def _allowlisted(self, ip: IPAddress) -> bool:
        if self._in_allowed(ip):
            return True
        if isinstance(ip, IPv6Address):
            found = _embedded(ip)
            if found is not None and found[0] in _LOCAL_KINDS:
                return self._in_allowed(found[1])
        return False

    def check_ip(self, ip: str | IPAddress) -> IPAddress:
        """Return the address (zone id removed) if it may be connected to.

        Allowed when :func:`classify` finds nothing wrong with it, or when it (or, for the
        IPv4-mapped/compatible forms, its embedded IPv4 address) lies in an allowed network.
        A string is parsed like a URL host, so ``"0x7f.1"`` is checked as ``127.0.0.1``.

        Raises :class:`AddressRefused` otherwise, including for a string that is not an IP
        address at all.
        """
        try:
            address = _coerce_address(ip)
        except ValueError as exc:
            if isinstance(exc, AddressRefused):
                raise
            raise AddressRefused(str(ip), "not an IP address") from None
        reason = classify(address)
        if reason is None or self._allowlisted(address):
            return address
        raise AddressRefused(str(address), reason)

    def _check_literal(self, target: _UrlParts) -> tuple[IPAddress, ...]:
        assert target.literal is not None
        return (self._check_for_host(target.host, target.literal, verb="is"),)

    def _check_for_host(self, host: str, ip: str | IPAddress, *, verb: str) -> IPAddress:
        try:
            return self.check_ip(ip)
        except AddressRefused as exc:
            if _same_address(host, exc.address):
                message = f"The URL host {host!r} is not a public address: {exc.reason}."
            else:
                message = (
                    f"The URL host {host!r} {verb} {exc.address}, "
                    f"which is not a public address: {exc.reason}."
                )
            raise UrlRefused(message, host=host) from exc

    def _check_localhost(self, host: str) -> tuple[IPAddress, ...]:
        # Never asked of DNS. These are fixed loopback addresses rather than answers an
        # attacker controls, so the ones the allowlist opens are kept (an allowlist of only
        # 127.0.0.0/8 makes http://localhost/ go to 127.0.0.1).
        allowed: list[IPAddress] = []
        first_refusal: UrlRefused | None = None
        for address in _LOCALHOST_ADDRESSES:
            try:
                allowed.append(self._check_for_host(host, address, verb="means"))
            except UrlRefused as exc:
                first_refusal = first_refusal or exc
        if not allowed:
            assert first_refusal is not None
            raise first_refusal
        return tuple(allowed)

    def _check_resolved(self, host: str, answers: Sequence[object]) -> tuple[IPAddress, ...]:
        # Every answer must pass, not just the first: a name with one public and one private
        # A record would otherwise let the connection land on the private one.
        if not answers:
            raise UrlRefused(f"The URL host {host!r} did not resolve to any address.", host=host)
        checked: dict[IPAddress, None] = {}
        for answer in answers:
            try:
                address = _coerce_address(answer)
            except ValueError:
                raise UrlRefused(
                    f"The URL host {host!r} resolved to {answer!r}, which is not an IP address.",
                    host=host,
                ) from None
            checked.setdefault(self._check_for_host(host, address, verb="resolves to"), None)
        return tuple(checked)

    @staticmethod
    def _resolution_failed(host: str, exc: BaseException) -> UrlRefused:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return UrlRefused(f"The URL host {host!r} could not be resolved ({detail}).", host=host)

    def check_url(self, url: str, *, resolve: SyncResolver | None = None) -> ResolvedTarget:
        """Validate a URL and resolve its host, returning the checked addresses.

        Checks, in order: scheme is http/https; a host is present; no ``user:pass@``; the
        port is 1-65535; then the host. A numeric host (any spelling, see
        :func:`parse_host_literal`) is checked directly. ``localhost`` and ``*.localhost``
        are loopback without asking DNS. Any other name is passed to ``resolve(host, port)``
        (default: ``socket.getaddrinfo`` over all families) and **every** address returned
        must pass :meth:`check_ip`.

        Raises :class:`UrlRefused` with a message naming the host.
        """
        target = _split_url(url)
        if target.literal is not None:
            addresses = self._check_literal(target)
        elif _is_localhost(target.host):
            addresses = self._check_localhost(target.host)
        else:
            resolver = resolve or _default_resolve
            try:
                answers = list(resolver(target.host, target.port))
            except (OSError, UnicodeError) as exc:
                raise self._resolution_failed(target.host, exc) from exc
            addresses = self._check_resolved(target.host, answers)
        return ResolvedTarget(target.scheme, target.host, target.port, addresses)

    async def check_url_async(
        self, url: str, *, resolve: AnyResolver | None = None
    ) -> ResolvedTarget:
        """:meth:`check_url` for the asyncio transport: resolution runs off the event loop.

        The default resolver is ``loop.getaddrinfo`` (a thread). ``resolve`` may be a plain
        or an ``async`` callable taking ``(host, port)``.
        """
        target = _split_url(url)
        if target.literal is not None:
            addresses = self._check_literal(target)
        elif _is_localhost(target.host):
            addresses = self._check_localhost(target.host)
        else:
            resolver = resolve or _default_resolve_async
            try:
                answers = resolver(target.host, target.port)
                if inspect.isawaitable(answers):
                    answers = await answers
                answers = list(answers)
            except (OSError, UnicodeError) as exc:
                raise self._resolution_failed(target.host, exc) from exc
            addresses = self._check_resolved(target.host, answers)
        return ResolvedTarget(target.scheme, target.host, target.port, addresses)
