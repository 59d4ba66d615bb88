"""Keep secrets out of everything the engine records.

Guarantee: once a value is registered, :meth:`Masker.mask` replaces every occurrence of it with
``MASK`` in each of the spellings an HTTP exchange or an echo server produces for it, derived
from the secret itself (never from a list of examples):

* raw;
* inside a quoted string: every character may be written ``\\uXXXX`` (lower- or upper-case hex,
  a surrogate pair above U+FFFF) or with its short JSON escape (``\\"``, ``\\\\``, ``\\/``,
  ``\\n``...), which covers ``json.dumps`` with and without ``ensure_ascii``, PHP's
  ``json_encode`` (escaped ``/``), Go's and .NET's escaped HTML characters; also the string
  literal escapes of JavaScript, Python and PHP (``\\'``, ``\\xHH`` of the code point or of the
  UTF-8 bytes);
* HTML-escaped (``&quot;``, ``&#39;``, ``&#x27;``...), for error pages that show a request;
* percent-encoded, upper- or lower-case hex, ``+`` or ``%20`` for a space;
* up to three of these encodings stacked in any order: a JSON document holding the secret
  echoed inside another JSON string (``\\\\/``, ``\\\\u00e9``, ``\\\\\\"``), that echo
  returned as a string again or shown in an HTML page, a URL carried in a query parameter
  (``%252F``), a JSON body in a query string (``%5C%22``);
* base64, standard and URL-safe, padded or not, at each of the 3 byte alignments, which is
  what hides it inside ``Authorization: Basic base64(user:secret)`` or a larger base64 blob,
  its ``+`` and ``/`` written in any of the ways above;
* hex of its UTF-8 bytes, lower- or upper-case;
* any of these with every character written ``\\uXXXX``, as a paranoid encoder does (base64
  letters and the backslashes of earlier escapes included).

Each character of the secret takes any of its spellings independently, so mixtures (a path
percent-encoded except for its ``/``, then JSON-escaped by PHP) are found too.

Secrets of any length are masked. One of ``MIN_SAVED_SECRET_LENGTH`` characters or more is
masked wherever it occurs, even inside a longer word. A shorter one (saved before that minimum
existed, or a run variable) would wreck bodies if masked inside words, so it is masked only as
a whole token: an edge that is a letter or digit must not touch another letter or digit (an
escape sequence such as ``%2F`` or ``\\n`` before it counts as a separator), and an edge that
is punctuation or a space must touch whitespace, a quote or one of ``=&?#/,;``, or the start
or end of the text. A whole header value, URL path segment, query value or JSON string is such
a token, so there it is always masked; inside ``password123`` a secret ``pass`` is not. The
base64 and hex spellings of a secret are used only when at least ``_MIN_DERIVED_LENGTH``
characters long (a 3-byte secret's 4 base64 characters would match random base64 data), so a
secret shorter than about 6 bytes is not found in base64, nor one shorter than 4 in hex.

Headers that carry credentials by nature are masked whole, whatever their value, because their
value may be a derivation of a secret we cannot reproduce (an HMAC, a session cookie, a token
issued by the partner).

Not recognised: base64 of base64 (a Basic credential base64-encoded again); base64 of the
secret escaped by another JSON encoder than Python's, Node's or PHP's, or with its characters
encoded inconsistently (a partly decoded query string); more than three stacked encodings;
and ``\\u005C`` for a backslash that an earlier level of escaping added (encoders write
``\\\\``), except when every character is ``\\u``-escaped.

Cost: :meth:`Masker.add` derives the spellings and compiles the first ten or so characters of
every spelling of every secret into one regular expression whose alternatives each start with
a literal character; a text holding no secret costs that one scan, and only where it finds a
candidate is the rest of the spelling confirmed in Python.

Pure Python, no Django import.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SAVED_SECRET_LENGTH", "Masker", "is_sensitive_header"]

MASK = "••••••"

# The product refuses to save a secret shorter than this. The masker still masks shorter ones
# (see above), but only as whole tokens.
MIN_SAVED_SECRET_LENGTH = 8

# Base64 and hex spellings are derived from the secret's bytes; shorter ones would collide
# with ordinary base64 or hex data (a 5-character fragment matches random base64 once per
# ~10^9 characters, but real payloads repeat), so they are only used from this length on.
_MIN_DERIVED_LENGTH = 8

# A truncated capture can end in the middle of a secret; a dangling prefix spelling this many
# of its characters or more is masked too (shorter ones would mask ordinary text ending in a
# common letter pair). For a secret this short or shorter, any proper prefix is enough.
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


# ------------------------------------------------------------------ spellings of a character

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
# Escaped by some JSON encoders though JSON does not require it: Go (<>&), .NET (<>&'+`),
# PHP's JSON_HEX_* flags (<>&'").
_OPTIONALLY_ESCAPED = frozenset("<>&'+`")
_HTML_ESCAPES = {
    "&": ("&amp;", "&#38;", "&#x26;"),
    "<": ("&lt;", "&#60;", "&#x3c;", "&#x3C;"),
    ">": ("&gt;", "&#62;", "&#x3e;", "&#x3E;"),
    '"': ("&quot;", "&#34;", "&#x22;"),
    "'": ("&#39;", "&#039;", "&#x27;", "&apos;"),
}
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")
# A str may hold a lone surrogate (bytes decoded with surrogateescape): encode it as it is
# rather than fail to register the secret.
_LONE = "surrogatepass"


def _u_escapes(text: str) -> set[str]:
    """``text`` with each UTF-16 code unit written ``\\uXXXX``, in lower- and upper-case hex."""
    data = text.encode("utf-16-be", _LONE)
    units = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return {
        "".join(f"\\u{unit:04x}" for unit in units),
        "".join(f"\\u{unit:04X}" for unit in units),
    }


def _escapes(char: str) -> set[str]:
    """The escape sequences that write ``char`` inside a JSON, JavaScript, Python or PHP string."""
    forms = _u_escapes(char)
    if char in _SHORT_ESCAPES:
        forms.add(_SHORT_ESCAPES[char])
    if char == "'":
        forms.add("\\'")
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0x100:
        forms |= {f"\\x{code:02x}", f"\\x{code:02X}"}
    if code >= 0x80:
        utf8 = char.encode("utf-8", _LONE)
        forms |= {"".join(f"\\x{b:02x}" for b in utf8), "".join(f"\\x{b:02X}" for b in utf8)}
    return forms


def _json_escaped(text: str) -> set[str]:
    """``text`` as JSON encoders write it inside a string (each optional escape either way)."""
    options = []
    for char in text:
        if char == '"':
            options.append(('\\"', "\\u0022"))
        elif char == "\\":
            options.append(("\\\\",))  # what every common encoder writes for it
        elif char == "/":
            options.append(("/", "\\/"))
        elif ord(char) < 0x20:
            short = _SHORT_ESCAPES.get(char)
            options.append((*_u_escapes(char), *((short,) if short else ())))
        elif ord(char) >= 0x7F or char in _OPTIONALLY_ESCAPED:
            options.append((char, *_u_escapes(char)))
        else:
            options.append((char,))
    return {"".join(choice) for choice in itertools.product(*options)}


def _html_escaped(text: str) -> set[str]:
    options = [(char, *_HTML_ESCAPES.get(char, ())) for char in text]
    return {"".join(choice) for choice in itertools.product(*options)}


def _percent_escaped(text: str) -> set[str]:
    """Percent-encoded ``text``: ``%XX`` in upper or lower case, ``%20`` or ``+`` for a space."""
    forms = {quote(text, safe="", errors=_LONE), quote_plus(text, safe="", errors=_LONE)}
    return forms | {_HEX_ESCAPE.sub(lambda m: m.group(0).lower(), form) for form in forms}


# How many encodings may be stacked on a secret, in any order: a JSON request body echoed
# inside a JSON string is 2, that echo returned as a string once more (or shown in an HTML
# page, or carried in a query parameter) is 3.
_LAYERS = 3


@lru_cache(maxsize=4096)
def _spellings(char: str) -> tuple[str, ...]:
    """Every spelling of one character of a secret (see the module docstring), longest first.

    The literal character, then up to ``_LAYERS`` encodings applied in turn: first its escape
    sequences or HTML or percent encoding, then JSON escaping, HTML escaping or percent
    encoding of the text so far. The ``\\uXXXX`` of an ASCII letter or digit is legal but only
    a paranoid encoder writes it (``_forms`` covers those, see ``_u_group``), so it is not
    layered.
    """
    plain = char.isascii() and char.isalnum()
    forms = {char} if plain else {char} | _escapes(char)
    layer = set(forms)
    for _ in range(_LAYERS - 1):
        layer = {
            form
            for text in layer
            for encode in (_json_escaped, _html_escaped, _percent_escaped)
            for form in encode(text)
        } - forms
        forms |= layer
    if plain:
        forms |= _u_escapes(char)
    return tuple(sorted(forms, key=_longest))


def _longest(form: str) -> tuple[int, str]:
    return -len(form), form


# ----------------------------------------------------------------------- spellings of a secret

# An escape sequence ending in a letter or digit separates tokens like the character it stands
# for would: "%2Fabc", "\\nabc", "\\u0020abc" (the lookbehinds run one character into the match).
_AFTER_ESCAPE = (
    r"(?<=\\[bfnrt].)",
    r"(?<=\\u[0-9A-Fa-f]{4}.)",
    r"(?<=\\x[0-9A-Fa-f]{2}.)",
    r"(?<=%[0-9A-Fa-f]{2}.)",
)
_SEPARATORS = " \t\r\n\"'=&?#/,;"


def _token_edges(secret: str) -> tuple[str, str]:
    """(start, end) regex checks for a secret masked only as a whole token (see the module
    docstring). The start check is meant to run one character into the match, so that every
    alternative of the scanning regex still begins with a literal character."""

    def neighbour(edge: str) -> str:
        if edge.isalnum():
            return r"[^\W_]"
        return "[^" + re.escape(_SEPARATORS.replace(edge, "")) + "]"

    start = "(?:" + "|".join((f"(?<!{neighbour(secret[0])}.)", *_AFTER_ESCAPE)) + ")"
    return start, f"(?!{neighbour(secret[-1])})"


@dataclass(frozen=True)
class _Form:
    """A spelling of a secret: for each character position, its alternatives (longest first).

    Any path through the positions is a spelling; ``start``/``end`` are the whole-token checks
    of a short secret (empty otherwise).
    """

    groups: tuple[tuple[str, ...], ...]
    min_dangling: int  # complete positions a dangling prefix must spell to be masked
    start: str = ""
    end: str = ""

    @cached_property
    def leads(self) -> frozenset[str]:
        return frozenset(spelling[0] for spelling in self.groups[0])

    @cached_property
    def lead_finder(self) -> re.Pattern[str]:
        return re.compile("[" + "".join(map(re.escape, sorted(self.leads))) + "]")

    @cached_property
    def width(self) -> int:
        """The longest text a spelling can take."""
        return sum(len(group[0]) for group in self.groups)

    @cached_property
    def start_check(self) -> re.Pattern[str] | None:
        return re.compile(self.start, re.DOTALL) if self.start else None

    @cached_property
    def end_check(self) -> re.Pattern[str] | None:
        return re.compile(self.end) if self.end else None

    @cached_property
    def scanned(self) -> int:
        """How many leading positions the scanning regex checks: enough for about
        ``_SCAN_WIDTH`` characters of text, which rules out nearly every place the form does
        not start (the rest is confirmed in Python), and few enough to compile quickly."""
        width = 0
        for count, group in enumerate(self.groups, 1):
            width += len(group[-1])
            if width >= _SCAN_WIDTH:
                return count
        return len(self.groups)

    @cached_property
    def scan_branches(self) -> dict[str, str]:
        """For each first character, the regex :func:`_compile` puts after it to find where
        this form may start (computed once: every ``add`` recompiles all forms)."""
        rests: dict[str, list[str]] = {}
        for spelling in self.groups[0]:
            rests.setdefault(spelling[0], []).append(spelling[1:])
        tail = "".join(_scan_alternation(group) for group in self.groups[1 : self.scanned])
        if self.scanned == len(self.groups):
            tail += self.end
        return {
            lead: self.start + _scan_alternation(options) + tail for lead, options in rests.items()
        }

    def match_end(self, text: str, start: int) -> int:
        """Where the longest spelling of this form starting at ``start`` ends, or -1."""
        check = self.start_check
        if check is not None and not check.match(text, start + 1):
            return -1
        positions = {start}
        for group in self.groups:
            following = set()
            for position in positions:
                for spelling in group:
                    if text.startswith(spelling, position):
                        following.add(position + len(spelling))
            if not following:
                return -1
            positions = following
        check = self.end_check
        return max(
            (end for end in positions if check is None or check.match(text, end)), default=-1
        )

    def dangles_from(self, text: str, start: int) -> bool:
        """True if ``text[start:]`` is a prefix of a spelling covering ``min_dangling``
        positions or more, the last one possibly cut inside its spelling."""
        check = self.start_check
        if check is not None and not check.match(text, start + 1):
            return False
        end = len(text)
        positions = {start}
        for index, group in enumerate(self.groups):
            enough = index >= self.min_dangling
            if enough and end in positions:
                return True
            following = set()
            for position in positions:
                rest = end - position
                for spelling in group:
                    if text.startswith(spelling, position):
                        following.add(position + len(spelling))
                    elif enough and rest < len(spelling) and spelling.startswith(text[position:]):
                        return True
            if not following:
                return False
            positions = following
        return end in positions


# The scanning regex holds only the first positions of each form, about this many characters
# (see _Form.scanned); a candidate it finds is confirmed (or not) by walking the rest in
# Python. Keeps compiling fast for long secrets (a JWT, a PEM key) and the hot path one scan.
_SCAN_WIDTH = 10


def _base64_fragments(secret: bytes) -> list[str]:
    """The base64 characters that depend only on ``secret``, for each of the 3 alignments.

    Inside a larger base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte group;
    the characters that straddle a neighbouring byte differ from one message to the next, so
    only the characters fully determined by the secret's own bits are kept.
    """
    fragments = []
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * offset + secret).decode("ascii")
        complete = (8 * (offset + len(secret))) // 6
        fragment = encoded[skip:complete]
        if len(fragment) >= _MIN_DERIVED_LENGTH:
            fragments.append(fragment)
    return fragments


def _encoded_texts(secret: str) -> set[str]:
    """``secret`` as common encoders write it whole: inside a JSON string once (Python, Node,
    PHP) and twice (Python, PHP), and percent-encoded (path, query or form style, either
    case). Base64 cannot be spelled a character at a time, so it is derived from these."""
    python, node = json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]
    php = python.replace("/", "\\/")
    texts = {secret, python, node, php, json.dumps(python)[1:-1], json.dumps(php)[1:-1]}
    percent = {
        quote(secret, safe="", errors=_LONE),
        quote(secret, errors=_LONE),
        quote_plus(secret, safe="", errors=_LONE),
    }
    return texts | percent | {_HEX_ESCAPE.sub(lambda m: m.group(0).lower(), t) for t in percent}


def _ordered(spellings: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(spellings), key=_longest))


@lru_cache(maxsize=4096)
def _base64_group(standard: str, url_safe: str) -> tuple[str, ...]:
    """One character of a base64 spelling, in either alphabet, letters and digits as they are
    and the others in any of their spellings (PHP writes "/" as "\\/", .NET "+" as
    "\\u002B", a query string "%2B")."""
    return _ordered(
        char if char.isascii() and char.isalnum() else spelling
        for char in (standard, url_safe)
        for spelling in _spellings(char)
    )


@lru_cache(maxsize=4096)
def _hex_group(group: tuple[str, ...]) -> tuple[str, ...]:
    """The hex of the UTF-8 bytes of each spelling in ``group``, lower- and upper-case."""
    digits = [text.encode("utf-8", _LONE).hex() for text in group]
    return _ordered([*digits, *(text.upper() for text in digits)])


@lru_cache(maxsize=4096)
def _u_group(group: tuple[str, ...]) -> tuple[str, ...]:
    """Each spelling in ``group`` with every character written ``\\uXXXX``."""
    return _ordered(escaped for text in group for escaped in _u_escapes(text))


def _forms(secret: str) -> list[_Form]:
    """The spellings of ``secret``: as text; as base64 of its common encoded texts; as hex of
    any text spelling and of its raw base64 (a hex dump of a request with Basic auth); and the
    text and its raw base64 as an encoder that writes every character ``\\uXXXX`` would.

    Not base64 of base64: its leading characters are common letters, which would make every
    scan stop far more often (see ``_compile``) for an encoding echo servers seldom use.
    """
    groups = tuple(_spellings(char) for char in secret)
    min_dangling = max(1, min(_MIN_DANGLING_PREFIX, len(secret) - 1))
    edges = _token_edges(secret) if len(secret) < MIN_SAVED_SECRET_LENGTH else ("", "")
    text = _Form(groups, min_dangling, *edges)
    raw_base64 = _base64_forms(secret)
    forms = [text, *raw_base64]
    for encoded in sorted(_encoded_texts(secret) - {secret}):
        forms += _base64_forms(encoded)
    if 2 * len(secret.encode("utf-8", _LONE)) >= _MIN_DERIVED_LENGTH:
        forms += [
            _Form(tuple(map(_hex_group, form.groups)), form.min_dangling)
            for form in [text, *raw_base64]
        ]
    forms += [
        _Form(tuple(map(_u_group, form.groups)), form.min_dangling, form.start, form.end)
        for form in [text, *raw_base64]
    ]
    return list(dict.fromkeys(forms))


def _base64_forms(text: str) -> list[_Form]:
    """Base64 (either alphabet) of ``text``'s UTF-8 bytes, at each of the 3 alignments."""
    forms = []
    for fragment in _base64_fragments(text.encode("utf-8", _LONE)):
        url_safe = fragment.replace("+", "-").replace("/", "_")
        forms.append(_Form(tuple(map(_base64_group, fragment, url_safe)), _MIN_DANGLING_PREFIX))
    return forms


