"""The masker: secrets never reach a capture, raw or encoded."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from certification.engine.masking import (
    MASK,
    MIN_SAVED_SECRET_LENGTH,
    Masker,
    is_sensitive_header,
)

SECRET = "s3cr3t/v@lue+with spaces"
# Every character class an encoder treats specially: "/" (PHP), "+" and "=" (base64, forms,
# .NET), '"' and "\\" (JSON), non-ASCII (ensure_ascii, PHP).
REALISTIC = 'sk_live/AbC+def=ghi"jk\\é'
PLAIN = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
BOTH = pytest.mark.parametrize("secret", [REALISTIC, PLAIN], ids=["realistic", "plain"])


def php_json(value: object) -> str:
    """PHP's ``json_encode`` without flags: ``ensure_ascii`` plus escaped slashes."""
    return json.dumps(value).replace("/", "\\/")


def u_escaped(text: str, hex_format: str) -> str:
    """``text`` with every character written ``\\uXXXX`` (UTF-16 code units)."""
    data = text.encode("utf-16-be")
    return "".join(
        "\\u" + format(int.from_bytes(data[i : i + 2], "big"), hex_format)
        for i in range(0, len(data), 2)
    )


def assert_hidden(masker: Masker, encoded: str, secret: str) -> None:
    masked = masker.mask(f"before {encoded} after")
    assert MASK in masked, encoded
    assert masked.startswith("before ") and masked.endswith(" after"), masked
    assert secret[:8] not in masked and encoded[1:-1] not in masked, masked


# ----------------------------------------------------------------------------------- raw


def test_raw_secret_is_masked_everywhere_it_occurs() -> None:
    masker = Masker([SECRET])
    text = f"first {SECRET} and again {SECRET}."
    assert masker.mask(text) == f"first {MASK} and again {MASK}."


def test_text_without_a_secret_is_returned_unchanged() -> None:
    masker = Masker([REALISTIC, PLAIN])
    body = json.dumps({"id": "ord_1", "note": 'sk_live "quoted" \\ é / + =', "n": [1, 2]})
    assert masker.mask(body) is body


# ---------------------------------------------------------------------- JSON and friends


@BOTH
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_dumps_spelling_is_masked(secret: str, ensure_ascii: bool) -> None:
    masker = Masker([secret])
    document = json.dumps({"key": secret, "n": 1}, ensure_ascii=ensure_ascii)
    assert masker.mask(document) == json.dumps(
        {"key": "MASKED", "n": 1}, ensure_ascii=ensure_ascii
    ).replace("MASKED", MASK)


@BOTH
def test_php_json_encode_spelling_with_escaped_slashes_is_masked(secret: str) -> None:
    masker = Masker([secret])
    assert masker.mask(php_json({"key": secret})) == php_json({"key": "MASKED"}).replace(
        "MASKED", MASK
    )


@BOTH
@pytest.mark.parametrize("hex_format", ["04x", "04X"])
def test_secret_with_every_character_u_escaped_is_masked(secret: str, hex_format: str) -> None:
    assert_hidden(Masker([secret]), f'"{u_escaped(secret, hex_format)}"', secret)


def test_u_escapes_of_some_characters_only_are_masked() -> None:
    # .NET writes '"' and '+' as \u0022 and \u002B, Go writes '&' as \u0026.
    encoded = "sk_live/AbC\\u002Bdef=ghi\\u0022jk\\\\\\u00E9"
    assert_hidden(Masker([REALISTIC]), f'"{encoded}"', REALISTIC)


def test_control_characters_are_masked_in_their_json_escapes() -> None:
    secret = "line1\nline2\ttab\x01end"
    masker = Masker([secret])
    assert masker.mask(json.dumps(secret)) == f'"{MASK}"'
    assert_hidden(masker, '"line1\\u000aline2\\u0009tab\\u0001end"', secret)


def test_characters_above_the_bmp_are_masked_as_surrogate_pairs() -> None:
    secret = "emoji-\U0001f600-secret"
    masker = Masker([secret])
    assert masker.mask(json.dumps(secret)) == f'"{MASK}"'
    assert_hidden(masker, f'"{u_escaped(secret, "04X")}"', secret)


