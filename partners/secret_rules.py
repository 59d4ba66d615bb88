"""What may be stored as a secret or an endpoint URL, and how a stored URL is shown.

Guarantee: ``display_url`` never returns a password held in a URL, for any input string,
malformed URLs included: neither the password of the ``user:password@`` part (the authority as
RFC 3986 and ``urllib.parse.urlsplit`` split it, which is what the transports connect with) nor
the value of a libpq query parameter that holds one (``password``, ``passfile``,
``sslpassword``; names matched case-insensitively after percent-decoding). The query is taken
as everything after the first ``?`` of the string, split on ``&`` only, as libpq does, so a
``#`` or ``;`` inside such a value is masked with it. The rest of the URL is returned unchanged.
URLs with a password are refused when saved, so this only matters for rows stored before that
rule and for URLs typed elsewhere (run overrides).

Pure Python, no Django import.
"""

from __future__ import annotations

from urllib.parse import unquote

from certification.engine.masking import MASK, MIN_SAVED_SECRET_LENGTH

__all__ = [
    "INLINE_DB_PASSWORD_MESSAGE",
    "PASSWORD_QUERY_PARAMETERS",
    "display_url",
    "has_inline_password",
    "short_secret_message",
]

INLINE_DB_PASSWORD_MESSAGE = (
    "The URL holds a password (user:password@host or ?password=). Remove it from the URL and "
    "give it as the endpoint's Database password (auth kind db_password), where it is stored "
    "encrypted and never shown."
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


# libpq connection parameters whose value is, or unlocks, a password.
PASSWORD_QUERY_PARAMETERS = frozenset({"password", "passfile", "sslpassword"})


def _is_password_parameter(item: str) -> bool:
    """``item`` is one ``name[=value]`` of a query string."""
    return unquote(item.partition("=")[0]).lower() in PASSWORD_QUERY_PARAMETERS


def _query_items(url: str) -> tuple[str, list[str]] | None:
    """The URL up to and including its first ``?``, and what follows split on ``&``."""
    question = url.find("?")
    if question == -1:
        return None
    return url[: question + 1], url[question + 1 :].split("&")


def has_inline_password(url: str) -> bool:
    """The URL holds a password: ``user:password@host`` or a ``?password=``-like parameter."""
    span = _userinfo_span(url)
    if span is not None and ":" in url[span[0] : span[1]]:
        return True
    query = _query_items(url)
    return query is not None and any(_is_password_parameter(item) for item in query[1])


def _mask_query(url: str) -> str:
    query = _query_items(url)
    if query is None:
        return url
    head, items = query
    masked = [
        f"{item.partition('=')[0]}={MASK}" if "=" in item and _is_password_parameter(item) else item
        for item in items
    ]
    return head + "&".join(masked)


def display_url(url: str) -> str:
    """The URL as it may be shown: ``postgres://reader:pw@db/x`` ->
    ``postgres://reader:••••••@db/x``, ``…/x?password=pw`` -> ``…/x?password=••••••``."""
    span = _userinfo_span(url)
    if span is not None:
        start, at = span
        user, colon, _password = url[start:at].partition(":")
        if colon:
            url = f"{url[:start]}{user}:{MASK}{url[at:]}"
    return _mask_query(url)