def _scan_alternation(options: Iterable[str]) -> str:
    """A regex matching any of ``options`` (literal strings), longest first; options that
    differ only in letter case (``%2f``/``%2F``) share one alternative with ``[fF]`` classes,
    which may match a mixed case too: the scan may find more than the forms, never less."""
    by_folded: dict[str, list[str]] = {}
    for option in options:
        folded = option.lower()
        by_folded.setdefault(folded if len(folded) == len(option) else option, []).append(option)
    alternatives = []
    for folded, members in sorted(by_folded.items(), key=lambda item: _longest(item[0])):
        parts = []
        for index in range(len(folded)):
            variants = sorted({member[index] for member in members})
            parts.append(re.escape(variants[0]) if len(variants) == 1 else f"[{''.join(variants)}]")
        alternatives.append("".join(parts))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


def _compile(forms: Iterable[_Form]) -> re.Pattern[str]:
    """The scanning regex: where any of ``forms`` may start.

    Every top-level alternative starts with a literal character, so Python's ``re`` skips
    ahead to the next of those characters before trying anything (a group as first item
    would disable that and try every alternative at every position).
    """
    by_lead: dict[str, list[str]] = {}
    for form in forms:
        for lead, branch in form.scan_branches.items():
            by_lead.setdefault(lead, []).append(branch)
    branches = []
    for lead, found in by_lead.items():
        alternatives = list(dict.fromkeys(found))  # forms often share their first positions
        rest = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        branches.append(re.escape(lead) + rest)
    return re.compile("|".join(branches), re.DOTALL)