@BOTH
@pytest.mark.parametrize("encode", [json.dumps, php_json], ids=["python", "php"])
def test_json_escaped_secret_escaped_again_inside_a_json_string_is_masked(
    secret: str, encode: Callable[[object], str]
) -> None:
    inner = encode({"password": secret})
    outer = encode({"body": inner})  # an echo server returning the request body as a string
    masked = Masker([secret]).mask(outer)
    assert masked == encode({"body": encode({"password": "MASKED"})}).replace("MASKED", MASK)


@pytest.mark.parametrize("encode", [json.dumps, php_json], ids=["python", "php"])
def test_secret_escaped_three_times_is_masked(encode: Callable[[object], str]) -> None:
    # The echo of a request whose JSON body holds a JSON string with the secret.
    text = encode({"echo": encode({"payload": encode({"key": REALISTIC})})})
    expected = encode({"echo": encode({"payload": encode({"key": "MASKED"})})})
    assert Masker([REALISTIC]).mask(text) == expected.replace("MASKED", MASK)


def test_html_page_showing_a_json_escaped_secret_is_masked() -> None:
    page = f"<pre>{html.escape(json.dumps({'password': REALISTIC}))}</pre>"
    assert "\\&quot;" in page
    expected = f"<pre>{html.escape(json.dumps({'password': 'MASKED'}))}</pre>"
    assert Masker([REALISTIC]).mask(page) == expected.replace("MASKED", MASK)


def test_json_body_percent_encoded_in_a_query_string_is_masked() -> None:
    query = "variables=" + quote(json.dumps({"key": REALISTIC}), safe="")
    assert "%5C%22" in query
    expected = "variables=" + quote(json.dumps({"key": "MASKED"}), safe="")
    assert Masker([REALISTIC]).mask(query) == expected.replace("MASKED", MASK)


def test_python_and_javascript_string_literal_escapes_are_masked() -> None:
    masker = Masker([REALISTIC])
    assert_hidden(masker, repr(REALISTIC.encode()), REALISTIC)  # b'...\\\xc3\xa9'
    assert_hidden(masker, ascii(REALISTIC), REALISTIC)  # '...\\\xe9'


def test_html_escaped_secret_is_masked() -> None:
    masker = Masker([REALISTIC])
    for quoted in ("&quot;", "&#34;", "&#x22;"):
        encoded = REALISTIC.replace('"', quoted)
        assert masker.mask(f"<td>{encoded}</td>") == f"<td>{MASK}</td>", quoted


# --------------------------------------------------------------------------- percent


