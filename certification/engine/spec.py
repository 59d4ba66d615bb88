"""Scenario suites: YAML text in, ``model.Suite`` out, every mistake reported by file:line:column.

The format is a superset of Dokkimi's test definitions (``name`` / ``items`` / ``tests``, grouped
assertions with ``match`` and ``count``, ``extract``, ``{{var}}`` templates, ``$ref`` to shared
files, MOCK items). ``docs/scenario-format.md`` is the reference and ``suite.schema.json`` next to
this module describes the same keys as a JSON Schema.

Suites are uploaded by users, so reading is defensive: the size cap is checked before parsing;
the tree is built from the YAML parser's events (libyaml's when available, else PyYAML's pure
Python one), so nothing is ever constructed from tags and anchors and aliases are refused before
anything could be expanded (no "billion laughs"); nesting depth, ``$ref`` includes and mocks are
capped. Validation never stops at the first mistake: every error is collected with the position
of the key or value at fault and ``SuiteInvalid`` carries them all, sorted.

Pure Python (PyYAML only): no Django import.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

try:
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from certification.engine import templating
from certification.engine.masking import is_sensitive_header
from certification.engine.model import (
    ACTION_TYPES,
    HTTP_METHODS,
    MISSING,
    OPERATORS,
    SCENARIO_KINDS,
    Assertion,
    AssertionGroup,
    CountCheck,
    DbQuery,
    HttpRequest,
    LatencyProbe,
    Mock,
    Pos,
    Scenario,
    SftpList,
    SftpUpload,
    Step,
    Suite,
    Until,
    Wait,
    WaitForFile,
    WaitForRequest,
    WebhookSend,
)

__all__ = [
    "LIMITS",
    "MAX_SUITE_BYTES",
    "Limits",
    "configure",
    "SpecError",
    "SuiteInvalid",
    "SuiteSources",
    "check_suite_bytes",
    "load_suite_file",
    "parse_path",
    "parse_suite",
    "read_suite_sources",
    "suite_fingerprint",
    "template_names",
]

# ----------------------------------------------------------------------------- limits

MAX_SUITE_BYTES = 1024 * 1024  # the default per-file limit, checked before parsing


@dataclass
class Limits:
    """What a suite may hold. The engine's defaults; the product sets them from its settings
    (``SUITE_FILE_MAX_BYTES``, ``SUITE_MAX_BYTES``, ``PROBE_MAX_REQUESTS``) with ``configure``."""

    file_bytes: int = MAX_SUITE_BYTES  # one file, checked before it is parsed
    suite_bytes: int = 8 * MAX_SUITE_BYTES  # the entry file and every file it $refs, together
    probe_requests: int = 100_000  # a latencyProbe's ``requests``


LIMITS = Limits()


def configure(*, file_bytes: int, suite_bytes: int, probe_requests: int) -> None:
    """Set the limits every later parse applies."""
    LIMITS.file_bytes, LIMITS.suite_bytes = file_bytes, suite_bytes
    LIMITS.probe_requests = probe_requests


MAX_DEPTH = 64  # nested mappings/lists in one file
MAX_REFS = 500  # $ref includes followed while reading one suite
MAX_MOCKS = 1000  # MOCK items in one suite, includes expanded
MAX_SETTLE_MS = 60_000  # a step's wait for captured traffic
MAX_ERRORS = 200  # errors reported; the rest are counted
MAX_MS = 600_000
MAX_PROBE_PROCESSES = 64  # a latencyProbe's ``processes`` (PROBE_MAX_PROCESSES caps it further)

# ----------------------------------------------------------------------------- the format's keys

TOP_LEVEL_KEYS = ("name", "description", "version", "variables", "items", "tests")
SCENARIO_KEYS = ("name", "code", "kind", "description", "steps")
STEP_KEYS = (
    "name", "action", "assertions", "extract", "until", "continueOnFailure", "settleMs",
)  # fmt: skip
# ``auth`` of an httpRequest: "none" sends it without the endpoint's credentials (a negative
# test: "401 without credentials"), "endpoint" (the default) with them.
AUTH_CHOICES = ("none", "endpoint")
REQUEST_KEYS = ("method", "url", "headers", "query", "body", "bodyType", "timeoutMs")
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "httpRequest": ("type", *REQUEST_KEYS, "followRedirects", "auth"),
    "dbQuery": ("type", "database", "query", "params"),
    "wait": ("type", "ms"),
    "latencyProbe": (
        "type",
        *REQUEST_KEYS,
        "requests",
        "concurrency",
        "rate",
        "expectStatus",
        "flow",
        "processes",
    ),
    "waitForRequest": ("type", "match", "timeoutMs", "intervalMs"),
    "webhook": (
        "type",
        "url",
        "body",
        "eventId",
        "secret",
        "headers",
        "replay",
        "tamper",
        "stale",
        "maxAttempts",
        "timeoutMs",
    ),
    "sftpUpload": (
        "type",
        "endpoint",
        "dir",
        "name",
        "content",
        "csv",
        "sha256",
        "manifest",
        "rename",
        "pgp",
        "flow",
        "prefix",
        "ext",
        "sequence",
        "repeat",
    ),  # fmt: skip
    "waitForFile": ("type", "endpoint", "dir", "pattern", "timeoutMs", "intervalMs"),
    "sftpList": ("type", "endpoint", "dir", "pattern"),
    "x12Send": (
        "type",
        "endpoint",
        "set",
        "order",
        "segments",
        "control",
        "repeat",
        "dir",
        "name",
        "timeoutMs",
    ),  # fmt: skip
    "x12Receive": (
        "type",
        "endpoint",
        "set",
        "expect",
        "timeoutMs",
        "intervalMs",
        "dir",
        "pattern",
    ),  # fmt: skip
}
GROUP_KEYS = ("match", "count", "assertions")
MATCH_KEYS = ("origin", "method", "url")
COUNT_KEYS = ("operator", "value")
ASSERTION_KEYS = ("path", "operator", "value")
LENGTH_KEYS = ("operator", "value")
UNTIL_KEYS = ("path", "operator", "value", "timeoutMs", "intervalMs")
REF_KEY = "$ref"
MOCK_KEYS = (
    "type", "name", "mockTarget", "mockPath", "mockResponseStatus", "mockResponseHeaders",
    "mockResponseBody", "mockDelayMs", "mockRequestBodyContains", "mockRequestBodyMatches",
)  # fmt: skip
BODY_TYPES = ("json", "form", "raw")
COMPARISONS = ("eq", "neq", "gt", "gte", "lt", "lte")
TYPE_NAMES = ("string", "number", "integer", "boolean", "array", "object", "null")
BUILTINS = ("$uuid", "$timestamp", "$isoNow", "$randomInt")
RESERVED_VARIABLES = ("partner", "sla", "secret")
SCHEMA_KEYWORDS = (
    "type", "properties", "required", "items", "enum", "const", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "additionalProperties", "minItems", "maxItems",
    "title", "description", "$schema",
)  # fmt: skip
REF_EXTENSIONS = (".yaml", ".yml", ".json")

# Path roots, and which of them each kind of step can assert on.
PATH_ROOTS = (
    "response", "request", "data", "latency", "errors", "status", "failure", "signature",
    "replayed", "attempts", "file", "manifest", "files", "count", "interchange", "mdn", "ack",
    "as2",
)  # fmt: skip
ROOTS_BY_ACTION: dict[str, tuple[str, ...]] = {
    "httpRequest": ("response", "request", "failure"),
    "dbQuery": ("data",),
    "wait": (),
    "latencyProbe": ("latency", "errors", "status"),
    "waitForRequest": ("request", "response", "signature", "replayed"),
    "webhook": ("response", "request", "attempts"),
    "sftpUpload": ("file", "manifest"),
    "waitForFile": ("file",),
    "sftpList": ("files", "count"),
    "x12Send": ("interchange", "mdn", "response", "file"),
    "x12Receive": ("interchange", "ack", "as2", "file"),
}
_FILE_FIELDS = (
    "name", "path", "size", "sha256", "text", "json", "csv", "lines", "pgp", "sequence",
)  # fmt: skip
# What a ``match`` group's assertions (and a ``waitForRequest`` step) see of a captured request.
MATCH_ROOTS = ("request", "response", "signature", "replayed")
_SIGNATURE_FIELDS = ("valid", "reason")
_RESPONSE_FIELDS = ("status", "headers", "body", "timeMs", "redirects")
_REQUEST_FIELDS = ("method", "url", "headers", "body")
# An httpRequest that asserts on ``failure`` expects the exchange to fail: see docs.
_FAILURE_FIELDS = ("kind", "message")
_LATENCY_FIELDS = ("p50", "p90", "p95", "p99", "max", "requests", "ok", "successRatio")
_ERRORS_FIELDS = ("rate", "count")

# Items that Dokkimi uses to describe the system under test (services, databases). They have a
# meaning in Dokkimi's own cluster; a certification run talks to the partner's sandbox instead.
_SERVICE_HINT_KEYS = frozenset(
    {"image", "port", "ports", "env", "environment", "command", "build", "dockerfile",
     "healthCheck", "healthcheck", "init", "volumes", "dependsOn", "replicas"}
)  # fmt: skip

_CODE_RE = re.compile(r"[A-Z]{1,4}-\d{1,4}")
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A variable, then dotted keys or list indexes into it (partner.id, order.items.0, secret.api-key).
_TEMPLATE_NAME_RE = re.compile(r"\$[A-Za-z_]\w*|[A-Za-z_]\w*(?:\.[\w-]+)*")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A named flow an SLA can apply to (``p95<=300ms on flow:checkout``); the registry's grammar.
FLOW_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_\-]{0,39}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_IDENT_RE = re.compile(r"[A-Za-z_]\w*")
_NAME_SEGMENT_RE = re.compile(r"[^.\[\]\s\"']+")
_INDEX_RE = re.compile(r"\[(\d{1,9})\]")

# Words people reach for, mapped to the format's spelling (matched case-insensitively).
_OPERATOR_ALIASES = {
    "equals": "eq", "equal": "eq", "is": "eq", "==": "eq", "=": "eq", "equalto": "eq",
    "notequals": "neq", "notequal": "neq", "ne": "neq", "!=": "neq", "not": "neq",
    "greaterthan": "gt", ">": "gt", "greaterthanorequal": "gte", "ge": "gte", ">=": "gte",
    "lessthan": "lt", "<": "lt", "lessthanorequal": "lte", "le": "lte", "<=": "lte",
    "include": "contains", "includes": "contains", "has": "contains",
    "notinclude": "notContains", "notincludes": "notContains", "excludes": "notContains",
    "exist": "exists", "present": "exists", "defined": "exists",
    "notexist": "notExists", "absent": "notExists", "missing": "notExists",
    "regex": "matches", "match": "matches", "pattern": "matches",
    "oneof": "in", "len": "length", "size": "length", "typeof": "type", "istype": "type",
    "schema": "jsonSchema",
}  # fmt: skip
_ACTION_ALIASES = {
    "http": "httpRequest", "request": "httpRequest", "httprequests": "httpRequest",
    "db": "dbQuery", "sql": "dbQuery", "query": "dbQuery", "database": "dbQuery",
    "sleep": "wait", "delay": "wait", "pause": "wait",
    "latency": "latencyProbe", "load": "latencyProbe", "loadtest": "latencyProbe",
    "benchmark": "latencyProbe", "probe": "latencyProbe",
    "waitforcall": "waitForRequest", "awaitrequest": "waitForRequest",
    "expectrequest": "waitForRequest",
}  # fmt: skip

# ----------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SpecError:
    """One mistake in a suite, at the 1-based line and column of the key or value at fault."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SuiteInvalid(Exception):
    """A suite could not be read. ``errors`` holds every mistake found, sorted by position."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors: list[SpecError] = sorted(errors, key=lambda e: (e.file, e.line, e.column))
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


# ----------------------------------------------------------------------------- helpers (public)


def _scheme_of(url: str) -> str | None:
    """The scheme of an absolute URL (``ftp`` for ``ftp://x``), or None for a ``/path`` or
    ``endpoint/path`` whose query merely holds a URL (``/cb?to=https://x``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or any(char in scheme for char in "/?#"):
        return None
    return scheme.lower()


# A path may be read as a number or as text: ``number(response.headers.x-total-count)``.
PATH_CONVERSIONS = ("number", "string")
_CONVERSION_RE = re.compile(r"^\s*(number|string)\((.*)\)\s*$", re.S)


def path_conversion(path: str) -> tuple[str | None, str]:
    """``("number", "response.headers.x-total-count")`` for a converted path; ``(None, path)``
    otherwise."""
    match = _CONVERSION_RE.match(path) if isinstance(path, str) else None
    return (match.group(1), match.group(2).strip()) if match else (None, path)


def parse_path(path: str) -> list[str | int]:
    """Split an assertion/extract path into segments, checking its root.

    ``"response.body.items[0].sku"`` -> ``["response", "body", "items", 0, "sku"]``;
    ``'response.body["odd.key"]'`` -> ``["response", "body", "odd.key"]``. Raises ``ValueError``
    with a readable reason when the path is malformed or does not start with a known root. A
    conversion (``number(...)``, ``string(...)``) is read through: its path's segments.
    """
    _, path = path_conversion(path)
    if not isinstance(path, str) or not path.strip():
        raise ValueError("the path is empty")
    match = _IDENT_RE.match(path)
    if not match:
        raise ValueError(f"a path starts with one of {_either(PATH_ROOTS)}")
    segments: list[str | int] = [match.group()]
    i, n = match.end(), len(path)
    while i < n:
        char = path[i]
        if char == ".":
            match = _NAME_SEGMENT_RE.match(path, i + 1)
            if not match:
                raise ValueError(f"expected a name after '.' at character {i + 2}")
            segments.append(match.group())
            i = match.end()
        elif char == "[" and i + 1 < n and path[i + 1] in "\"'":
            quote, j, key = path[i + 1], i + 2, []
            while j < n and path[j] != quote:
                if path[j] == "\\" and j + 1 < n:
                    j += 1
                key.append(path[j])
                j += 1
            if j >= n:
                raise ValueError(f"the quoted key at character {i + 2} is not closed")
            if j + 1 >= n or path[j + 1] != "]":
                raise ValueError(f"expected ']' after the quoted key at character {j + 2}")
            segments.append("".join(key))
            i = j + 2
        elif char == "[":
            match = _INDEX_RE.match(path, i)
            if not match:
                raise ValueError(
                    f'expected an index such as [0] or a quoted key such as ["name"] '
                    f"at character {i + 1}"
                )
            segments.append(int(match.group(1)))
            i = match.end()
        else:
            raise ValueError(
                f"unexpected {char!r} at character {i + 1}; separate segments with '.' or [...]"
            )
    _check_path_root(segments)
    return segments


def _check_path_root(segments: list[str | int]) -> None:
    root, rest = segments[0], segments[1:]
    first = rest[0] if rest else None

    def need(fields: tuple[str, ...]) -> None:
        if first is None:
            raise ValueError(f"'{root}' needs a field: {_either(fields)}")
        if first not in fields:
            raise ValueError(
                f"unknown field '{root}.{first}'; {root} has {_either(fields)}"
                + _did_you_mean(first, fields)
            )

    if root == "response":
        need(_RESPONSE_FIELDS)
    elif root == "request":
        need(_REQUEST_FIELDS)
    elif root in ("failure", "signature"):
        need(_FAILURE_FIELDS if root == "failure" else _SIGNATURE_FIELDS)
        if len(rest) > 1:
            raise ValueError(f"'{root}.{first}' is a single value and has no fields")
        return
    elif root == "replayed":
        if rest:
            raise ValueError("'replayed' is a single value (true or false) and has no fields")
        return
    elif root == "latency":
        need(_LATENCY_FIELDS)
    elif root == "errors":
        need(_ERRORS_FIELDS)
    elif root == "status":
        if first is None or not (isinstance(first, str) and re.fullmatch(r"[1-5]\d\d", first)):
            raise ValueError("'status' needs an HTTP status code, e.g. status.200")
        if len(rest) > 1:
            raise ValueError("'status.<code>' is a count and has no fields")
        return
    elif root in ("attempts", "manifest", "files", "interchange", "mdn", "ack", "as2"):
        return  # lists and documents of their own shape (see docs/scenario-format.md)
    elif root == "count":
        if rest:
            raise ValueError("'count' is a single value and has no fields")
        return
    elif root == "file":
        need(_FILE_FIELDS)
        if first in ("name", "path", "size", "sha256", "text") and len(rest) > 1:
            raise ValueError(f"'file.{first}' is a single value and has no fields")
        return
    elif root != "data":
        raise ValueError(
            f"unknown root '{root}'; a path starts with {_either(PATH_ROOTS)}"
            + _did_you_mean(root, PATH_ROOTS)
        )
    if root in ("latency", "errors") or first in ("status", "timeMs", "method", "url"):
        if root != "data" and len(rest) > 1:
            raise ValueError(f"'{root}.{first}' is a single value and has no fields")
    elif root != "data" and first == "headers" and (len(rest) != 2 or not isinstance(rest[1], str)):
        raise ValueError(f"'{root}.headers' needs one header name, e.g. {root}.headers.etag")


def template_names(text: str) -> list[str]:
    """The names used as ``{{name}}`` in ``text`` (``"$uuid"`` for built-ins), in order.

    Raises ``ValueError`` on an unclosed ``{{``, an empty or malformed name, or an unknown
    ``$built-in``. Whitespace inside the braces is allowed (``{{ orderId }}``).
    """
    names: list[str] = []
    for i, _, inside in templating.scan(text):
        inner = inside.strip()
        if not inner:
            raise ValueError(f"empty '{{{{}}}}' at character {i + 1}")
        if _TEMPLATE_NAME_RE.fullmatch(inner):
            found = [inner]
        elif "(" in inner:
            found = templating.names_in(templating.parse(inner))  # a function call
        else:
            raise ValueError(
                f"'{{{{{inner}}}}}' is not a variable name (a letter or '_', then letters, "
                "digits and '_'; dotted like partner.id; or a built-in such as $uuid) nor a "
                "function call such as base64(secret.api.token)"
            )
        for name in found:
            if not _TEMPLATE_NAME_RE.fullmatch(name):
                raise ValueError(f"'{name}' in '{{{{{inner}}}}}' is not a variable name")
            if name.startswith("$") and name not in BUILTINS:
                hint = _did_you_mean(name, BUILTINS) or f"; the built-ins are {_either(BUILTINS)}"
                raise ValueError(f"unknown built-in '{{{{{name}}}}}'{hint}")
        names.extend(found)
    return names


def suite_fingerprint(text_by_file: dict[str, str]) -> str:
    """sha256 (hex) of a suite's files: independent of dict order, line endings and a BOM."""
    canonical = []
    for name in sorted(text_by_file):
        text = text_by_file[name]
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        canonical.append([name.replace("\\", "/"), text])
    payload = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- entry points


def parse_suite(
    text: str | bytes,
    *,
    filename: str,
    loader: Callable[[str], str | bytes] | None = None,
) -> Suite:
    """Parse and validate one suite. Raises ``SuiteInvalid`` with every error found.

    ``loader(path)`` returns the text of a ``$ref``'d file; ``path`` is the reference resolved
    against the including file's directory (posix-normalised). Without a loader, ``$ref`` is an
    error. ``OSError`` from the loader becomes an error at the ``$ref``.
    """
    parser = _Parser(loader)
    file = _normalise(filename)
    suite = parser.read_suite(text, file)
    if parser.errors or suite is None:
        raise SuiteInvalid(parser.final_errors())
    return suite


def check_suite_bytes(data: str | bytes, *, filename: str) -> str:
    """The text of one suite file, checked as every suite file is before parsing: at most
    ``MAX_SUITE_BYTES`` (counted in UTF-8) and valid UTF-8 (a byte-order mark is dropped).

    Files read from disk and uploaded bytes both pass through here. Raises ``SuiteInvalid``: a
    file that is too large at line 1, column 1; invalid UTF-8 at the line and column of the
    offending byte, naming the byte and its offset.
    """
    file = _normalise(filename)
    size = _size(data)
    if abs(size) > LIMITS.file_bytes:
        raise SuiteInvalid([SpecError(file, 1, 1, _too_large("the suite file", size))])
    text = _decode(data, file)
    if isinstance(text, SpecError):
        raise SuiteInvalid([text])
    return text


@dataclass(frozen=True)
class SuiteSources:
    """A suite read from files: ``sources`` maps each file's name to its text, ``entry`` names
    the suite's own file among them, ``suite`` is the parsed suite."""

    entry: str
    sources: dict[str, str]
    suite: Suite


def read_suite_sources(path: str | os.PathLike[str]) -> SuiteSources:
    """Read a suite file and every file it ``$ref``s, keyed by path relative to its folder (so
    the same files give the same sources wherever they are), and parse it.

    Every file is read as ``load_suite_file`` reads it: regular files only, at most
    ``MAX_SUITE_BYTES``, valid UTF-8. Raises ``SuiteInvalid`` with every error, files named
    relative to the suite's folder.
    """
    file = Path(path)
    return _read_files(file.parent.as_posix(), file.name)


def load_suite_file(path: str | os.PathLike[str]) -> Suite:
    """Read a suite from disk (as ``read_suite_sources`` does) and return it parsed.

    Errors name files as ``path`` was given (plus the resolved ``$ref`` paths). A top file that
    cannot be read is reported as a ``SuiteInvalid`` too, at line 1, column 1.
    """
    return _read_files("", Path(path).as_posix()).suite


def _read_files(folder: str, entry: str) -> SuiteSources:
    """Read and parse ``entry``, reading it and its ``$ref``s under ``folder`` ("" for none)."""
    entry = _normalise(entry)
    raw: dict[str, bytes] = {}

    def loader(name: str) -> bytes:
        data = _read_capped(posixpath.join(folder, name) if folder else name)
        raw[name] = data
        return data

    try:
        data = loader(entry)
    except OSError as exc:
        shown = entry if folder in ("", ".") else f"{folder}/{entry}"
        raise SuiteInvalid(
            [SpecError(entry, 1, 1, f"cannot read '{shown}': {_reason(exc)}")]
        ) from None
    suite = parse_suite(data, filename=entry, loader=loader)
    # The parse checked every file read: none is too large or not UTF-8.
    sources = {name: data.decode("utf-8-sig") for name, data in raw.items()}
    return SuiteSources(entry=entry, sources=sources, suite=suite)


def _read_capped(path: str) -> bytes:
    """Read a regular file, at most one byte past the cap (so the cap check can refuse it)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"'{path}' is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(LIMITS.file_bytes + 1)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- YAML reading

_TAG = "tag:yaml.org,2002:"
_NO_KEY = object()
_BAD_KEY = object()
_SCALARS = SafeConstructor()


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too deep")
        self.mark = mark


class _PyEvents(Reader, Scanner, Parser):
    """PyYAML's own scanner and parser (pure Python). Positions are in characters."""

    byte_offsets = False

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


if CParser is not None:

    class _CEvents(CParser):  # type: ignore[valid-type,misc]
        """libyaml's scanner and parser: the same events, about ten times faster."""

        byte_offsets = True  # a ReaderError's position is a byte offset in the UTF-8 text

    _Events: type = _CEvents
else:  # pragma: no cover - PyYAML built without libyaml
    _Events = _PyEvents

_RESOLVER = Resolver()  # implicit scalar types (int, float, bool, null...) as in safe_load


@dataclass(slots=True, eq=False)
class _Y:
    """A YAML value with its position: ``value`` is a scalar, ``dict[str, _Y]`` or ``list[_Y]``."""

    value: Any
    pos: Pos
    raw: str | None = None  # a scalar's source text
    tag: str | None = None  # a scalar's resolved YAML tag
    keys: dict[str, Pos] | None = None  # a mapping's key positions
    refused: bool = False  # an alias or a refused tag: already reported, validate no further

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)


def _plain(y: _Y) -> Any:
    if isinstance(y.value, dict):
        return {key: _plain(value) for key, value in y.value.items()}
    if isinstance(y.value, list):
        return [_plain(value) for value in y.value]
    return y.value


def _strings(y: _Y) -> Iterable[tuple[str, Pos]]:
    """Every string inside ``y`` with its position, mapping keys included (they are templated
    too)."""
    if isinstance(y.value, dict):
        assert y.keys is not None
        for key, value in y.value.items():
            yield key, y.keys[key]
            yield from _strings(value)
    elif isinstance(y.value, list):
        for value in y.value:
            yield from _strings(value)
    elif isinstance(y.value, str):
        yield y.value, y.pos


# ----------------------------------------------------------------------------- the parser


class _Parser:
    def __init__(self, loader: Callable[[str], str | bytes] | None) -> None:
        self.loader = loader
        self.errors: list[SpecError] = []
        self.warnings: list[str] = []
        self.mocks: list[Mock] = []
        self.cache: dict[str, tuple[_Y | None, tuple[str, Any] | None]] = {}
        self.expanded: dict[str, list[Mock]] = {}
        self.refs_followed = 0
        self.loaded_bytes = 0  # of the files read for this suite, the entry file included
        self.too_large_suite = False
        self.too_many_refs = False
        self.too_many_mocks = False

    # ------------------------------------------------------------------ reporting

    def err(self, pos: Pos, ctx: str, message: str) -> None:
        text = f"{ctx}: {message}" if ctx else message
        self.errors.append(SpecError(pos.file, pos.line, pos.column, text))

    def warn(self, pos: Pos, message: str) -> None:
        line = f"{pos}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    def final_errors(self) -> list[SpecError]:
        unique = list(dict.fromkeys(self.errors))
        unique.sort(key=lambda e: (e.file, e.line, e.column))
        if len(unique) > MAX_ERRORS:
            first_dropped = unique[MAX_ERRORS]
            unique = unique[:MAX_ERRORS] + [
                SpecError(
                    first_dropped.file,
                    first_dropped.line,
                    first_dropped.column,
                    f"too many errors ({len(unique)} in total); only the first {MAX_ERRORS} "
                    "are shown",
                )
            ]
        return unique

    # ------------------------------------------------------------------ text and YAML

    def compose(self, text: str, file: str) -> _Y | None:
        """YAML text -> positioned tree, or None (errors recorded).

        The tree is built straight from the parser's events: no PyYAML nodes or Python objects
        are constructed and no tag is acted on. Anchors are never registered, so an alias can
        never be resolved, let alone expanded: each anchor and alias is reported and an alias
        becomes a placeholder that later checks skip. The tree is a tree, as large as the text.
        """
        events_class = _Events
        try:
            events = events_class(text)
            try:
                root, refusals = self.build(events, file)
            finally:
                events.dispose()
        except _TooDeep as exc:
            self.err(
                _pos(file, exc.mark), "", f"nesting deeper than {MAX_DEPTH} levels is not allowed"
            )
            return None
        except yaml.reader.ReaderError as exc:
            offset = exc.position
            if events_class.byte_offsets:
                encoded = text.encode("utf-8", "surrogatepass")
                offset = len(encoded[:offset].decode("utf-8", "ignore"))
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            char = exc.character if isinstance(exc.character, str) else chr(exc.character)
            self.err(
                Pos(file, line, column),
                "",
                f"character U+{ord(char):04X} is not allowed in a YAML file",
            )
            return None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            pos = _pos(file, mark) if mark else Pos(file, 1, 1)
            self.err(pos, "", _yaml_message(exc, text))
            return None
        except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is marked
            self.err(Pos(file, 1, 1), "", f"invalid YAML: {exc}")
            return None
        for mark in refusals:
            self.err(_pos(file, mark), "", "YAML anchors and aliases are not allowed")
        if root is None:
            self.err(Pos(file, 1, 1), "", "the file is empty")
        return root

    def build(self, events: Any, file: str) -> tuple[_Y | None, list[yaml.Mark]]:
        """Fold parser events into a ``_Y`` tree (iteratively, with a depth limit)."""
        root: _Y | None = None
        refusals: list[yaml.Mark] = []
        # Open collections: [node, key] where key is _NO_KEY (a mapping waiting for a key),
        # _BAD_KEY (the value of a refused key, to drop), a key string, or None for a list.
        stack: list[list[Any]] = []
        documents = 0
        get_event = events.get_event
        while True:
            event = get_event()
            cls = type(event)
            if cls is ScalarEvent:
                if event.anchor is not None:
                    refusals.append(event.start_mark)
                node = self.scalar(event, _pos(file, event.start_mark))
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                node = stack.pop()[0]
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                if event.anchor is not None:
                    refusals.append(event.start_mark)
                if len(stack) >= MAX_DEPTH:
                    raise _TooDeep(event.start_mark)
                pos = _pos(file, event.start_mark)
                is_map = cls is MappingStartEvent
                node = _Y({}, pos, keys={}) if is_map else _Y([], pos)
                if event.tag not in (None, "!", _TAG + ("map" if is_map else "seq")):
                    self.err(pos, "", f"YAML tag '{event.tag}' is not allowed")
                    node.refused = True
                stack.append([node, _NO_KEY if is_map else None])
                continue
            elif cls is AliasEvent:
                refusals.append(event.start_mark)
                node = _Y(None, _pos(file, event.start_mark), refused=True)
            elif cls is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self.err(
                        _pos(file, event.start_mark),
                        "",
                        "a suite file holds a single YAML document (remove the second '---')",
                    )
                    break
                continue
            elif cls is StreamEndEvent:
                break
            else:  # StreamStartEvent, DocumentEndEvent
                continue
            if not stack:
                root = node
                continue
            frame = stack[-1]
            parent, key = frame
            if key is None:
                parent.value.append(node)
            elif key is _NO_KEY:
                frame[1] = self.key(node, parent)
            else:
                if key is not _BAD_KEY:
                    parent.value[key] = node
                frame[1] = _NO_KEY
        return root, refusals

    def key(self, node: _Y, mapping: _Y) -> Any:
        """Check a mapping key: the key string, or _BAD_KEY (reported) to drop its value."""
        assert mapping.keys is not None
        if node.refused and node.raw is None:
            return _BAD_KEY  # an alias: already reported
        if node.is_map or node.is_list:
            self.err(node.pos, "", "mapping keys must be strings, not a list or mapping")
            return _BAD_KEY
        if node.raw == "<<" and node.tag == _TAG + "merge":
            self.err(node.pos, "", "YAML merge keys ('<<') are not allowed")
            return _BAD_KEY
        if node.tag != _TAG + "str":
            if not node.refused:
                self.err(
                    node.pos, "", f"mapping keys must be strings; quote {node.raw!r} to use it"
                )
            return _BAD_KEY
        name = node.value
        if name in mapping.keys:
            first = mapping.keys[name]
            self.err(node.pos, "", f"duplicate key '{name}' (first at line {first.line})")
            return _BAD_KEY
        mapping.keys[name] = node.pos
        return name

    def scalar(self, event: ScalarEvent, pos: Pos) -> _Y:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(ScalarNode, event.value, event.implicit)
        raw = event.value
        try:
            if tag == _TAG + "str":
                value: Any = raw
            elif tag == _TAG + "null":
                value = None
            elif tag == _TAG + "bool":
                value = _SCALARS.construct_yaml_bool(ScalarNode(tag, raw))
            elif tag == _TAG + "int":
                value = _SCALARS.construct_yaml_int(ScalarNode(tag, raw))
            elif tag == _TAG + "float":
                value = _SCALARS.construct_yaml_float(ScalarNode(tag, raw))
            elif tag in (_TAG + "timestamp", _TAG + "value", _TAG + "merge"):
                value = raw  # dates stay text; '=' and '<<' are just strings as values
            else:
                self.err(pos, "", f"YAML tag '{tag}' is not allowed")
                return _Y(None, pos, raw=raw, tag=tag, refused=True)
        except ValueError:
            self.err(pos, "", f"the number {raw[:20]!r}... is too large")
            return _Y(None, pos, raw=raw, tag=tag, refused=True)
        return _Y(value, pos, raw=raw, tag=tag)

    # ------------------------------------------------------------------ type checks

    def mapping(self, y: _Y | None, ctx: str, what: str) -> dict[str, _Y] | None:
        if y is None or y.refused:
            return None
        if not y.is_map:
            self.err(y.pos, ctx, f"{what} must be a mapping, not {_show(y)}")
            return None
        return y.value

    def sequence(self, y: _Y | None, ctx: str, what: str) -> list[_Y] | None:
        if y is None or y.refused:
            return None
        if not y.is_list:
            self.err(y.pos, ctx, f"{what} must be a list, not {_show(y)}")
            return None
        return y.value

    def known_keys(
        self, y: _Y, allowed: Iterable[str], ctx: str, where: str, hint: str = ""
    ) -> None:
        allowed = tuple(allowed)
        assert y.keys is not None
        for key, pos in y.keys.items():
            if key not in allowed:
                suggestion = _did_you_mean(key, allowed)
                self.err(pos, ctx, f"unknown key '{key}' in {where}{hint or suggestion}")

    def require(self, m: dict[str, _Y], y: _Y, key: str, ctx: str) -> _Y | None:
        if key not in m:
            self.err(y.pos, ctx, f"missing '{key}'")
            return None
        return m[key]

    def string(
        self, y: _Y | None, ctx: str, key: str, *, empty: bool = False, templated: bool = True
    ) -> str | None:
        if y is None or y.refused:
            return None
        if not isinstance(y.value, str):
            self.err(y.pos, ctx, f"'{key}' must be a string, not {_show(y)}")
            return None
        if not empty and not y.value.strip():
            self.err(y.pos, ctx, f"'{key}' must not be empty")
            return None
        if templated:
            self.templates(y, ctx)
        return y.value

    def integer(
        self, y: _Y | None, ctx: str, key: str, low: int, high: int | None = None
    ) -> int | None:
        if y is None or y.refused:
            return None
        bounds = f" from {low} to {high}" if high is not None else f" of at least {low}"
        if isinstance(y.value, bool) or not isinstance(y.value, int):
            self.err(y.pos, ctx, f"'{key}' must be an integer{bounds}, not {_show(y)}")
            return None
        if y.value < low or (high is not None and y.value > high):
            self.err(y.pos, ctx, f"'{key}' must be an integer{bounds}, not {y.value}")
            return None
        return y.value

    def boolean(self, y: _Y | None, ctx: str, key: str) -> bool | None:
        if y is None or y.refused:
            return None
        if not isinstance(y.value, bool):
            self.err(y.pos, ctx, f"'{key}' must be true or false, not {_show(y)}")
            return None
        return y.value

    def templates(self, y: _Y, ctx: str) -> None:
        """Check the ``{{...}}`` syntax of every string inside ``y``."""
        for text, pos in _strings(y):
            if "{{" not in text:
                continue
            try:
                template_names(text)
            except ValueError as exc:
                self.err(pos, ctx, str(exc))

    # ------------------------------------------------------------------ suite

    def read_suite(self, data: str | bytes, file: str) -> Suite | None:
        try:
            text = check_suite_bytes(data, filename=file)
        except SuiteInvalid as exc:
            self.errors.extend(exc.errors)
            return None
        self.loaded_bytes += abs(_size(text))
        root = self.compose(text, file)
        if root is None or root.refused:
            return None
        if not root.is_map:
            self.err(
                root.pos,
                "",
                f"a suite must be a mapping with 'name' and 'tests', not {_show(root)}",
            )
            return None
        m: dict[str, _Y] = root.value
        self.known_keys(root, TOP_LEVEL_KEYS, "", "the suite")
        name = self.string(self.require(m, root, "name", ""), "", "name", templated=False)
        description = self.string(
            m.get("description"), "", "description", empty=True, templated=False
        )
        version = ""
        if "version" in m:
            vy = m["version"]
            if isinstance(vy.value, str | int | float) and not isinstance(vy.value, bool):
                version = vy.raw if vy.raw is not None else str(vy.value)
            elif not vy.refused:
                self.err(vy.pos, "", f"'version' must be a string or a number, not {_show(vy)}")
        variables = self.variables(m.get("variables"))
        items = self.sequence(m.get("items"), "", "'items'")
        for index, item in enumerate(items or (), start=1):
            self.item(item, file, [file], f"item {index}")
        scenarios: list[Scenario] = []
        tests_y = self.require(m, root, "tests", "")
        tests = self.sequence(tests_y, "", "'tests'")
        if tests is not None and not tests:
            self.err(tests_y.pos, "", "'tests' must list at least one scenario")
        seen_names: dict[str, Pos] = {}
        seen_codes: dict[str, Pos] = {}
        for index, test in enumerate(tests or (), start=1):
            scenario = self.scenario(test, index, seen_names, seen_codes)
            if scenario is not None:
                scenarios.append(scenario)
        if self.errors:
            return None
        return Suite(
            name=name or "",
            scenarios=scenarios,
            description=description or "",
            version=version,
            variables=variables,
            mocks=self.mocks,
            warnings=self.warnings,
        )

    def variables(self, y: _Y | None) -> dict[str, Any]:
        m = self.mapping(y, "", "'variables'")
        if m is None:
            return {}
        assert y is not None and y.keys is not None
        for key, pos in y.keys.items():
            self.variable_name(key, pos, "", "variable")
        self.templates(y, "")
        return _plain(y)

    def variable_name(self, name: str, pos: Pos, ctx: str, what: str) -> None:
        if not _VAR_RE.fullmatch(name):
            self.err(
                pos,
                ctx,
                f"{what} name '{name}' must be letters, digits and '_' (not first a digit)",
            )
        elif name in RESERVED_VARIABLES:
            self.err(pos, ctx, f"{what} name '{name}' is reserved ({{{{{name}.…}}}} is built in)")

    # ------------------------------------------------------------------ items and $ref

    def item(self, y: _Y, file: str, stack: list[str], ctx: str) -> None:
        m = self.mapping(y, ctx, "an item")
        if m is None:
            return
        if REF_KEY in m:
            assert y.keys is not None
            for key, pos in y.keys.items():
                if key != REF_KEY:
                    self.err(pos, ctx, f"a $ref item holds only '$ref', not '{key}'")
            self.follow(m[REF_KEY], file, stack, ctx)
            return
        type_y = m.get("type")
        kind = type_y.value if type_y is not None else None
        name = m["name"].value if "name" in m and isinstance(m["name"].value, str) else None
        label = f"item '{name}'" if name else "item"
        if kind == "MOCK":
            self.mock(y, m, f"mock '{name}'" if name else ctx)
            return
        if isinstance(kind, str) and kind.strip():
            if _did_you_mean(kind, ("MOCK",)):
                self.err(type_y.pos, ctx, f"unknown item type '{kind}'; did you mean 'MOCK'?")
                return
            self.warn(y.pos, f"{label} ({kind}) is not used by certification runs; ignored")
            return
        if type_y is None and _SERVICE_HINT_KEYS & set(m):
            self.warn(y.pos, f"{label} (no type) is not used by certification runs; ignored")
            return
        if type_y is None:
            self.err(
                y.pos, ctx, "an item needs 'type' (MOCK, or a Dokkimi SERVICE/DATABASE) or '$ref'"
            )
        elif not type_y.refused:
            self.err(type_y.pos, ctx, f"'type' must be a string, not {_show(type_y)}")

    def follow(self, ref_y: _Y, file: str, stack: list[str], ctx: str) -> None:
        ref = self.string(ref_y, ctx, REF_KEY, templated=False)
        if ref is None:
            return
        if ref.startswith("/") or "\\" in ref or _SCHEME_RE.match(ref) or "\0" in ref:
            self.err(
                ref_y.pos, ctx, f"$ref '{ref}' must be a relative path such as ../shared/x.yaml"
            )
            return
        if posixpath.splitext(ref)[1].lower() not in REF_EXTENSIONS:
            self.err(ref_y.pos, ctx, f"$ref '{ref}' must name a .yaml, .yml or .json file")
            return
        if self.loader is None:
            self.err(
                ref_y.pos,
                ctx,
                "$ref needs a file: suites uploaded as one document cannot include others",
            )
            return
        resolved = _normalise(posixpath.join(posixpath.dirname(file), ref))
        if resolved in stack:
            chain = [*stack[stack.index(resolved) :], resolved]
            self.err(ref_y.pos, ctx, "$ref cycle: " + " -> ".join(chain))
            return
        self.refs_followed += 1
        if self.refs_followed > MAX_REFS:
            if not self.too_many_refs:
                self.too_many_refs = True
                self.err(ref_y.pos, ctx, f"too many $ref includes (the limit is {MAX_REFS})")
            return
        if resolved in self.expanded:  # already read and checked: same mocks again
            self.add_mocks(replace(mock) for mock in self.expanded[resolved])
            return
        if resolved not in self.cache:
            self.cache[resolved] = self.load(resolved)
        root, problem = self.cache[resolved]
        if problem is not None:
            what, detail = problem
            if what == "large":
                self.err(ref_y.pos, ctx, _too_large(f"'{ref}'", int(detail)))
            elif what == "suite":
                if not self.too_large_suite:  # once: every later file is over it too
                    self.too_large_suite = True
                    self.err(
                        ref_y.pos,
                        ctx,
                        f"with '{ref}' the suite's files come to {int(detail):,} bytes, over "
                        f"the limit of {LIMITS.suite_bytes:,} bytes for a whole suite",
                    )
            else:
                shown = f"'{ref}'" if ref == resolved else f"'{ref}' (resolved to '{resolved}')"
                self.err(ref_y.pos, ctx, f"cannot read {shown}: {detail}")
            return
        if root is None or root.refused:
            return
        inner = [*stack, resolved]
        first_mock = len(self.mocks)
        if root.is_list:
            for index, item in enumerate(root.value, start=1):
                self.item(item, resolved, inner, f"item {index}")
        elif root.is_map:
            self.item(root, resolved, inner, "")
        else:
            self.err(
                root.pos,
                "",
                f"an included file holds one item or a list of items, not {_show(root)}",
            )
        # A file's items do not depend on who includes it (a cycle through it was just found
        # if there is one), so the next $ref to it reuses them instead of checking it again.
        self.expanded[resolved] = self.mocks[first_mock:]

    def add_mocks(self, mocks: Iterable[Mock]) -> None:
        for mock in mocks:
            if len(self.mocks) >= MAX_MOCKS:
                if not self.too_many_mocks:
                    self.too_many_mocks = True
                    assert mock.pos is not None
                    self.err(mock.pos, "", f"too many mocks (the limit is {MAX_MOCKS})")
                return
            self.mocks.append(mock)

    def load(self, resolved: str) -> tuple[_Y | None, tuple[str, Any] | None]:
        """Read and compose a $ref'd file (once per suite).

        Returns the tree and, when the file could not be used, a problem reported at every $ref
        naming it: ("read", reason) or ("large", size). Errors inside the file are reported
        once, at their own position.
        """
        assert self.loader is not None
        try:
            data = self.loader(resolved)
        except OSError as exc:
            return None, ("read", _reason(exc))
        size = _size(data)
        if abs(size) > LIMITS.file_bytes:
            return None, ("large", size)
        self.loaded_bytes += abs(size)
        if self.loaded_bytes > LIMITS.suite_bytes:
            return None, ("suite", self.loaded_bytes)
        text = _decode(data, resolved)
        if isinstance(text, SpecError):
            self.errors.append(text)
            return None, None
        return self.compose(text, resolved), None

    def mock(self, y: _Y, m: dict[str, _Y], ctx: str) -> None:
        self.known_keys(y, MOCK_KEYS, ctx, "a MOCK item")
        name = self.string(self.require(m, y, "name", ctx), ctx, "name", templated=False)
        target = self.string(
            self.require(m, y, "mockTarget", ctx), ctx, "mockTarget", templated=False
        )
        path = self.string(self.require(m, y, "mockPath", ctx), ctx, "mockPath", templated=False)
        status = 200
        if "mockResponseStatus" in m:
            status = self.integer(m["mockResponseStatus"], ctx, "mockResponseStatus", 100, 599)
        headers: dict[str, str] = {}
        headers_m = self.mapping(m.get("mockResponseHeaders"), ctx, "'mockResponseHeaders'")
        for header, value_y in (headers_m or {}).items():
            key_pos = _kpos(m["mockResponseHeaders"], header)
            if not _HEADER_NAME_RE.fullmatch(header):
                self.err(key_pos, ctx, f"'{header}' is not a valid header name")
            value = value_y.value
            if isinstance(value, bool) or value is None or isinstance(value, dict | list):
                if not value_y.refused:
                    self.err(
                        value_y.pos,
                        ctx,
                        f"header '{header}' must be a string, not {_show(value_y)}",
                    )
                continue
            headers[header] = value if isinstance(value, str) else str(value_y.raw)
        body = _plain(m["mockResponseBody"]) if "mockResponseBody" in m else MISSING
        delay = 0
        if "mockDelayMs" in m:
            delay = self.integer(m["mockDelayMs"], ctx, "mockDelayMs", 0, MAX_MS)
        contains = matches = None
        if "mockRequestBodyContains" in m:
            contains = self.string(
                m["mockRequestBodyContains"], ctx, "mockRequestBodyContains", templated=False
            )
        if "mockRequestBodyMatches" in m:
            matches = self.regex(m["mockRequestBodyMatches"], ctx, "mockRequestBodyMatches")
        if "mockRequestBodyContains" in m and "mockRequestBodyMatches" in m:
            self.err(
                _kpos(y, "mockRequestBodyMatches"),
                ctx,
                "use either 'mockRequestBodyContains' or 'mockRequestBodyMatches', not both",
            )
        if None in (name, target, path, status, delay):
            return
        self.add_mocks(
            [
                Mock(
                    name=name,
                    target=target,
                    path=path,
                    status=status,
                    headers=headers,
                    body=body,
                    delay_ms=delay,
                    body_contains=contains,
                    body_matches=matches,
                    pos=y.pos,
                )
            ]
        )

    def regex(self, y: _Y | None, ctx: str, key: str) -> str | None:
        pattern = self.string(y, ctx, key, empty=True, templated=False)
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as exc:
            assert y is not None
            self.err(y.pos, ctx, f"'{key}' is not a valid regular expression: {exc}")
            return None
        return pattern

    # ------------------------------------------------------------------ scenarios and steps

    def scenario(
        self, y: _Y, index: int, names: dict[str, Pos], codes: dict[str, Pos]
    ) -> Scenario | None:
        m = self.mapping(y, f"scenario {index}", "a scenario")
        if m is None:
            return None
        name_y = m.get("name")
        ctx = (
            f"scenario '{name_y.value}'"
            if name_y is not None and isinstance(name_y.value, str) and name_y.value.strip()
            else f"scenario {index}"
        )
        self.known_keys(y, SCENARIO_KEYS, ctx, "a scenario")
        name = self.string(self.require(m, y, "name", ctx), ctx, "name", templated=False)
        if name is not None:
            if name in names:
                self.err(
                    name_y.pos, ctx, f"duplicate scenario name (first at line {names[name].line})"
                )
            names.setdefault(name, name_y.pos)
        code = ""
        if "code" in m:
            code_y = m["code"]
            code = self.string(code_y, ctx, "code", templated=False) or ""
            if code and not _CODE_RE.fullmatch(code):
                self.err(
                    code_y.pos,
                    ctx,
                    f"'code' must look like B-002 (1-4 capitals, '-', 1-4 digits), not '{code}'",
                )
            elif code in codes:
                self.err(
                    code_y.pos,
                    ctx,
                    f"duplicate scenario code '{code}' (first at line {codes[code].line})",
                )
            elif code:
                codes[code] = code_y.pos
        kind = "main"
        if "kind" in m:
            kind_y = m["kind"]
            kind = self.string(kind_y, ctx, "kind", templated=False) or "main"
            if kind not in SCENARIO_KINDS:
                self.err(
                    kind_y.pos,
                    ctx,
                    f"unknown kind '{kind}'; use {_either(SCENARIO_KINDS)}"
                    + _did_you_mean(kind, SCENARIO_KINDS),
                )
        self.string(m.get("description"), ctx, "description", empty=True, templated=False)
        steps_y = self.require(m, y, "steps", ctx)
        steps_list = self.sequence(steps_y, ctx, "'steps'")
        if steps_list is not None and not steps_list:
            self.err(steps_y.pos, ctx, "'steps' must list at least one step")
        steps = [
            step
            for number, step_y in enumerate(steps_list or (), start=1)
            if (step := self.step(step_y, f"{ctx} step {number}")) is not None
        ]
        if name is None:
            return None
        return Scenario(name=name, steps=steps, code=code, kind=kind, pos=y.pos)

    def step(self, y: _Y, ctx: str) -> Step | None:
        m = self.mapping(y, ctx, "a step")
        if m is None:
            return None
        self.known_keys(y, STEP_KEYS, ctx, "a step")
        name = self.string(m.get("name"), ctx, "name", empty=True, templated=False) or ""
        action_y = self.require(m, y, "action", ctx)
        action, kind = self.action(action_y, ctx) if action_y is not None else (None, None)
        roots = ROOTS_BY_ACTION.get(kind) if kind else None
        groups: list[AssertionGroup] = []
        if "assertions" in m:
            for number, group_y in enumerate(
                self.sequence(m["assertions"], ctx, "'assertions'") or (), start=1
            ):
                group = self.group(group_y, ctx, number, roots)
                if group is not None:
                    groups.append(group)
            if kind == "wait" and any(g.match is None for g in groups):
                self.err(
                    _kpos(y, "assertions"),
                    ctx,
                    "a wait step has nothing to assert (it may check captured traffic with "
                    "'match')",
                )
        extract: dict[str, str] = {}
        if "extract" in m:
            if kind == "wait":
                self.err(_kpos(y, "extract"), ctx, "a wait step has nothing to extract")
            extract_y = m["extract"]
            for var, path_y in (self.mapping(extract_y, ctx, "'extract'") or {}).items():
                self.variable_name(var, _kpos(extract_y, var), ctx, "extracted variable")
                path = self.path(path_y, ctx, roots)
                if path is not None:
                    extract[var] = path
        until = None
        if "until" in m:
            if kind not in ("httpRequest", None):
                self.err(
                    _kpos(y, "until"),
                    ctx,
                    f"'until' repeats an httpRequest action, not a {kind} action",
                )
            until = self.until(m["until"], ctx, roots)
        self.failure_paths(y, m, groups, extract, until, ctx)
        settle = None
        if "settleMs" in m:
            settle = self.integer(m["settleMs"], ctx, "settleMs", 0, MAX_SETTLE_MS)
            if settle is not None and not any(g.match is not None for g in groups):
                self.err(
                    _kpos(y, "settleMs"),
                    ctx,
                    "'settleMs' is how long a step waits for captured traffic; it needs an "
                    "assertion group with 'match'",
                )
        follow = False
        if "continueOnFailure" in m:
            follow = bool(self.boolean(m["continueOnFailure"], ctx, "continueOnFailure"))
        if action is None:
            return None
        return Step(
            action=action,
            name=name,
            groups=groups,
            extract=extract,
            until=until,
            continue_on_failure=follow,
            settle_ms=settle,
            pos=y.pos,
        )

    def failure_paths(
        self,
        y: _Y,
        m: dict[str, _Y],
        groups: list[AssertionGroup],
        extract: dict[str, str],
        until: Until | None,
        ctx: str,
    ) -> None:
        """``failure.*`` is the result of a step that asserts on it, and only of such a step:
        extracting it alone would take any failure as success, and ``until`` repeats a request
        until it answers."""
        asserted = any(
            _is_failure_path(a.path) for g in groups if g.match is None for a in g.assertions
        )
        if until is not None and (asserted or _is_failure_path(until.path)):
            self.err(
                _kpos(y, "until"),
                ctx,
                "'until' repeats a request until it answers; a step that expects its request to "
                "fail (a path under 'failure') cannot poll",
            )
        if not asserted:
            for var, path in extract.items():
                if _is_failure_path(path):
                    self.err(
                        _kpos(m["extract"], var),
                        ctx,
                        f"extract {var}: '{path}' is only there when the step asserts on "
                        "failure.kind or failure.message (say which failure is expected)",
                    )

    # ------------------------------------------------------------------ actions

    def action(self, y: _Y, ctx: str) -> tuple[Any, str | None]:
        m = self.mapping(y, ctx, "'action'")
        if m is None:
            return None, None
        type_y = self.require(m, y, "type", ctx)
        kind = self.string(type_y, ctx, "type", templated=False)
        if kind is None:
            return None, None
        if kind not in ACTION_TYPES:
            self.err(
                type_y.pos,
                ctx,
                f"unknown action type '{kind}'"
                + (
                    _did_you_mean(kind, ACTION_TYPES, _ACTION_ALIASES)
                    or f"; use {_either(ACTION_TYPES)}"
                ),
            )
            return None, None
        self.known_keys(y, ACTION_KEYS[kind], ctx, f"a {kind} action")
        if kind == "httpRequest":
            request = self.request(y, m, ctx)
            if "followRedirects" in m and request is not None:
                follow = self.boolean(m["followRedirects"], ctx, "followRedirects")
                request.follow_redirects = True if follow is None else follow
            elif "followRedirects" in m:
                self.boolean(m["followRedirects"], ctx, "followRedirects")
            if "auth" in m:
                auth = self.string(m["auth"], ctx, "auth", templated=False)
                if auth is not None and auth not in AUTH_CHOICES:
                    self.err(
                        m["auth"].pos,
                        ctx,
                        f"'auth' must be 'none' (send without the endpoint's credentials) or "
                        f"'endpoint' (the default), not {auth!r}",
                    )
                elif request is not None:
                    request.use_auth = auth != "none"
            return request, kind
        if kind == "dbQuery":
            database = self.string(
                self.require(m, y, "database", ctx), ctx, "database", templated=False
            )
            query = self.string(self.require(m, y, "query", ctx), ctx, "query")
            params: list[Any] = []
            if "params" in m:
                params_y = m["params"]
                for param in self.sequence(params_y, ctx, "'params'") or ():
                    if param.is_map or param.is_list:
                        self.err(
                            param.pos,
                            ctx,
                            f"a query parameter must be a scalar, not {_show(param)}",
                        )
                self.templates(params_y, ctx)
                params = _plain(params_y) if params_y.is_list else []
            if database is None or query is None:
                return None, kind
            return DbQuery(database=database, query=query, params=params), kind
        if kind == "wait":
            ms = self.integer(self.require(m, y, "ms", ctx), ctx, "ms", 0, MAX_MS)
            return (Wait(ms=ms) if ms is not None else None), kind
        if kind == "waitForRequest":
            match_y = self.require(m, y, "match", ctx)
            match = self.match(match_y, ctx) if match_y is not None else None
            timeout, interval = 30_000, 250
            if "timeoutMs" in m:
                timeout = self.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
            if "intervalMs" in m:
                interval = self.integer(m["intervalMs"], ctx, "intervalMs", 10, MAX_MS)
            if match is None or timeout is None or interval is None:
                return None, kind
            return WaitForRequest(match=match, timeout_ms=timeout, interval_ms=interval), kind
        if kind == "webhook":
            return self.webhook(y, m, ctx), kind
        if kind in ("sftpUpload", "waitForFile", "sftpList"):
            return self.file_action(kind, y, m, ctx), kind
        if kind in ("x12Send", "x12Receive"):
            from certification.engine.spec_edi import x12_action

            return x12_action(self, kind, y, m, ctx), kind
        return self.probe(y, m, ctx), kind

    def file_action(
        self, kind: str, y: _Y, m: dict[str, _Y], ctx: str
    ) -> SftpUpload | WaitForFile | SftpList | None:
        endpoint = self.string(
            self.require(m, y, "endpoint", ctx), ctx, "endpoint", templated=False
        )
        folder: str | None = "outbox" if kind == "waitForFile" else "inbox"
        if "dir" in m:
            folder = self.string(m["dir"], ctx, "dir", templated=False)
            if folder is not None and (
                folder.startswith("/") or ".." in folder.split("/") or not folder.strip()
            ):
                self.err(
                    m["dir"].pos,
                    ctx,
                    "'dir' is inbox, outbox, archive, error or a path relative to the "
                    "endpoint's root (no leading '/', no '..')",
                )
                folder = None
        if kind == "sftpList":
            pattern = self.string(m["pattern"], ctx, "pattern") if "pattern" in m else "*"
            if endpoint is None or folder is None or pattern is None:
                return None
            return SftpList(endpoint=endpoint, directory=folder, pattern=pattern)
        if kind == "waitForFile":
            pattern = self.string(self.require(m, y, "pattern", ctx), ctx, "pattern")
            timeout, interval = 60_000, 500
            if "timeoutMs" in m:
                timeout = self.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
            if "intervalMs" in m:
                interval = self.integer(m["intervalMs"], ctx, "intervalMs", 10, MAX_MS)
            if endpoint is None or folder is None or pattern is None:
                return None
            if timeout is None or interval is None:
                return None
            return WaitForFile(
                endpoint=endpoint,
                pattern=pattern,
                directory=folder,
                timeout_ms=timeout,
                interval_ms=interval,
            )
        name: str | None = ""
        naming = self.file_naming(y, m, ctx)
        if "name" in m:
            name = self.string(m["name"], ctx, "name")
            if name is not None and ("/" in name or name.startswith(".")):
                self.err(
                    m["name"].pos,
                    ctx,
                    "'name' is a file name, without '/' and not starting with '.' (a poller "
                    "takes those for uploads in progress)",
                )
                name = None
        elif naming is not None and naming["flow"] is None:
            self.err(
                y.pos,
                ctx,
                "an sftpUpload needs 'name', or 'flow' to name the file "
                "<prefix>_<flow>_<YYYYMMDDThhmmssZ>_<sequence>.<ext>",
            )
            name = None
        content: Any = MISSING
        csv_spec = None
        if ("content" in m) == ("csv" in m):
            self.err(y.pos, ctx, "an sftpUpload needs exactly one of 'content' or 'csv'")
        elif "content" in m:
            content = self.string(m["content"], ctx, "content", empty=True)
        else:
            csv_spec = self.csv_spec(m["csv"], ctx)
        sidecar: bool | str = False
        if "sha256" in m:
            value = m["sha256"].value
            if isinstance(value, str):
                if not re.fullmatch(r"[0-9a-f]{64}", value):
                    self.err(
                        m["sha256"].pos,
                        ctx,
                        "'sha256' is true, false, or the 64 lower-case hex digits to write",
                    )
                sidecar = value
            else:
                sidecar = bool(self.boolean(m["sha256"], ctx, "sha256"))
        rename = True
        if "rename" in m:
            rename = bool(self.boolean(m["rename"], ctx, "rename"))
        encrypt: bool | None = None
        if "pgp" in m:
            encrypt = bool(self.boolean(m["pgp"], ctx, "pgp"))
        manifest: bool | dict[str, Any] = False
        if "manifest" in m:
            manifest_y = m["manifest"]
            if manifest_y.is_map:
                self.templates(manifest_y, ctx)
                manifest = _plain(manifest_y)
            else:
                manifest = bool(self.boolean(manifest_y, ctx, "manifest"))
            if manifest is not False and "csv" not in m:
                self.err(
                    _kpos(y, "manifest"),
                    ctx,
                    "'manifest' holds the control totals of a 'csv' upload",
                )
        if endpoint is None or folder is None or name is None or content is None:
            return None
        if ("csv" in m and csv_spec is None) or naming is None:
            return None
        return SftpUpload(
            **naming,
            endpoint=endpoint,
            name=name,
            directory=folder,
            content=content,
            csv=csv_spec,
            sha256=sidecar,
            manifest=manifest,
            rename=rename,
            pgp=encrypt,
        )

    def file_naming(self, y: _Y, m: dict[str, _Y], ctx: str) -> dict[str, Any] | None:
        """An sftpUpload's ``flow``, ``prefix``, ``ext``, ``sequence`` and ``repeat``: the
        generated name's parts (None when one is wrong, the error reported)."""
        out: dict[str, Any] = {"flow": None, "prefix": None, "ext": None, "sequence": None,
                               "repeat": False}  # fmt: skip
        ok = True
        words = {"flow": r"[a-z0-9]{1,40}", "prefix": r"[a-z0-9]{1,40}",
                 "ext": r"[A-Za-z0-9.]{1,20}"}  # fmt: skip
        for key, pattern in words.items():
            if key not in m:
                continue
            value = self.string(m[key], ctx, key, templated=False)
            if value is not None and not re.fullmatch(pattern, value):
                what = (
                    "lower-case letters and digits (at most 40)"
                    if key != "ext"
                    else "letters, digits and '.' (at most 20)"
                )
                self.err(m[key].pos, ctx, f"'{key}' is {what}, not '{value}'")
                value = None
            ok = ok and value is not None
            out[key] = value
        if "sequence" in m:
            out["sequence"] = self.integer(m["sequence"], ctx, "sequence", 0, 999_999_999)
            ok = ok and out["sequence"] is not None
        if "repeat" in m:
            out["repeat"] = bool(self.boolean(m["repeat"], ctx, "repeat"))
        given = [k for k in ("prefix", "ext", "sequence", "repeat") if k in m]
        if "name" in m and ("flow" in m or given):
            self.err(
                _kpos(y, "name"),
                ctx,
                "give 'name', or 'flow' (with 'prefix', 'ext', 'sequence', 'repeat') to make "
                "one, not both",
            )
            return None
        if given and "flow" not in m:
            self.err(_kpos(y, given[0]), ctx, f"'{given[0]}' goes with 'flow'")
            return None
        if "sequence" in m and out["repeat"]:
            self.err(_kpos(y, "repeat"), ctx, "give 'sequence' or 'repeat', not both")
            return None
        return out if ok else None

    def csv_spec(self, y: _Y, ctx: str) -> dict[str, Any] | None:
        m = self.mapping(y, ctx, "'csv'")
        if m is None:
            return None
        self.known_keys(y, ("header", "rows"), ctx, "'csv'")
        header_y = self.require(m, y, "header", ctx)
        rows_y = self.require(m, y, "rows", ctx)
        header = [
            self.string(item, ctx, "header", templated=False)
            for item in (self.sequence(header_y, ctx, "'header'") or [])
        ]
        if header_y is not None and not header:
            self.err(header_y.pos, ctx, "'header' must list at least one column")
        rows: list[list[Any]] = []
        for number, row_y in enumerate(self.sequence(rows_y, ctx, "'rows'") or [], start=1):
            cells = self.sequence(row_y, ctx, f"row {number}")
            if cells is None:
                continue
            if header and len(cells) != len(header):
                self.err(
                    row_y.pos,
                    ctx,
                    f"row {number} has {len(cells)} values, the header {len(header)} columns",
                )
                continue
            if any(cell.is_map or cell.is_list for cell in cells):
                self.err(row_y.pos, ctx, f"row {number}: a CSV value must be a scalar")
                continue
            self.templates(row_y, ctx)
            rows.append(_plain(row_y))
        if header_y is None or rows_y is None or None in header:
            return None
        return {"header": header, "rows": rows}

    def webhook(self, y: _Y, m: dict[str, _Y], ctx: str) -> WebhookSend | None:
        url_y = self.require(m, y, "url", ctx)
        url = self.string(url_y, ctx, "url") if url_y is not None else None
        flags = {}
        for key in ("replay", "tamper", "stale"):
            if key in m:
                flags[key] = bool(self.boolean(m[key], ctx, key))
        if flags.get("replay"):
            for key in ("body", "eventId"):
                if key in m:
                    self.err(
                        _kpos(y, key),
                        ctx,
                        f"'replay' sends the previous webhook event again; it takes no '{key}'",
                    )
        elif "body" not in m:
            self.err(y.pos, ctx, "a webhook action needs 'body' (the event), or 'replay: true'")
        if "body" in m:
            self.templates(m["body"], ctx)
        body = _plain(m["body"]) if "body" in m else MISSING
        event_id = self.string(m["eventId"], ctx, "eventId") if "eventId" in m else None
        secret = self.string(m["secret"], ctx, "secret", templated=False) if "secret" in m else None
        headers = self.headers(m.get("headers"), ctx) if "headers" in m else {}
        attempts = timeout = None
        if "maxAttempts" in m:
            attempts = self.integer(m["maxAttempts"], ctx, "maxAttempts", 1, 20)
        if "timeoutMs" in m:
            timeout = self.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
        if url is None:
            return None
        return WebhookSend(
            url=url,
            body=body,
            event_id=event_id,
            secret=secret,
            headers=headers,
            replay=flags.get("replay", False),
            tamper=flags.get("tamper", False),
            stale=flags.get("stale", False),
            max_attempts=attempts,
            timeout_ms=timeout,
        )

    def request(self, y: _Y, m: dict[str, _Y], ctx: str) -> HttpRequest | None:
        method = "GET"
        ok = True
        if "method" in m:
            method_y = m["method"]
            raw = self.string(method_y, ctx, "method", templated=False)
            if raw is None:
                ok = False
            elif raw.upper() not in HTTP_METHODS:
                self.err(
                    method_y.pos,
                    ctx,
                    f"unknown method '{raw}'; use {_either(HTTP_METHODS)}"
                    + _did_you_mean(raw, HTTP_METHODS),
                )
                ok = False
            else:
                method = raw.upper()
        url_y = self.require(m, y, "url", ctx)
        url = self.string(url_y, ctx, "url")
        if url is not None:
            head = url.split("{{", 1)[0]
            if any(char.isspace() for char in url):
                self.err(
                    url_y.pos, ctx, "'url' must not contain spaces (percent-encode them as %20)"
                )
                url = None
            elif _scheme_of(head) not in (None, "http", "https"):
                self.err(
                    url_y.pos,
                    ctx,
                    "'url' must be http:// or https://, a /path, or endpoint-name/path",
                )
                url = None
        headers = self.headers(m.get("headers"), ctx)
        query: dict[str, Any] = {}
        if "query" in m:
            query_y = m["query"]
            for key, value_y in (self.mapping(query_y, ctx, "'query'") or {}).items():
                values = value_y.value if value_y.is_list else [value_y]
                for value in values:
                    if value.is_map or value.is_list or (value.value is None and not value.refused):
                        self.err(
                            value.pos,
                            ctx,
                            f"query parameter '{key}' must be a scalar or a list of "
                            f"scalars, not {_show(value)}",
                        )
            self.templates(query_y, ctx)
            query = _plain(query_y) if query_y.is_map else {}
        body: Any = MISSING
        if "body" in m:
            self.templates(m["body"], ctx)
            body = _plain(m["body"])
        body_kind = "json"
        if "bodyType" in m:
            bt_y = m["bodyType"]
            raw_kind = self.string(bt_y, ctx, "bodyType", templated=False)
            if raw_kind is not None and raw_kind not in BODY_TYPES:
                self.err(
                    bt_y.pos,
                    ctx,
                    f"unknown bodyType '{raw_kind}'; use {_either(BODY_TYPES)}"
                    + _did_you_mean(raw_kind, BODY_TYPES),
                )
            elif raw_kind is not None:
                body_kind = raw_kind
                body_y = m.get("body")
                if body_y is None:
                    self.err(bt_y.pos, ctx, "'bodyType' is given but there is no 'body'")
                elif body_kind == "raw" and not isinstance(body_y.value, str):
                    self.err(body_y.pos, ctx, f"a raw body must be a string, not {_show(body_y)}")
                elif body_kind == "form" and not (
                    body_y.is_map
                    and all(
                        isinstance(v.value, str | int | float) and not isinstance(v.value, bool)
                        for v in body_y.value.values()
                    )
                ):
                    self.err(
                        body_y.pos,
                        ctx,
                        "a form body must be a flat mapping of names to strings or numbers",
                    )
        timeout = None
        if "timeoutMs" in m:
            timeout = self.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
        if not ok or url is None:
            return None
        return HttpRequest(
            method=method,
            url=url,
            headers=headers,
            query=query,
            body=body,
            body_kind=body_kind,
            timeout_ms=timeout,
        )

    def headers(self, y: _Y | None, ctx: str) -> dict[str, Any]:
        m = self.mapping(y, ctx, "'headers'")
        if m is None:
            return {}
        assert y is not None and y.keys is not None
        seen: dict[str, str] = {}
        for header, value_y in m.items():
            key_pos = y.keys[header]
            if not _HEADER_NAME_RE.fullmatch(header):
                self.err(key_pos, ctx, f"'{header}' is not a valid header name")
            elif header.lower() in seen:
                self.err(
                    key_pos, ctx, f"header '{header}' is given twice (as '{seen[header.lower()]}')"
                )
            seen.setdefault(header.lower(), header)
            if (
                value_y.is_map
                or value_y.is_list
                or isinstance(value_y.value, bool)
                or (value_y.value is None and not value_y.refused)
            ):
                self.err(
                    value_y.pos,
                    ctx,
                    f"header '{header}' must be a string or number, not {_show(value_y)}"
                    + (" (quote it)" if isinstance(value_y.value, bool) else ""),
                )
        self.templates(y, ctx)
        return _plain(y)

    def probe(self, y: _Y, m: dict[str, _Y], ctx: str) -> LatencyProbe | None:
        request = self.request(y, m, ctx)
        requests = self.integer(
            self.require(m, y, "requests", ctx), ctx, "requests", 1, LIMITS.probe_requests
        )
        concurrency = rate = None
        if "concurrency" in m and "rate" in m:
            self.err(
                _kpos(y, "rate"),
                ctx,
                "give either 'concurrency' (workers back to back) or 'rate' (requests per "
                "second), not both",
            )
        elif "concurrency" in m:
            concurrency = self.integer(m["concurrency"], ctx, "concurrency", 1, 1000)
        elif "rate" in m:
            rate_y = m["rate"]
            value = rate_y.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                if not rate_y.refused:
                    self.err(
                        rate_y.pos,
                        ctx,
                        f"'rate' must be a number of requests per second, not {_show(rate_y)}",
                    )
            elif not 0 < value <= 10_000:
                self.err(
                    rate_y.pos, ctx, f"'rate' must be more than 0 and at most 10000, not {value}"
                )
            else:
                rate = float(value)
        else:
            self.err(y.pos, ctx, "a latencyProbe needs 'concurrency' or 'rate'")
        expect = [200]
        if "expectStatus" in m:
            expect_y = m["expectStatus"]
            items = expect_y.value if expect_y.is_list else [expect_y]
            if expect_y.is_list and not items:
                self.err(expect_y.pos, ctx, "'expectStatus' must list at least one status")
            codes = [self.integer(item, ctx, "expectStatus", 100, 599) for item in items]
            expect = [code for code in codes if code is not None]
        flow = ""
        if "flow" in m:
            flow = self.string(m["flow"], ctx, "flow", templated=False) or ""
            if flow and not FLOW_NAME_RE.fullmatch(flow):
                self.err(
                    m["flow"].pos,
                    ctx,
                    f"'flow' must be lower-case letters, digits, '_' and '-' (e.g. checkout), "
                    f"at most 40 characters, not {flow!r}",
                )
                flow = ""
        processes = 1
        if "processes" in m:
            processes = self.integer(m["processes"], ctx, "processes", 1, MAX_PROBE_PROCESSES) or 1
            most = min(x for x in (requests, concurrency) if x is not None) if requests else 0
            if most and processes > most:
                what = "requests" if requests == most else "concurrency"
                self.err(
                    m["processes"].pos,
                    ctx,
                    f"'processes' ({processes}) must be at most the probe's '{what}' "
                    f"({most}): each process sends at least one request"
                    + (" with at least one worker" if what == "concurrency" else ""),
                )
        if request is None or requests is None or (concurrency is None and rate is None):
            return None
        return LatencyProbe(
            request=request,
            requests=requests,
            concurrency=concurrency,
            rate=rate,
            expect_status=expect,
            flow=flow,
            processes=processes,
        )

    # ------------------------------------------------------------------ assertions

    def group(
        self, y: _Y, ctx: str, number: int, roots: tuple[str, ...] | None
    ) -> AssertionGroup | None:
        m = self.mapping(y, ctx, "an assertion group")
        if m is None:
            return None
        hint = ""
        if {"path", "operator", "value"} & set(m):
            hint = "; a group holds 'assertions: [...]' (put path/operator/value inside it)"
        self.known_keys(y, GROUP_KEYS, ctx, "an assertion group", hint)
        match = None
        if "match" in m:
            match = self.match(m["match"], ctx)
            roots = MATCH_ROOTS
        count = None
        if "count" in m:
            if "match" not in m:
                self.err(
                    y.keys["count"], ctx, "'count' needs 'match' (it counts captured requests)"
                )
            count = self.count(m["count"], ctx)
        assertions: list[Assertion] = []
        if "assertions" in m:
            items = self.sequence(m["assertions"], ctx, "'assertions'")
            if items is not None and not items:
                self.err(m["assertions"].pos, ctx, "'assertions' must list at least one assertion")
            for item in items or ():
                assertion = self.assertion(item, ctx, roots)
                if assertion is not None:
                    if match is not None:
                        self.masked_check(assertion, item, ctx)
                    assertions.append(assertion)
        elif "match" not in m:
            self.err(y.pos, ctx, f"assertion group {number}: missing 'assertions'")
        elif "count" not in m:
            self.err(
                y.pos,
                ctx,
                f"assertion group {number}: a group with 'match' needs 'count' or 'assertions'",
            )
        return AssertionGroup(assertions=assertions, match=match, count=count, pos=y.pos)

    def masked_check(self, assertion: Assertion, y: _Y, ctx: str) -> None:
        """Captured requests are stored with credential headers and our secrets masked: a
        comparison with either could never be judged, so it is refused here (existence can)."""
        if assertion.operator in ("exists", "notExists"):
            return
        segments = parse_path(assertion.path)
        if (
            len(segments) >= 3
            and segments[-2] == "headers"
            and isinstance(segments[-1], str)
            and is_sensitive_header(segments[-1])
        ):
            self.err(
                y.pos,
                ctx,
                f"'{assertion.path}': captured requests are recorded with credential headers "
                "masked, so only 'exists' or 'notExists' can check it",
            )
            return
        names = [n for text in _strings_of(assertion.value) for n in _names_or_empty(text)]
        if any(name.startswith("secret.") for name in names):
            self.err(
                y.pos,
                ctx,
                "captured requests are recorded with the partner's secrets masked, so a value "
                "cannot be compared with {{secret...}}; check another field, or exists",
            )

    def match(self, y: _Y, ctx: str) -> dict[str, Any] | None:
        m = self.mapping(y, ctx, "'match'")
        if m is None:
            return None
        self.known_keys(y, MATCH_KEYS, ctx, "'match'")
        if not m:
            self.err(y.pos, ctx, f"'match' needs at least one of {_either(MATCH_KEYS)}")
        out: dict[str, Any] = {}
        for key, value_y in m.items():
            if key not in MATCH_KEYS:
                continue
            value = self.string(value_y, ctx, key)
            if value is None:
                continue
            if key == "method":
                if value.upper() not in HTTP_METHODS:
                    self.err(
                        value_y.pos, ctx, f"unknown method '{value}'; use {_either(HTTP_METHODS)}"
                    )
                    continue
                value = value.upper()
            out[key] = value
        return out

    def count(self, y: _Y, ctx: str) -> CountCheck | None:
        m = self.mapping(y, ctx, "'count'")
        if m is None:
            return None
        self.known_keys(y, COUNT_KEYS, ctx, "'count'")
        operator = self.comparison(self.require(m, y, "operator", ctx), ctx)
        value = self.integer(self.require(m, y, "value", ctx), ctx, "value", 0)
        if operator is None or value is None:
            return None
        return CountCheck(operator=operator, value=value, pos=y.pos)

    def comparison(self, y: _Y | None, ctx: str) -> str | None:
        operator = self.string(y, ctx, "operator", templated=False)
        if operator is not None and operator not in COMPARISONS:
            assert y is not None
            self.err(
                y.pos,
                ctx,
                f"operator '{operator}' cannot compare counts; use {_either(COMPARISONS)}"
                + _did_you_mean(operator, COMPARISONS, _OPERATOR_ALIASES),
            )
            return None
        return operator

    def assertion(self, y: _Y, ctx: str, roots: tuple[str, ...] | None) -> Assertion | None:
        m = self.mapping(y, ctx, "an assertion")
        if m is None:
            return None
        self.known_keys(y, ASSERTION_KEYS, ctx, "an assertion")
        path = self.path(self.require(m, y, "path", ctx), ctx, roots)
        operator, value = self.condition(y, m, ctx)
        if path is None or operator is None or value is None:
            return None
        return Assertion(path=path, operator=operator, value=value[0], pos=y.pos)

    def until(self, y: _Y, ctx: str, roots: tuple[str, ...] | None) -> Until | None:
        m = self.mapping(y, ctx, "'until'")
        if m is None:
            return None
        self.known_keys(y, UNTIL_KEYS, ctx, "'until'")
        path = self.path(self.require(m, y, "path", ctx), ctx, roots)
        operator, value = self.condition(y, m, ctx)
        timeout, interval = 30_000, 1_000
        if "timeoutMs" in m:
            timeout = self.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
        if "intervalMs" in m:
            interval = self.integer(m["intervalMs"], ctx, "intervalMs", 10, MAX_MS)
        if timeout is not None and interval is not None and interval > timeout:
            self.err(
                m.get("intervalMs", y).pos,
                ctx,
                f"'intervalMs' ({interval}) must not exceed 'timeoutMs' ({timeout})",
            )
        if None in (path, operator, value, timeout, interval):
            return None
        return Until(
            path=path,
            operator=operator,
            value=value[0],
            timeout_ms=timeout,
            interval_ms=interval,
        )

    def path(self, y: _Y | None, ctx: str, roots: tuple[str, ...] | None) -> str | None:
        path = self.string(y, ctx, "path", templated=False)
        if path is None:
            return None
        assert y is not None
        try:
            segments = parse_path(path)
        except ValueError as exc:
            self.err(y.pos, ctx, f"invalid path '{path}': {exc}")
            return None
        if roots is not None and segments[0] not in roots:
            where = "captured traffic ('match')" if roots == MATCH_ROOTS else "this step"
            self.err(
                y.pos,
                ctx,
                f"path '{path}' cannot be used on {where}; "
                + (f"use a path under {_either(roots)}" if roots else "it has no results"),
            )
            return None
        return path

    def condition(self, y: _Y, m: dict[str, _Y], ctx: str) -> tuple[str | None, tuple[Any] | None]:
        """``operator`` and ``value`` of an assertion or ``until``: (operator, (value,))."""
        op_y = self.require(m, y, "operator", ctx)
        operator = self.string(op_y, ctx, "operator", templated=False)
        if operator is None:
            return None, None
        assert op_y is not None
        if operator not in OPERATORS:
            self.err(
                op_y.pos,
                ctx,
                f"unknown operator '{operator}'"
                + (
                    _did_you_mean(operator, OPERATORS, _OPERATOR_ALIASES)
                    or f"; use {_either(OPERATORS)}"
                ),
            )
            return None, None
        value_y = m.get("value")
        if operator in ("exists", "notExists"):
            if value_y is not None:
                self.err(
                    _kpos(y, "value"),
                    ctx,
                    f"'{operator}' takes no 'value' (remove it, or use 'eq' to compare)",
                )
                return operator, None
            return operator, (MISSING,)
        if value_y is None:
            self.err(y.pos, ctx, f"missing 'value' (operator '{operator}' compares with it)")
            return operator, None
        if value_y.refused:
            return operator, None
        value = self.operand(operator, value_y, ctx)
        return operator, (None if value is MISSING else (value,))

    def operand(self, operator: str, y: _Y, ctx: str) -> Any:
        """Check ``value`` for ``operator``; returns the plain value, or MISSING if invalid."""
        value = y.value
        before = len(self.errors)
        if operator == "matches":
            if not isinstance(value, str):
                return self._bad(y, ctx, f"'matches' needs a regular expression, not {_show(y)}")
            pattern = self.regex(y, ctx, "value")
            return MISSING if pattern is None else pattern
        if operator in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                return self._bad(
                    y, ctx, f"'{operator}' compares with a number or a string, not {_show(y)}"
                )
        elif operator == "in":
            if not y.is_list:
                return self._bad(y, ctx, f"'in' needs a list of allowed values, not {_show(y)}")
        elif operator == "length":
            return self.length(y, ctx)
        elif operator == "type":
            if not isinstance(value, str) or value not in TYPE_NAMES:
                return self._bad(
                    y,
                    ctx,
                    f"'type' needs one of {_either(TYPE_NAMES)}, not {_show(y)}"
                    + (_did_you_mean(value, TYPE_NAMES) if isinstance(value, str) else ""),
                )
            return value
        elif operator == "jsonSchema":
            if not y.is_map:
                return self._bad(y, ctx, f"'jsonSchema' needs a schema (a mapping), not {_show(y)}")
            self.schema(y, ctx)
            return _plain(y) if len(self.errors) == before else MISSING
        self.templates(y, ctx)
        return _plain(y) if len(self.errors) == before else MISSING

    def _bad(self, y: _Y, ctx: str, message: str) -> Any:
        self.err(y.pos, ctx, message)
        return MISSING

    def length(self, y: _Y, ctx: str) -> Any:
        value = y.value
        if isinstance(value, int) and not isinstance(value, bool):
            return value if value >= 0 else self._bad(y, ctx, "a length cannot be negative")
        if not y.is_map:
            return self._bad(
                y,
                ctx,
                "'length' needs a count, or {operator, value} such as "
                f"{{operator: gte, value: 1}}, not {_show(y)}",
            )
        self.known_keys(y, LENGTH_KEYS, ctx, "a length check")
        operator = self.comparison(self.require(value, y, "operator", ctx), ctx)
        count = self.integer(self.require(value, y, "value", ctx), ctx, "value", 0)
        if operator is None or count is None:
            return MISSING
        return {"operator": operator, "value": count}

    def schema(self, y: _Y, ctx: str, depth: int = 0) -> None:
        """Check a ``jsonSchema`` value against the supported keyword subset."""
        m = self.mapping(y, ctx, "a JSON Schema")
        if m is None:
            return
        assert y.keys is not None
        for key, value_y in m.items():
            pos = y.keys[key]
            if key not in SCHEMA_KEYWORDS:
                self.err(
                    pos,
                    ctx,
                    f"JSON Schema keyword '{key}' is not supported"
                    + (_did_you_mean(key, SCHEMA_KEYWORDS) or f"; use {_either(SCHEMA_KEYWORDS)}"),
                )
            elif key == "type":
                names = value_y.value if value_y.is_list else [value_y]
                for name_y in names:
                    if not isinstance(name_y.value, str) or name_y.value not in TYPE_NAMES:
                        self.err(
                            name_y.pos,
                            ctx,
                            f"schema 'type' must be one of {_either(TYPE_NAMES)}, "
                            f"not {_show(name_y)}",
                        )
            elif key == "properties":
                for sub in (self.mapping(value_y, ctx, "schema 'properties'") or {}).values():
                    self.schema(sub, ctx, depth + 1)
            elif key == "items":
                self.schema(value_y, ctx, depth + 1)
            elif key == "required":
                for name_y in self.sequence(value_y, ctx, "schema 'required'") or ():
                    self.string(name_y, ctx, "required", templated=False)
            elif key == "enum":
                self.sequence(value_y, ctx, "schema 'enum'")
            elif key in ("minimum", "maximum"):
                if isinstance(value_y.value, bool) or not isinstance(value_y.value, int | float):
                    self.err(
                        value_y.pos, ctx, f"schema '{key}' must be a number, not {_show(value_y)}"
                    )
            elif key in ("minLength", "maxLength", "minItems", "maxItems"):
                self.integer(value_y, ctx, key, 0)
            elif key == "pattern":
                self.regex(value_y, ctx, "pattern")
            elif key == "additionalProperties":
                self.boolean(value_y, ctx, "additionalProperties")
            elif key in ("title", "description", "$schema"):
                self.string(value_y, ctx, key, empty=True, templated=False)


# ----------------------------------------------------------------------------- small helpers


def _normalise(path: str) -> str:
    return posixpath.normpath(path) if path else path


def _strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings_of(k), *_strings_of(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings_of(v)]
    return []


def _names_or_empty(text: str) -> list[str]:
    try:
        return template_names(text)
    except ValueError:
        return []


def _is_failure_path(path: str) -> bool:
    path = path_conversion(path)[1]
    return path == "failure" or path.startswith(("failure.", "failure["))


def _decode(data: str | bytes, file: str) -> str | SpecError:
    """Bytes are UTF-8 (a BOM is dropped); the error is at the offending byte."""
    if isinstance(data, str):
        return data
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        column = len(body[line_start : exc.start].decode("utf-8", "replace")) + 1
        offset = exc.start + len(data) - len(body)
        return SpecError(
            file, line, column, f"not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {offset})"
        )


def _size(data: str | bytes) -> int:
    """Size in bytes (UTF-8 for text). Text longer than the cap in characters is not encoded:
    its length is returned as a lower bound, negative, so messages can say "at least"."""
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    if len(data) > LIMITS.file_bytes:
        return -len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def _too_large(what: str, size: int) -> str:
    amount = f"{size:,} bytes" if size > 0 else f"at least {-size:,} bytes"
    return f"{what} is too large ({amount}; the limit is {LIMITS.file_bytes:,} bytes)"


def _kpos(y: _Y, key: str) -> Pos:
    """The position of ``key`` in the mapping ``y``."""
    assert y.keys is not None
    return y.keys[key]


def _pos(file: str, mark: yaml.Mark) -> Pos:
    return Pos(file, mark.line + 1, mark.column + 1)


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    return exc.strerror or str(exc) or type(exc).__name__


def _either(words: Iterable[str]) -> str:
    words = list(words)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def _did_you_mean(word: Any, choices: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    if not isinstance(word, str) or not word:
        return ""
    choices = tuple(choices)
    lowered = {choice.lower(): choice for choice in choices}
    low = word.lower()
    found = lowered.get(low) or (aliases or {}).get(low)
    if found is None:
        close = difflib.get_close_matches(low, list(lowered), n=1, cutoff=0.6)
        found = lowered[close[0]] if close else None
    return f"; did you mean '{found}'?" if found and found != word else ""


def _show(y: _Y) -> str:
    value = y.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = y.raw if y.raw is not None else str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"'{text}'" if isinstance(value, str) else text


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    """The YAML parser's wording (libyaml's or PyYAML's), made readable."""
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    ctx_line = exc.context_mark.line + 1 if exc.context_mark else None
    mark = exc.problem_mark
    if mark is not None and "cannot start any token" in problem:
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        if line[mark.column : mark.column + 1] == "\t":
            return "tab character: YAML is indented with spaces, not tabs"
    if problem.startswith("mapping values are not allowed"):
        return (
            "unexpected ':' here: check this line's indentation, or quote a value that "
            "contains ': '"
        )
    where = f" that starts at line {ctx_line}" if ctx_line else ""
    if "block mapping" in context and (
        problem.startswith("expected <block end>") or problem == "did not find expected key"
    ):
        return f"bad indentation: this line does not line up with the keys of the mapping{where}"
    if "block collection" in context and (
        problem.startswith("expected <block end>") or "expected '-' indicator" in problem
    ):
        return f"bad indentation: this line does not line up with the list{where}"
    if "found undefined alias" in problem or "found undefined tag" in problem:
        return f"invalid YAML: {problem}"
    message = f"invalid YAML: {problem}" if problem else "invalid YAML"
    if context:
        message += f" ({context}" + (f" at line {ctx_line})" if ctx_line else ")")
    return message
