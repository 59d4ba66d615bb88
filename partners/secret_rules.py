"""What may be stored as a secret or an endpoint URL, and how a stored URL is shown.

Guarantee: ``display_url`` never returns the password of a URL's ``user:password@`` part (the
authority as RFC 3986 and ``urllib.parse.urlsplit`` split it, which is what the transports
connect with), for any input string, malformed URLs included; the rest of the URL is returned
unchanged. URLs with a password are refused when saved, so this only matters for rows stored
before that rule and for URLs typed elsewhere (run overrides).

Pure Python, no Django import.
"""

from __future__ import annotations

from certification.engine.masking import MASK, MIN_SAVED_SECRET_LENGTH

__all__ = [
    "INLINE_DB_PASSWORD_MESSAGE",
    "display_url",
    "has_inline_password",
    "short_secret_message",
]

INLINE_DB_PASSWORD_MESSAGE = (
    "The URL holds a password (user:password@host). Remove it from the URL and give it as the "
    "endpoint's Database password (auth kind db_password), where it is stored encrypted and "
    "never shown."
)


def short_secret_message(label: str, value: str, *, stored: bool = False) -> str | None:
    """Why ``value`` cannot be saved as the secret called ``label``, or None if it can.
    ``stored``: the value was saved before this rule and is being kept, not entered now."""
    if len(value) >= MIN_SAVED_SECRET_LENGTH:
        return None
    if stored:
        return (
            f"The stored {label} is shorter than {MIN_SAVED_SECRET_LENGTH} characters, the "
            "minimum for a secret; enter a new one."
        )
    return f"{label} is too short: a secret needs at least {MIN_SAVED_SECRET_LENGTH} characters."


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the ``user[:password]`` part of the URL's authority is, if it has one."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if found != -1:
            end = min(end, found)
    at = url.rfind("@", start, end)
    return (start, at) if at != -1 else None


def has_inline_password(url: str) -> bool:
    span = _userinfo_span(url)
    return span is not None and ":" in url[span[0] : span[1]]


def display_url(url: str) -> str:
    """The URL as it may be shown: ``postgres://reader:pw@db/x`` -> ``postgres://reader:••••••@db/x``."""
    span = _userinfo_span(url)
    if span is None:
        return url
    start, at = span
    user, colon, _password = url[start:at].partition(":")
    if not colon:
        return url
    return f"{url[:start]}{user}:{MASK}{url[at:]}"