@BOTH
def test_percent_encoded_secret_is_masked_in_upper_and_lower_case(secret: str) -> None:
    masker = Masker([secret])
    for encoded in (
        quote(secret, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        quote_plus(secret),
        quote(secret),  # "/" kept, as in a path
    ):
        masked = masker.mask(f"https://api.test/x?key={encoded}&page=2")
        assert masked == f"https://api.test/x?key={MASK}&page=2", encoded


def test_space_encoded_as_plus_or_percent_20_is_masked() -> None:
    masker = Masker([SECRET])
    for encoded in (quote_plus(SECRET), quote(SECRET), "s3cr3t%2fv%40lue%2bwith%20spaces"):
        assert masker.mask(f"key={encoded}&page=2") == f"key={MASK}&page=2", encoded


@BOTH
def test_percent_encoded_twice_secret_is_masked(secret: str) -> None:
    # A URL carried in a query parameter (redirect_uri, a webhook target).
    inner = f"https://partner.test/cb?key={quote(secret, safe='')}"
    outer = f"https://api.test/login?next={quote(inner, safe='')}"
    masked = Masker([secret]).mask(outer)
    assert (
        masked
        == f"https://api.test/login?next={quote('https://partner.test/cb?key=', safe='')}{MASK}"
    )


def test_percent_encoded_path_json_escaped_by_php_is_masked() -> None:
    url = f"https://api.test/v1/keys/{quote(REALISTIC)}"  # "/" kept, then written as "\/"
    masked = Masker([REALISTIC]).mask(php_json({"url": url}))
    assert masked == php_json({"url": "https://api.test/v1/keys/MASKED"}).replace("MASKED", MASK)


# ---------------------------------------------------------------------------- base64


@BOTH
@pytest.mark.parametrize("prefix", [b"", b"x", b"xy"], ids=["offset0", "offset1", "offset2"])
@pytest.mark.parametrize(
    "encode", [base64.b64encode, base64.urlsafe_b64encode], ids=["standard", "urlsafe"]
)
@pytest.mark.parametrize("padded", [True, False])
def test_base64_of_a_secret_is_masked_at_every_alignment(
    secret: str, prefix: bytes, encode: Callable[[bytes], bytes], padded: bool
) -> None:
    encoded = encode(prefix + secret.encode() + b"-tail").decode()
    if not padded:
        encoded = encoded.rstrip("=")
    masked = Masker([secret]).mask(f"blob={encoded};")
    assert MASK in masked and encoded not in masked
    # Only the few characters that straddle a neighbouring byte can remain.
    assert len(masked.replace(MASK, "")) <= len("blob=;") + 4 + len(encode(b"-tail"))


@BOTH
@pytest.mark.parametrize("user", ["id", "client", "abc"])  # every base64 alignment
def test_secret_inside_a_basic_auth_credential_is_masked(secret: str, user: str) -> None:
    credentials = base64.b64encode(f"{user}:{secret}".encode()).decode()
    masked = Masker([secret]).mask(f'{{"authorization": "Basic {credentials}"}}')
    assert credentials not in masked and MASK in masked
    assert masked.startswith('{"authorization": "Basic ')


def test_base64_with_slashes_escaped_by_php_is_masked() -> None:
    secret = "sk_live/???>>>/key"
    encoded = base64.b64encode(secret.encode()).decode()
    assert "/" in encoded and "+" in encoded
    masked = Masker([secret]).mask(php_json({"blob": encoded}))
    assert masked == php_json({"blob": "MASKED"}).replace("MASKED", MASK)


def test_base64_of_a_json_body_holding_the_secret_is_masked() -> None:
    # WireMock's bodyAsBase64, httpbin's data: URL for a binary body.
    for body in (json.dumps({"key": REALISTIC}), php_json({"key": REALISTIC})):
        encoded = base64.b64encode(body.encode()).decode()
        masked = Masker([REALISTIC]).mask(encoded)
        # What is left encodes '{"key": "' and '"}', and the bits straddling them.
        assert masked.startswith("eyJrZXkiOiAi") and MASK in masked, body
        assert len(masked.replace(MASK, "")) <= len("eyJrZXkiOiAi") + 6, masked


def test_base64_with_every_character_u_escaped_is_masked() -> None:
    credentials = base64.b64encode(f"user:{PLAIN}".encode()).decode()
    encoded = u_escaped(f"Basic {credentials}", "04x")
    masked = Masker([PLAIN]).mask(f'{{"authorization": "{encoded}"}}')
    assert MASK in masked and u_escaped(credentials[8:24], "04x") not in masked


def test_base64url_encoded_secret_is_masked() -> None:
    secret = "\xff\xfe-binary-ish-secret-??>>"
    encoded = base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")
    masked = Masker([secret]).mask(f"token={encoded}")
    assert encoded not in masked and MASK in masked


# ------------------------------------------------------------------------------- hex


@BOTH
@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
def test_hex_of_the_utf8_bytes_is_masked(secret: str, case: Callable[[str], str]) -> None:
    encoded = case(secret.encode("utf-8").hex())
    assert Masker([secret]).mask(f"digest 00{encoded}ff end") == f"digest 00{MASK}ff end"


def test_hex_of_a_json_escaped_secret_is_masked() -> None:
    encoded = json.dumps({"key": REALISTIC}).encode().hex()
    expected = json.dumps({"key": "MASKED"}).encode().hex().replace(b"MASKED".hex(), MASK)
    assert Masker([REALISTIC]).mask(encoded) == expected


def test_hex_dump_of_a_basic_auth_header_is_masked() -> None:
    credentials = base64.b64encode(f"user:{PLAIN}".encode()).decode()
    dump = f"Authorization: Basic {credentials}\r\n".encode().hex()
    masked = Masker([PLAIN]).mask(dump)
    assert MASK in masked and credentials[8:24].encode().hex() not in masked


# ----------------------------------------------------------------------- long secrets


def test_long_secret_is_masked_whole_in_every_spelling() -> None:
    # A JWT access token: the scan holds only its first characters, the rest is confirmed.
    token = ".".join(
        base64.urlsafe_b64encode(bytes(range(i, i + n))).decode().rstrip("=")
        for i, n in ((1, 36), (40, 200), (7, 64))
    )
    masker = Masker([token])
    for text in (token, php_json(token), quote(token, safe=""), token.encode().hex()):
        assert masker.mask(f"[{text}]") in (f"[{MASK}]", f'["{MASK}"]'), text[:20]
    assert masker.mask(f"[{token[:-1]}]") == f"[{token[:-1]}]"  # all of it, or nothing


# ---------------------------------------------------------------------- short secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", MASK),
        ("x abc y", f"x {MASK} y"),
        ('{"pin": "abc"}', f'{{"pin": "{MASK}"}}'),
        (
            "https://api.test/v1/abc/items?pin=abc&page=2",
            f"https://api.test/v1/{MASK}/items?pin={MASK}&page=2",
        ),
        ("next=%2Fabc", f"next=%2F{MASK}"),  # an escape before it separates like its character
        ('"line\\nabc"', f'"line\\n{MASK}"'),
        ('"\\u0061bc"', f'"{MASK}"'),
    ],
)
def test_three_character_secret_is_masked_as_a_whole_token(text: str, expected: str) -> None:
    assert Masker(["abc"]).mask(text) == expected


