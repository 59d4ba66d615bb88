"""``{{var}}`` templating of strings anywhere in a step.

A string that is exactly one ``{{var}}`` becomes the variable's value with its type (a number
stays a number); inside a longer string the value is formatted (JSON for lists and objects).
Dotted names walk into objects (``{{order.id}}``, ``{{partner.id}}``, ``{{sla.p95}}``,
``{{secret.api_key}}``).

A template may also call a function (``FUNCTIONS``) on names, quoted strings, numbers and
other calls: ``{{ base64(concat(partner.id, ':', secret.api.token)) }}``,
``{{ hmacSha256(secret.hooks.signing_secret, concat(ts, '.', body)) }}``, ``{{ number(n) }}``.
:func:`parse` reads an expression (the suite reader uses it to report errors early).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 32  # calls nested inside calls in one template


class UndefinedVariable(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"undefined variable '{name}'")
        self.name = name


def _builtin(name: str) -> Any:
    if name == "$uuid":
        return str(uuid.uuid4())
    if name == "$timestamp":
        return int(time.time())
    if name == "$isoNow":
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if name == "$randomInt":
        return random.randint(0, 2**31 - 1)
    raise UndefinedVariable(name)


class TemplateFunctionError(ValueError):
    """A template function could not compute its value (``number('abc')``)."""


def _text(value: Any) -> str:
    return _format(value)


# A decimal number as a partner writes one in a header or a string: ASCII digits, an optional
# sign, fraction and exponent. Not "1_000", "١٢", ".5", "inf" or "nan", which Python would take.
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TemplateFunctionError(f"number() of {_format(value)}: not a number")
    if value is None:
        raise TemplateFunctionError("number() of null: not a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        raise TemplateFunctionError(
            f"number() of {'an object' if isinstance(value, dict) else 'a list'}: not a number"
        )
    text = _format(value).strip()
    # The value itself is never quoted: it may be (part of) a secret.
    if not _NUMBER.fullmatch(text):
        what = "an empty string" if not text else f"a {len(text)}-character string"
        raise TemplateFunctionError(f"number() of {what}: not a decimal number")
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise TemplateFunctionError(f"number() of a {len(text)}-character string: out of range")
    return number


def _hmac_sha256(key: Any, message: Any) -> str:
    return hmac.new(_text(key).encode(), _text(message).encode(), hashlib.sha256).hexdigest()


# name -> (function, fewest arguments, most arguments (None: any number)). Documented in
# docs/scenario-format.md; evaluated each time the template is rendered.
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "base64": (lambda v: base64.b64encode(_text(v).encode()).decode("ascii"), 1, 1),
    "sha256": (lambda v: hashlib.sha256(_text(v).encode()).hexdigest(), 1, 1),
    "hmacSha256": (_hmac_sha256, 2, 2),
    "concat": (lambda *vs: "".join(_text(v) for v in vs), 1, None),
    "number": (_number, 1, 1),
    "string": (_text, 1, 1),
    "now": (lambda: int(time.time()), 0, 0),
    "nowMs": (lambda: int(time.time() * 1000), 0, 0),
    "uuid": (lambda: str(uuid.uuid4()), 0, 0),
}

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<num>-?\d+(?:\.\d+)?(?![\w.]))"""
    r"""|(?P<name>[$A-Za-z_][\w.$-]*)|(?P<punct>[(),]))"""
)

