"""Keep secrets out of everything the engine records.

Captured requests and responses end up in the database, in evidence bundles and on screens a
partner can see, so every secret value the run knows (endpoint credentials, ``{{secret.*}}``
variables, fetched OAuth2 access tokens) is replaced with ``MASK`` before a capture is built.

Besides the raw value, the forms a secret commonly takes on the wire are masked too: its
percent-encoded spellings (query strings, form bodies) and its base64 encodings at every byte
alignment, which is what hides it inside ``Authorization: Basic base64(user:secret)`` or a
base64 blob. Headers that carry credentials by nature are masked whole, whatever their value,
because their value may be a derivation of a secret we cannot reproduce (an HMAC, a session
cookie, a token issued by the partner).

Pure Python, no Django import.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Masker", "is_sensitive_header"]

MASK = "••••••"

# Secrets shorter than this are not masked: replacing every "abc" or "1234"-free-text hit
# would wreck bodies and headers (and hide nothing useful, since a 3-character secret is
# guessable anyway). Endpoint forms should reject such secrets before they get here.
MIN_SECRET_LENGTH = 4

# Base64 fragments are derived from the secret's bytes; shorter fragments would collide with
# ordinary base64 data (a 5-character fragment matches random base64 once per ~10^9 chars,
# but real payloads repeat), so they are only used when they are at least this long.
_MIN_DERIVED_LENGTH = 8

# A truncated capture can end in the middle of a secret; a dangling prefix this long or longer
# is masked too (shorter ones would mask ordinary text ending in a common letter pair).
_MIN_DANGLING_PREFIX = 4

_ALWAYS_MASKED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-signature",
    }
)
_MASKED_FRAGMENTS = ("secret", "token", "signature", "api-key", "apikey")


# Header names repeat on every request; the answer is cached (bounded: names come from
# partner servers, and an unbounded cache would let one grow our memory).
_SENSITIVE_CACHE: dict[str, bool] = {}
_SENSITIVE_CACHE_MAX = 4096


def is_sensitive_header(name: str) -> bool:
    """True for a header whose value is always masked whole (credentials by nature)."""
    known = _SENSITIVE_CACHE.get(name)
    if known is not None:
        return known
    lowered = name.lower()
    sensitive = lowered in _ALWAYS_MASKED or any(part in lowered for part in _MASKED_FRAGMENTS)
    if len(_SENSITIVE_CACHE) < _SENSITIVE_CACHE_MAX:
        _SENSITIVE_CACHE[name] = sensitive
    return sensitive


def _base64_fragments(secret: bytes) -> set[str]:
    """The base64 characters that depend only on ``secret``, for each of the 3 alignments.

    Inside a larger base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte group;
    the characters that straddle a neighbouring byte differ from one message to the next, so
    only the characters fully determined by the secret's own bits are kept.
    """
    fragments: set[str] = set()
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * offset + secret).decode("ascii").rstrip("=")
        complete = (8 * (offset + len(secret))) // 6
        fragment = encoded[skip:complete]
        if len(fragment) >= _MIN_DERIVED_LENGTH:
            fragments.add(fragment)
            # base64url (JWTs, URL-safe tokens) differs only in two characters.
            fragments.add(fragment.replace("+", "-").replace("/", "_"))
    return fragments


def _percent_forms(secret: str) -> set[str]:
    """Percent-encoded spellings: path/query style, form style, and lower-case hex digits."""
    forms = {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms}
    return forms


class Masker:
    """Replaces known secret values (and their encoded forms) with ``MASK``.

    Secrets shorter than ``MIN_SECRET_LENGTH`` characters are ignored (see above). Longer
    patterns are tried first, so a secret that contains another secret is masked as a whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._patterns: list[str] = []
        self._regex: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Register more secret values, e.g. an access token fetched during the run."""
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        new -= self._secrets
        if not new:
            return
        self._secrets |= new
        patterns = set(self._patterns)
        for secret in new:
            patterns.add(secret)
            patterns |= _percent_forms(secret)
            patterns |= _base64_fragments(secret.encode("utf-8"))
        # Longest first: re alternation takes the first alternative that matches.
        self._patterns = sorted(patterns, key=lambda p: (-len(p), p))
        self._regex = re.compile("|".join(map(re.escape, self._patterns)))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of a secret (raw or encoded) replaced by ``MASK``."""
        if self._regex is None or not text:
            return text
        return self._regex.sub(MASK, text)

    def mask_truncated(self, text: str) -> str:
        """:meth:`mask` for a text that was cut short: a secret split by the cut would leave
        its first characters visible, so a trailing prefix of a secret is masked as well."""
        masked = self.mask(text)
        if self._regex is None:
            return masked
        longest = 0
        for pattern in self._patterns:
            for length in range(min(len(pattern) - 1, len(masked)), longest, -1):
                if length < _MIN_DANGLING_PREFIX:
                    break
                if masked.endswith(pattern[:length]):
                    longest = length
                    break
        return masked[: len(masked) - longest] + MASK if longest else masked

    def mask_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Header names kept as given; credential headers masked whole, others by value."""
        regex = self._regex
        # One search over all values first: on the hot path no header holds a secret, and
        # that is cheaper to establish once than with a substitution per header.
        if regex is not None and regex.search("\n".join(headers.values())):
            mask = self.mask
            return {
                name: MASK if is_sensitive_header(name) else mask(value)
                for name, value in headers.items()
            }
        return {
            name: MASK if is_sensitive_header(name) else value for name, value in headers.items()
        }

    def mask_obj(self, value: Any) -> Any:
        """Mask strings anywhere inside dicts, lists and tuples (keys included)."""
        if self._regex is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_obj(k): self.mask_obj(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_obj(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.mask_obj(item) for item in value)
        return value