@pytest.mark.parametrize("text", ["abcd", "xabc", "abc123", "crabcake", "abcé", "éabc"])
def test_three_character_secret_is_not_masked_inside_a_word(text: str) -> None:
    assert Masker(["abc"]).mask(text) == text


def test_short_secret_in_a_header_value_is_masked() -> None:
    masked = Masker(["abc"]).mask_headers({"X-Pin": "abc", "X-Other": "abcdef", "X-List": "1, abc"})
    assert masked == {"X-Pin": MASK, "X-Other": "abcdef", "X-List": f"1, {MASK}"}


def test_short_secret_with_punctuation_edges_is_masked_only_between_separators() -> None:
    masker = Masker(["-x-"])
    assert masker.mask('{"v": "-x-", "w": "a -x- b"}') == f'{{"v": "{MASK}", "w": "a {MASK} b"}}'
    assert masker.mask("a-x-b --x-- ") == "a-x-b --x-- "


def test_secret_of_the_minimum_saved_length_is_masked_inside_words() -> None:
    long_enough = "k" * (MIN_SAVED_SECRET_LENGTH - 1) + "9"
    shorter = long_enough[1:]
    assert Masker([long_enough]).mask(f"x{long_enough}x") == f"x{MASK}x"
    assert Masker([shorter]).mask(f"x{shorter}x") == f"x{shorter}x"


def test_empty_and_non_string_secrets_are_ignored() -> None:
    masker = Masker(["", None, 1234])  # type: ignore[list-item]
    assert not masker
    assert masker.mask("1234 None") == "1234 None"


# ------------------------------------------------------------------------ precedence


def test_longest_secret_is_masked_first() -> None:
    masker = Masker(["token", "token-extended-value"])
    assert masker.mask("x token-extended-value y token z") == f"x {MASK} y {MASK} z"


def test_secrets_added_later_are_masked() -> None:
    masker = Masker([])
    assert masker.mask("late-token-value") == "late-token-value"
    masker.add("late-token-value")
    assert masker.mask("late-token-value") == MASK


# --------------------------------------------------------------------------- headers


def test_credential_headers_are_masked_whole_and_others_by_value() -> None:
    masker = Masker(["value-of-the-key"])
    headers = {
        "Authorization": "Bearer anything",
        "Cookie": "session=1",
        "Set-Cookie": "session=2",
        "X-Api-Key": "unknown-key",
        "X-Signature": "t=1,v1=ab",
        "X-Partner-Apikey": "k",
        "X-Client-Secret": "s",
        "X-Refresh-Token": "r",
        "X-Request-Signature": "sig",
        "X-Custom": "prefix value-of-the-key suffix",
        "Content-Type": "application/json",
    }
    masked = masker.mask_headers(headers)
    assert list(masked) == list(headers)  # names and order kept
    for name in list(headers)[:9]:
        assert masked[name] == MASK, name
    assert masked["X-Custom"] == f"prefix {MASK} suffix"
    assert masked["Content-Type"] == "application/json"
    assert is_sensitive_header("proxy-authorization")
    assert not is_sensitive_header("Accept")


