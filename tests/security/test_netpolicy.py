"""SSRF address policy: every spelling of an internal address is refused, public ones pass.

Pure unit tests: no Django, no network. Hostname resolution is always a fake resolver (or a
monkeypatched ``getaddrinfo``), so the tests also run under ``-p no:django``.
"""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest

from certification.engine.netpolicy import (
    AddressPolicy,
    AddressRefused,
    ResolvedTarget,
    UrlRefused,
    classify,
    embedded_ipv4,
    parse_host_literal,
    parse_networks,
)

# Teredo: server 65.54.227.120, client 192.168.1.1 (obfuscated as 0x3f57fefe).
TEREDO_PRIVATE_CLIENT = "2001:0:4136:e378:8000:63bf:3f57:fefe"
# Teredo: server 65.54.227.120, client 8.8.8.8 (obfuscated as 0xf7f7f7f7).
TEREDO_PUBLIC_CLIENT = "2001:0:4136:e378:8000:63bf:f7f7:f7f7"


def no_dns(host: str, port: int) -> list[str]:
    """A resolver that must not be reached: literals and localhost never go to DNS."""
    raise AssertionError(f"DNS was asked about {host}:{port}")


def fake_dns(records: dict[str, list[str]]):
    """A resolver answering from a dict; unknown names fail like getaddrinfo does."""
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return records[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# --------------------------------------------------------------------------------------------
# Literal spellings and special names
# --------------------------------------------------------------------------------------------

REFUSED_HOSTS = [
    # IPv4 loopback in the spellings inet_aton, browsers and curl accept
    ("127.0.0.1", "loopback"),
    ("2130706433", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("0x7f.0.0.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("017700000001", "loopback"),
    ("127.0.0.1.", "loopback"),
    ("１２７.０.０.１", "loopback"),  # full-width digits, IDNA-mapped by browsers
    # IPv6 forms embedding an internal IPv4 address
    ("[::ffff:127.0.0.1]", "loopback (IPv4-mapped)"),
    ("[::ffff:7f00:1]", "loopback (IPv4-mapped)"),
    ("[::127.0.0.1]", "loopback (IPv4-compatible)"),
    ("[::ffff:169.254.169.254]", "cloud metadata (IPv4-mapped)"),
    ("[64:ff9b::a9fe:a9fe]", "cloud metadata (NAT64)"),
    ("[64:ff9b:1::a00:1]", "private (local-use NAT64)"),
    ("[2002:a9fe:a9fe::1]", "cloud metadata (6to4)"),
    (f"[{TEREDO_PRIVATE_CLIENT}]", "private (Teredo)"),
    ("[::ffff:0:a00:1]", "private (IPv4-translated)"),
    # localhost names, answered without DNS
    ("localhost", "loopback"),
    ("localhost.", "loopback"),
    ("LOCALHOST", "loopback"),
    ("foo.localhost", "loopback"),
    # unspecified / this network
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("[::]", "unspecified"),
    ("0.1.2.3", "this network (0.0.0.0/8)"),
    # the IANA special-purpose blocks
    ("[::1]", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared address space (100.64.0.0/10)"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("[fd00:ec2::254]", "cloud metadata"),
    ("[fe80::1]", "link-local"),
    ("[fe80::1%25eth0]", "link-local"),
    ("[fc00::1]", "unique-local"),
    ("[fd12:3456::1]", "unique-local"),
    ("[fec0::1]", "site-local"),
    ("224.0.0.1", "multicast"),
    ("[ff02::1]", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("[2001:2::1]", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("[2001:db8::1]", "documentation"),
    ("[3fff::1]", "documentation"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("[2001:1::1]", "IETF protocol assignments"),
    ("[100::1]", "discard-only"),
    ("[4000::1]", "reserved"),
]


@pytest.mark.parametrize(("host", "reason"), REFUSED_HOSTS)
def test_refuses_internal_hosts_in_every_spelling(host: str, reason: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        AddressPolicy().check_url(f"http://{host}/", resolve=no_dns)

    assert reason in str(refused.value)
    assert isinstance(refused.value.__cause__, AddressRefused)
    assert refused.value.__cause__.reason == reason


@pytest.mark.parametrize(("host", "reason"), REFUSED_HOSTS)
def test_async_check_refuses_the_same_hosts(host: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=r"not a public address") as refused:
        asyncio.run(AddressPolicy().check_url_async(f"https://{host}:8443/", resolve=no_dns))

    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f000001.", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("0300.0250.01.01", "192.168.1.1"),
        ("10.0.258", "10.0.1.2"),
        ("１２７.０.０.１", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("[2606:4700:4700::1111]", "2606:4700:4700::1111"),
    ],
)
def test_parse_host_literal_decodes_permissive_spellings(host: str, expected: str) -> None:
    parsed = parse_host_literal(host)

    assert parsed == ip_address(expected)
    assert str(parsed) == str(ip_address(expected))  # no zone id left on the result


@pytest.mark.parametrize(
    "host",
    ["example.com", "localhost", "foo.localhost", "1.2.3.4.example", "0x7f.example", "ab", ""],
)
def test_parse_host_literal_returns_none_for_hostnames(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "256.0.0.1",
        "1.2.3.256",
        "127.0.0.0.1",
        "127..1",
        "0x7g.1",
        "08.0.0.1",
        "4294967296",
        "foo.123",
        "%31%32%37.0.0.1",
        "[127.0.0.1]",
        "[not-an-address]",
        "fe80::zz",
    ],
)
def test_parse_host_literal_rejects_malformed_numeric_hosts(host: str) -> None:
    with pytest.raises(ValueError, match=r"not a valid|out of range"):
        parse_host_literal(host)


@pytest.mark.parametrize(
    "url",
    [
        "http://256.0.0.1/",
        "http://127.0.0.0.1/",
        "http://foo.123/",
        "http://%31%32%37.0.0.1/",
        "http://%6c%6f%63%61%6c%68%6f%73%74/",
        "http://exa mple.com/",
        "http://example..com/",
        "http://[127.0.0.1]/",
    ],
)
def test_refuses_hosts_that_are_neither_a_valid_address_nor_a_hostname(url: str) -> None:
    with pytest.raises(UrlRefused, match=r"not valid|not a valid|malformed"):
        AddressPolicy().check_url(url, resolve=no_dns)


# --------------------------------------------------------------------------------------------
# Embedded IPv4 and classification
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ipv6", "ipv4"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("::10.0.0.1", "10.0.0.1"),
        ("::ffff:0:a00:1", "10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("64:ff9b:1::808:808", "8.8.8.8"),
        ("2002:a9fe:a9fe::1", "169.254.169.254"),
        (TEREDO_PRIVATE_CLIENT, "192.168.1.1"),
        (TEREDO_PUBLIC_CLIENT, "8.8.8.8"),
    ],
)
def test_embedded_ipv4_extracts_each_transition_form(ipv6: str, ipv4: str) -> None:
    assert embedded_ipv4(IPv6Address(ipv6)) == IPv4Address(ipv4)


@pytest.mark.parametrize("ipv6", ["::", "::1", "2606:4700:4700::1111", "fe80::1", "fc00::1"])
def test_embedded_ipv4_is_none_for_native_ipv6(ipv6: str) -> None:
    assert embedded_ipv4(IPv6Address(ipv6)) is None


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        TEREDO_PUBLIC_CLIENT,
    ],
)
def test_classify_finds_nothing_wrong_with_public_addresses(address: str) -> None:
    assert classify(ip_address(address)) is None


def test_classify_refuses_teredo_with_an_internal_server() -> None:
    # server 10.0.0.1 (0a00:0001), client 8.8.8.8
    assert classify(IPv6Address("2001:0:a00:1:0:0:f7f7:f7f7")) == "private (Teredo server)"


def test_classify_refuses_local_use_nat64_even_for_a_public_address() -> None:
    # where the embedded IPv4 sits depends on the operator's prefix length: do not guess
    assert classify(IPv6Address("64:ff9b:1::808:808")) == "local-use NAT64 (64:ff9b:1::/48)"


# --------------------------------------------------------------------------------------------
# check_ip and the allowlist
# --------------------------------------------------------------------------------------------


def test_address_refused_names_the_address_and_the_reason() -> None:
    with pytest.raises(AddressRefused) as refused:
        AddressPolicy().check_ip("169.254.169.254")

    assert refused.value.address == "169.254.169.254"
    assert refused.value.reason == "cloud metadata"
    assert str(refused.value) == "169.254.169.254 is not a public address: cloud metadata"
    assert isinstance(refused.value, ValueError)


def test_check_ip_reads_strings_like_a_url_host() -> None:
    with pytest.raises(AddressRefused, match="loopback"):
        AddressPolicy().check_ip("0x7f.1")


def test_check_ip_refuses_a_string_that_is_not_an_address() -> None:
    with pytest.raises(AddressRefused, match="not an IP address"):
        AddressPolicy().check_ip("example.com")


def test_check_ip_drops_the_zone_id_of_an_allowed_address() -> None:
    allowed = AddressPolicy(["fe80::/10"]).check_ip(IPv6Address("fe80::1%eth0"))

    assert str(allowed) == "fe80::1"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "http://127.9.9.9:8000/", "http://[::1]/", "http://0x7f.1/"]
)
def test_allowlisted_loopback_is_allowed(url: str) -> None:
    policy = AddressPolicy(parse_networks("127.0.0.0/8,::1/128"))

    target = policy.check_url(url, resolve=no_dns)

    assert target.addresses[0].is_loopback


def test_allowlisted_ipv4_network_also_allows_its_ipv4_mapped_spelling() -> None:
    policy = AddressPolicy(["127.0.0.0/8", "::1/128"])

    target = policy.check_url("http://[::ffff:127.0.0.1]:8000/", resolve=no_dns)

    assert target.host == "::ffff:127.0.0.1"
    assert target.addresses == (IPv6Address("::ffff:127.0.0.1"),)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/", "cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata (IPv4-mapped)"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[64:ff9b::7f00:1]/", "loopback (NAT64)"),
        ("http://[2002:7f00:1::1]/", "loopback (6to4)"),
    ],
)
def test_loopback_allowlist_still_refuses_everything_else(url: str, reason: str) -> None:
    policy = AddressPolicy("127.0.0.0/8, ::1/128")

    with pytest.raises(UrlRefused) as refused:
        policy.check_url(url, resolve=no_dns)

    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "address", ["0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255", "::", "ff02::1"]
)
def test_catch_all_allowlist_does_not_open_non_unicast_targets(address: str) -> None:
    policy = AddressPolicy(["0.0.0.0/0", "::/0"])

    assert policy.check_ip("10.0.0.1") == IPv4Address("10.0.0.1")
    with pytest.raises(AddressRefused):
        policy.check_ip(address)