# An expression: ("name", "order.id"), ("lit", value) or ("call", "base64", (args...)).
Expr = tuple[Any, ...]


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """The expression inside ``{{ }}``; ``ValueError`` saying what is wrong and where."""
    tokens: list[tuple[str, str, int]] = []
    position, source = 0, text.strip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            rest = source[position:].strip()
            raise ValueError(f"cannot read {rest[:20]!r} in '{{{{{source}}}}}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
        while position < len(source) and source[position].isspace():
            position += 1
    if not tokens:
        raise ValueError("empty '{{}}'")
    expr, used = _expression(tokens, 0, source)
    if used != len(tokens):
        raise ValueError(f"unexpected {tokens[used][1]!r} in '{{{{{source}}}}}'")
    return expr


def _expression(
    tokens: list[tuple[str, str, int]], i: int, source: str, depth: int = 0
) -> tuple[Expr, int]:
    if depth > MAX_DEPTH:
        raise ValueError(f"calls nested more than {MAX_DEPTH} deep in '{{{{{source}}}}}'")
    if i >= len(tokens):
        raise ValueError(f"'{{{{{source}}}}}' ends too early")
    kind, value, _ = tokens[i]
    if kind == "str":
        return ("lit", value[1:-1]), i + 1
    if kind == "num":
        return ("lit", float(value) if "." in value else int(value)), i + 1
    if kind != "name":
        raise ValueError(f"unexpected {value!r} in '{{{{{source}}}}}'")
    if i + 1 < len(tokens) and tokens[i + 1][1] == "(":
        if value not in FUNCTIONS:
            raise ValueError(f"unknown function '{value}()'" + _hint(value))
        args: list[Expr] = []
        j = i + 2
        if j < len(tokens) and tokens[j][1] == ")":
            j += 1
        else:
            while True:
                arg, j = _expression(tokens, j, source, depth + 1)
                args.append(arg)
                if j < len(tokens) and tokens[j][1] == ",":
                    j += 1
                    continue
                if j < len(tokens) and tokens[j][1] == ")":
                    j += 1
                    break
                if j < len(tokens):
                    raise ValueError(
                        f"expected ',' or ')' after argument {len(args)} of '{value}(', not "
                        f"{tokens[j][1]!r}, in '{{{{{source}}}}}'"
                    )
                raise ValueError(f"'{value}(' is not closed with ')' in '{{{{{source}}}}}'")
        _, low, high = FUNCTIONS[value]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"{low} or more" if high is None else f"{low} to {high}"
            wanted = str(low) if low == high else wanted
            raise ValueError(
                f"{value}() takes {wanted} argument{'s' if wanted != '1' else ''}, not {len(args)}"
            )
        return ("call", value, tuple(args)), j
    return ("name", value), i + 1


def _hint(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, FUNCTIONS, n=1)
    known = ", ".join(f"{f}()" for f in FUNCTIONS)
    return f"; did you mean '{close[0]}()'?" if close else f"; the functions are {known}"


def names_in(expr: Expr) -> list[str]:
    """The variable names an expression reads, in order."""
    if expr[0] == "name":
        return [expr[1]]
    if expr[0] == "call":
        return [name for arg in expr[2] for name in names_in(arg)]
    return []


def evaluate(expr: Expr, variables: Mapping[str, Any]) -> Any:
    if expr[0] == "lit":
        return expr[1]
    if expr[0] == "name":
        return lookup(expr[1], variables)
    function = FUNCTIONS[expr[1]][0]
    return function(*(evaluate(arg, variables) for arg in expr[2]))


def _value(inside: str, variables: Mapping[str, Any]) -> Any:
    try:
        expr = parse(inside)
    except ValueError as exc:  # the suite reader reports these; a run-time variable may not
        raise TemplateFunctionError(str(exc)) from None
    return evaluate(expr, variables)


def _scan_closed(text: str) -> list[tuple[int, int, str]]:
    """The closed templates of ``text`` when a later ``{{`` is not closed."""
    cut = text.rfind("{{")
    while cut >= 0:
        try:
            return scan(text[:cut])
        except ValueError:
            cut = text.rfind("{{", 0, cut)
    return []


def _index_ok(part: str, items: list[Any]) -> bool:
    return part.lstrip("-").isdigit() and -len(items) <= int(part) < len(items)


def lookup(name: str, variables: Mapping[str, Any]) -> Any:
    if name.startswith("$"):
        return _builtin(name)
    if name in variables:
        return variables[name]
    head, _, rest = name.partition(".")
    if head not in variables or not rest:
        raise UndefinedVariable(name)
    current: Any = variables[head]
    parts = rest.split(".")
    for position, part in enumerate(parts):
        remainder = ".".join(parts[position:])
        if isinstance(current, Mapping) and remainder in current:
            # Flat dotted keys ({{secret.api.token}} with key "api.token") win.
            return current[remainder]
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and _index_ok(part, current):
            current = current[int(part)]
        else:
            raise UndefinedVariable(name)
    return current


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _closing(text: str, start: int) -> int:
    """Where the ``}}`` closing the template whose inside starts at ``start`` is, skipping
    quoted strings (``{{ concat('}}', x) }}``); -1 when there is none. An unbalanced quote
    (``{{ it's }}``) falls back to the first ``}}``, for the reader to report."""
    quote = ""
    j = start
    while j < len(text):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif text.startswith("}}", j):
            return j
        j += 1
    return text.find("}}", start)


def scan(text: str) -> list[tuple[int, int, str]]:
    """The templates in ``text``: (start, end, inside) for each ``{{ ... }}``, the innermost
    pair of braces (``{{{x}}}`` is ``x`` in braces). ``ValueError`` on an unclosed ``{{``."""
    found: list[tuple[int, int, str]] = []
    position = 0
    while True:
        i = text.find("{{", position)
        if i < 0:
            return found
        while text.startswith("{", i + 2):
            i += 1
        j = _closing(text, i + 2)
        if j < 0:
            raise ValueError(f"'{{{{' at character {i + 1} is not closed with '}}}}'")
        found.append((i, j + 2, text[i + 2 : j]))
        position = j + 2


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render templates in ``value`` (strings, and recursively in lists and dict values/keys)."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        try:
            templates = scan(value)
        except ValueError:  # checked when the suite was read; left as text here
            templates = _scan_closed(value)
        if len(templates) == 1 and templates[0][:2] == (0, len(value)):
            return _value(templates[0][2], variables)
        parts: list[str] = []
        position = 0
        for start, end, inside in templates:
            parts.append(value[position:start])
            parts.append(_format(_value(inside, variables)))
            position = end
        parts.append(value[position:])
        return "".join(parts)
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if isinstance(value, dict):
        return {render(k, variables): render(v, variables) for k, v in value.items()}
    return value