class Masker:
    """Replaces known secret values (and their encoded forms) with ``MASK``.

    Where spellings of several secrets start at the same place, the longest is masked, so a
    secret that contains another secret is masked as a whole. Registering secrets costs a few
    milliseconds (the scanning regex is recompiled for all of them); masking a text that holds
    none is one regex scan.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._forms: list[_Form] = []
        self._by_lead: dict[str, list[_Form]] = {}
        self._regex: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Register more secret values, e.g. an access token fetched during the run.

        Any non-empty string is accepted; short ones are masked as whole tokens only (see
        the module docstring).
        """
        new = {s for s in secrets if isinstance(s, str) and s} - self._secrets
        if not new:
            return
        self._secrets |= new
        for secret in sorted(new):
            for form in _forms(secret):
                self._forms.append(form)
                for lead in form.leads:
                    self._by_lead.setdefault(lead, []).append(form)
        self._regex = _compile(self._forms)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of a secret (raw or encoded) replaced by ``MASK``."""
        regex = self._regex
        if regex is None or not text:
            return text
        found = regex.search(text)
        if found is None:
            return text
        parts = []
        done = 0
        while found is not None:
            start = found.start()
            end = max(form.match_end(text, start) for form in self._by_lead[text[start]])
            if end > start:
                parts += (text[done:start], MASK)
                done = end
            found = regex.search(text, max(end, start + 1))
        parts.append(text[done:])
        return "".join(parts)

    def mask_truncated(self, text: str) -> str:
        """:meth:`mask` for a text that was cut short: a secret split by the cut would leave
        its first characters visible, so a trailing prefix of any of its spellings that spells
        ``_MIN_DANGLING_PREFIX`` characters or more (any proper prefix of a shorter secret)
        is masked as well."""
        masked = self.mask(text)
        if self._regex is None:
            return masked
        end = len(masked)
        cut = end
        for form in self._forms:
            for lead in form.lead_finder.finditer(masked, max(0, end - form.width), cut):
                if form.dangles_from(masked, lead.start()):
                    cut = lead.start()
                    break
        return masked[:cut] + MASK if cut < end else masked

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