def test_non_unicast_target_is_allowed_only_when_its_own_block_is_allowlisted() -> None:
    assert AddressPolicy(["224.0.0.0/4"]).check_ip("224.0.0.1") == IPv4Address("224.0.0.1")
    assert AddressPolicy(["0.0.0.0/32"]).check_ip("0") == IPv4Address("0.0.0.0")


def test_localhost_keeps_only_the_allowlisted_loopback_addresses() -> None:
    both = AddressPolicy("127.0.0.0/8 ::1/128").check_url("http://localhost:8000/", resolve=no_dns)
    ipv4_only = AddressPolicy("127.0.0.0/8").check_url("http://localhost./", resolve=no_dns)

    assert both.addresses == (IPv4Address("127.0.0.1"), IPv6Address("::1"))
    assert ipv4_only == ResolvedTarget("http", "localhost", 80, (IPv4Address("127.0.0.1"),))


def test_policy_accepts_network_objects_and_a_single_string() -> None:
    policy = AddressPolicy([IPv4Network("10.0.0.0/8"), "fd00::/8"])

    assert policy.allowed_networks == (IPv4Network("10.0.0.0/8"), IPv6Network("fd00::/8"))
    assert AddressPolicy("10.0.0.0/8").allowed_networks == (IPv4Network("10.0.0.0/8"),)
    assert AddressPolicy().allowed_networks == ()


