"""``{{var}}`` templating of strings anywhere in a step.

A string that is exactly one ``{{var}}`` becomes the variable's value with its type (a number
stays a number); inside a longer string the value is formatted (JSON for lists and objects).
Dotted names walk into objects (``{{order.id}}``, ``{{partner.id}}``, ``{{sla.p95}}``,
``{{secret.api_key}}``).
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_TEMPLATE = re.compile(r"\{\{\s*([$A-Za-z_][\w.$-]*)\s*\}\}")
_WHOLE = re.compile(r"^\{\{\s*([$A-Za-z_][\w.$-]*)\s*\}\}$")


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


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render templates in ``value`` (strings, and recursively in lists and dict values/keys)."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        whole = _WHOLE.match(value)
        if whole:
            return lookup(whole.group(1), variables)
        return _TEMPLATE.sub(lambda m: _format(lookup(m.group(1), variables)), value)
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if isinstance(value, dict):
        return {render(k, variables): render(v, variables) for k, v in value.items()}
    return value