def test_encoded_secret_in_an_echoed_header_value_is_masked() -> None:
    masker = Masker([PLAIN])
    headers = {
        "X-Echo-Hex": PLAIN.encode().hex().upper(),
        "X-Echo-B64": base64.b64encode(PLAIN.encode()).decode(),
        "X-Echo-Json": php_json(PLAIN),
    }
    masked = masker.mask_headers(headers)
    assert masked["X-Echo-Hex"] == MASK
    assert masked["X-Echo-B64"] == f"{MASK}M="  # "M" straddles the padding: 4 bits only
    assert masked["X-Echo-Json"] == f'"{MASK}"'


# ----------------------------------------------------------------------------- objects


def test_nested_objects_are_masked_recursively() -> None:
    masker = Masker(["nested-secret"])
    value = {
        "a": ["nested-secret", {"b": "x nested-secret y", "n": 5, "none": None}],
        "t": ("nested-secret", 1.5, True),
        "nested-secret": "key too",
    }
    assert masker.mask_obj(value) == {
        "a": [MASK, {"b": f"x {MASK} y", "n": 5, "none": None}],
        "t": (MASK, 1.5, True),
        MASK: "key too",
    }


def test_encoded_secrets_inside_nested_objects_are_masked() -> None:
    masker = Masker([REALISTIC])
    value = {
        "extracted": [php_json(REALISTIC), {"hex": REALISTIC.encode().hex()}],
        "data": ({"url": f"/x?k={quote(REALISTIC, safe='')}"}, 7),
    }
    assert masker.mask_obj(value) == {
        "extracted": [f'"{MASK}"', {"hex": MASK}],
        "data": ({"url": f"/x?k={MASK}"}, 7),
    }


# --------------------------------------------------------------------------- truncated


def test_truncated_text_does_not_reveal_the_start_of_a_secret() -> None:
    masker = Masker(["abcdefghijklmnop"])
    assert masker.mask_truncated("payload: abcdefgh") == f"payload: {MASK}"
    assert masker.mask_truncated("payload: abc") == "payload: abc"  # too short to tell
    assert masker.mask_truncated("whole abcdefghijklmnop") == f"whole {MASK}"


@pytest.mark.parametrize(
    "encoded",
    [
        json.dumps(REALISTIC)[1:-1],
        php_json(REALISTIC)[1:-1],
        json.dumps(json.dumps(REALISTIC))[3:-3],
        quote(REALISTIC, safe=""),
        u_escaped(REALISTIC, "04x"),
        REALISTIC.encode().hex(),
        base64.b64encode(REALISTIC.encode()).decode(),
    ],
    ids=["json", "php", "double-json", "percent", "u-escaped", "hex", "base64"],
)
def test_truncated_capture_hides_a_secret_cut_in_any_encoding(encoded: str) -> None:
    masker = Masker([REALISTIC])
    head = '{"v": "'
    # Every cut from a quarter of the spelling on, i.e. with 6 or more characters readable.
    for cut in range(len(encoded) // 4, len(encoded) + 1):
        masked = masker.mask_truncated(head + encoded[:cut])
        # base64 may keep the last 1-3 characters, which straddle the padding.
        assert masked.startswith(head + MASK), (cut, masked)
        assert len(masked) <= len(head + MASK) + 3, (cut, masked)


def test_truncated_capture_cut_inside_an_escape_sequence_is_masked() -> None:
    masker = Masker([REALISTIC])
    cut = json.dumps(REALISTIC)[: -len('9"')]  # ends "...jk\\\\\\u00e"
    assert cut.endswith("\\u00e")
    assert masker.mask_truncated(cut) == f'"{MASK}'


def test_truncated_capture_keeps_a_dangling_prefix_too_short_to_reveal_anything() -> None:
    masker = Masker([PLAIN])
    assert masker.mask_truncated('{"note": "sk_') == '{"note": "sk_'
    assert masker.mask_truncated('{"note": "sk_t') == f'{{"note": "{MASK}'


def test_truncated_capture_masks_a_dangling_short_secret_only_at_a_token_start() -> None:
    masker = Masker(["abc"])
    assert masker.mask_truncated("pin ab") == f"pin {MASK}"
    assert masker.mask_truncated("crab") == "crab"