# --------------------------------------------------------------------------------------------
# check_url with hostnames (fake resolver, no network)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://93.184.216.34/", "93.184.216.34"),
        ("https://8.8.8.8/", "8.8.8.8"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("http://[64:ff9b::808:808]/", "64:ff9b::808:808"),
    ],
)
def test_allows_public_address_literals(url: str, address: str) -> None:
    target = AddressPolicy().check_url(url, resolve=no_dns)

    assert target.addresses == (ip_address(address),)
    assert target.host == address


def test_hostname_resolving_to_public_addresses_is_pinned_to_them() -> None:
    resolve = fake_dns({"sandbox.partner.example": ["93.184.216.34", "2606:2800:220:1::1"]})

    target = AddressPolicy().check_url("https://Sandbox.Partner.EXAMPLE./api?x=1", resolve=resolve)

    assert target == ResolvedTarget(
        scheme="https",
        host="sandbox.partner.example",
        port=443,
        addresses=(IPv4Address("93.184.216.34"), IPv6Address("2606:2800:220:1::1")),
    )
    assert resolve.calls == [("sandbox.partner.example", 443)]


def test_duplicate_resolver_answers_are_pinned_once() -> None:
    resolve = fake_dns({"a.example": ["8.8.8.8", "8.8.8.8", "8.8.4.4"]})

    target = AddressPolicy().check_url("http://a.example:8080/", resolve=resolve)

    assert target.port == 8080
    assert target.addresses == (IPv4Address("8.8.8.8"), IPv4Address("8.8.4.4"))


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["93.184.216.34", "10.0.0.5"], "private"),
        (["10.0.0.5", "93.184.216.34"], "private"),
        (["8.8.8.8", "::ffff:127.0.0.1"], "loopback (IPv4-mapped)"),
        (["2606:4700:4700::1111", "fe80::1%eth0"], "link-local"),
        (["8.8.8.8", "169.254.169.254"], "cloud metadata"),
    ],
)
def test_hostname_with_any_internal_record_is_refused(answers: list[str], reason: str) -> None:
    resolve = fake_dns({"rebind.example": answers})

    with pytest.raises(UrlRefused) as refused:
        AddressPolicy().check_url("http://rebind.example/", resolve=resolve)

    message = str(refused.value)
    assert "'rebind.example' resolves to" in message
    assert reason in message
    assert refused.value.host == "rebind.example"


