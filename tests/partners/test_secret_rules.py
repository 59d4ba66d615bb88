from __future__ import annotations

import pytest

from certification.engine.masking import MASK, MIN_SAVED_SECRET_LENGTH
from partners.secret_rules import (
    display_url,
    has_inline_password,
    short_secret_message,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgres://reader:pw-SECRET@db.example:5432/orders",
            "postgres://reader:{m}@db.example:5432/orders",
        ),
        ("postgresql://u:p@ss-SECRET@db.example/x", "postgresql://u:{m}@db.example/x"),
        ("https://user:tok-SECRET@api.example/v1?q=1", "https://user:{m}@api.example/v1?q=1"),
        ("postgres://:pw-SECRET@db.example/x", "postgres://:{m}@db.example/x"),
        ("reader:pw-SECRET@db.example/x", "reader:{m}@db.example/x"),
        ("http://[::1:pw-SECRET@db.example/x", "http://[:{m}@db.example/x"),
    ],
)
def test_display_url_masks_the_password_of_the_userinfo(url: str, shown: str) -> None:
    assert display_url(url) == shown.format(m=MASK)
    assert "SECRET" not in display_url(url)
    assert has_inline_password(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://reader@db.example:5432/orders",
        "https://api.example/users/@me:x",
        "https://api.example/v1?user=a:b@c",
        "https://api.example/#a:b@c",
        "http://127.0.0.1:8001/v1",
        "",
        "not a url",
    ],
)
def test_display_url_leaves_urls_without_a_password_alone(url: str) -> None:
    assert display_url(url) == url
    assert not has_inline_password(url)


def test_secret_shorter_than_the_minimum_is_refused_with_its_label() -> None:
    assert MIN_SAVED_SECRET_LENGTH == 8
    assert short_secret_message("API key", "x" * 8) is None
    assert short_secret_message("API key", "x" * 7) == (
        "API key is too short: a secret needs at least 8 characters."
    )
    assert "The stored API key is shorter than 8" in str(
        short_secret_message("API key", "abc", stored=True)
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgres://reader@127.0.0.1:5432/db?password=hunter22pw",
        "postgres://reader@127.0.0.1:5432/db?sslmode=require&PASSWORD=hunter22pw",
        "postgres://reader@127.0.0.1:5432/db?pass%77ord=hunter22pw",
        "postgres://reader@127.0.0.1:5432/db?sslpassword=hunter22pw",
    ],
)
def test_a_password_in_the_query_string_is_an_inline_password_and_never_shown(url: str) -> None:
    assert has_inline_password(url)
    shown = display_url(url)
    assert "hunter22pw" not in shown and shown.startswith("postgres://reader@127.0.0.1:5432/db?")


def test_a_query_without_a_password_is_left_alone() -> None:
    url = "postgres://reader@127.0.0.1:5432/db?sslmode=require&application_name=certdash"
    assert not has_inline_password(url)
    assert display_url(url) == url
