"""The masker: secrets never reach a capture, raw or encoded."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

from certification.engine.masking import MASK, Masker, is_sensitive_header

SECRET = "s3cr3t/v@lue+with spaces"


def test_raw_secret_is_masked_everywhere_it_occurs() -> None:
    masker = Masker([SECRET])
    text = f"first {SECRET} and again {SECRET}."
    assert masker.mask(text) == f"first {MASK} and again {MASK}."


def test_percent_encoded_secret_is_masked() -> None:
    masker = Masker([SECRET])
    for encoded in (
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        quote(SECRET),
        "s3cr3t%2fv%40lue%2bwith%20spaces",
    ):
        masked = masker.mask(f"https://api.test/x?key={encoded}&page=2")
        assert "s3cr3t" not in masked, encoded
        assert MASK in masked and masked.endswith("&page=2")


def test_secret_inside_a_basic_auth_header_value_is_masked() -> None:
    masker = Masker(["client-secret-0123456789"])
    for user in ("id", "client", "abc"):  # every base64 alignment of the secret
        credentials = base64.b64encode(f"{user}:client-secret-0123456789".encode()).decode()
        masked = masker.mask(f"Basic {credentials}")
        assert credentials not in masked
        assert MASK in masked, user


def test_base64url_encoded_secret_is_masked() -> None:
    secret = "\xff\xfe-binary-ish-secret-??>>"
    encoded = base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")
    masked = Masker([secret]).mask(f"token={encoded}")
    assert encoded not in masked and MASK in masked


def test_short_secrets_are_left_alone() -> None:
    masker = Masker(["abc", "", "12"])
    assert masker.mask("abc 12 abcdef") == "abc 12 abcdef"
    assert not masker


def test_longest_secret_is_masked_first() -> None:
    masker = Masker(["token", "token-extended-value"])
    assert masker.mask("x token-extended-value y token z") == f"x {MASK} y {MASK} z"


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


def test_truncated_text_does_not_reveal_the_start_of_a_secret() -> None:
    masker = Masker(["abcdefghijklmnop"])
    assert masker.mask_truncated("payload: abcdefgh") == f"payload: {MASK}"
    assert masker.mask_truncated("payload: abc") == "payload: abc"  # too short to tell
    assert masker.mask_truncated("whole abcdefghijklmnop") == f"whole {MASK}"


def test_secrets_added_later_are_masked() -> None:
    masker = Masker([])
    assert masker.mask("late-token-value") == "late-token-value"
    masker.add("late-token-value")
    assert masker.mask("late-token-value") == MASK