def test_unresolvable_host_is_refused_naming_the_host() -> None:
    with pytest.raises(UrlRefused, match=r"'nope\.invalid' could not be resolved") as refused:
        AddressPolicy().check_url("http://nope.invalid/", resolve=fake_dns({}))

    assert refused.value.host == "nope.invalid"


def test_host_resolving_to_nothing_is_refused() -> None:
    with pytest.raises(UrlRefused, match=r"'empty\.example' did not resolve"):
        AddressPolicy().check_url("http://empty.example/", resolve=fake_dns({"empty.example": []}))


def test_resolver_answer_that_is_not_an_address_is_refused() -> None:
    resolve = fake_dns({"odd.example": ["not-an-ip"]})

    with pytest.raises(UrlRefused, match="not an IP address"):
        AddressPolicy().check_url("http://odd.example/", resolve=resolve)


def test_allowlisted_partner_range_allows_a_private_hostname() -> None:
    policy = AddressPolicy("10.20.0.0/16")
    resolve = fake_dns({"vpn.partner.example": ["10.20.1.2"]})

    target = policy.check_url("https://vpn.partner.example/", resolve=resolve)

    assert target.addresses == (IPv4Address("10.20.1.2"),)


def test_internationalised_hostname_is_resolved_in_its_ascii_form() -> None:
    resolve = fake_dns({"xn--bcher-kva.example": ["93.184.216.34"]})

    target = AddressPolicy().check_url("http://bücher.example/", resolve=resolve)

    assert target.host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "scheme must be http or https, not 'ftp'"),
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("gopher://127.0.0.1:6379/_", "scheme must be http or https"),
        ("example.com/path", "scheme must be http or https"),
        ("http://user:pw@example.com/", "must not contain credentials"),
        ("http://user@example.com/", "must not contain credentials"),
        ("http://example.com@127.0.0.1/", "must not contain credentials"),
        ("http://example.com:0/", "port must be between 1 and 65535, not 0"),
        ("http://example.com:99999/", "port must be between 1 and 65535, not 99999"),
        ("http://example.com:http/", "port 'http' is not a number"),
        ("http://example.com:8_0/", "port '8_0' is not a number"),
        ("http://example.com:+80/", "port '+80' is not a number"),
        ("http:///path", "has no host"),
        ("http://:8080/", "has no host"),
        ("http://[::1/", "malformed"),
        ("http://::1/", "malformed"),
        ("http://example.com\\@127.0.0.1/", "credentials"),
    ],
)
def test_refuses_malformed_urls_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        AddressPolicy().check_url(url, resolve=no_dns)

    assert message in str(refused.value)


def test_empty_port_means_the_default_port() -> None:
    target = AddressPolicy().check_url("https://8.8.8.8:/", resolve=no_dns)

    assert target.port == 443


# --------------------------------------------------------------------------------------------
# Default resolvers (getaddrinfo monkeypatched: still no network)
# --------------------------------------------------------------------------------------------


def _fake_getaddrinfo(answers: dict[str, list[str]]):
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for address in answers[host]:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    return getaddrinfo


def test_default_resolver_checks_every_address_family(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", _fake_getaddrinfo({"dual.example": ["93.184.216.34", "fc00::1"]})
    )

    with pytest.raises(UrlRefused, match="unique-local"):
        AddressPolicy().check_url("http://dual.example/")


def test_default_resolver_pins_unique_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        _fake_getaddrinfo(
            {"dual.example": ["93.184.216.34", "93.184.216.34", "2606:2800:220:1::1"]}
        ),
    )

    target = AddressPolicy().check_url("http://dual.example/")

    assert target.addresses == (IPv4Address("93.184.216.34"), IPv6Address("2606:2800:220:1::1"))


def test_default_resolver_failure_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo({}))

    with pytest.raises(UrlRefused, match=r"'gone\.example' could not be resolved"):
        AddressPolicy().check_url("http://gone.example/")


def test_async_default_resolver_uses_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        _fake_getaddrinfo({"a.example": ["8.8.8.8"], "b.example": ["8.8.8.8", "10.1.1.1"]}),
    )
    policy = AddressPolicy()

    target = asyncio.run(policy.check_url_async("http://a.example/"))
    with pytest.raises(UrlRefused, match="private"):
        asyncio.run(policy.check_url_async("http://b.example/"))
    with pytest.raises(UrlRefused, match="could not be resolved"):
        asyncio.run(policy.check_url_async("http://c.example/"))

    assert target.addresses == (IPv4Address("8.8.8.8"),)


def test_async_check_accepts_an_async_resolver() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"ok.example": ["8.8.8.8"], "bad.example": ["8.8.8.8", "127.0.0.1"]}[host]

    policy = AddressPolicy()

    target = asyncio.run(policy.check_url_async("https://ok.example/", resolve=resolve))
    with pytest.raises(UrlRefused, match="loopback"):
        asyncio.run(policy.check_url_async("https://bad.example/", resolve=resolve))

    assert target == ResolvedTarget("https", "ok.example", 443, (IPv4Address("8.8.8.8"),))


# --------------------------------------------------------------------------------------------
# parse_networks
# --------------------------------------------------------------------------------------------


def test_parse_networks_accepts_comma_and_whitespace_separated_entries() -> None:
    assert parse_networks(" 127.0.0.0/8, ::1/128\n10.0.0.0/8 ,,192.168.1.1 ") == (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
        IPv4Network("10.0.0.0/8"),
        IPv4Network("192.168.1.1/32"),
    )
    assert parse_networks(["127.0.0.0/8", "::1/128, fd00::/8"]) == (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
        IPv6Network("fd00::/8"),
    )
    assert parse_networks("") == ()


@pytest.mark.parametrize(
    ("spec", "bad_entry"),
    [
        ("127.0.0.0/8, not-a-network", "'not-a-network'"),
        ("10.0.0.1/8", "'10.0.0.1/8'"),
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        (["::1/128", "127.0.0.0/8 localhost"], "'localhost'"),
    ],
)
def test_parse_networks_error_names_the_bad_entry(spec: str | list[str], bad_entry: str) -> None:
    with pytest.raises(ValueError, match="invalid network") as error:
        parse_networks(spec)

    assert bad_entry in str(error.value)


def test_policy_with_a_bad_allowlist_entry_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="'127.0.0.0/99'"):
        AddressPolicy(["127.0.0.0/99"])
