"""The assertion operators. Each returns (passed, message); the message says why it failed in
terms a partner engineer can act on. Semantics are documented in docs/scenario-format.md."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from certification.engine.model import MISSING

Result = tuple[bool, str]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def deep_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def show(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


def _eq(actual: Any, expected: Any) -> Result:
    if deep_equal(actual, expected):
        return True, ""
    return False, f"expected {show(expected)}, got {show(actual)}"


def _neq(actual: Any, expected: Any) -> Result:
    if actual is MISSING:
        return False, "value is missing"
    if not deep_equal(actual, expected):
        return True, ""
    return False, f"expected anything but {show(expected)}"


def _ordered(symbol: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Result]:
    def check(actual: Any, expected: Any) -> Result:
        comparable = (_is_number(actual) and _is_number(expected)) or (
            isinstance(actual, str) and isinstance(expected, str)
        )
        if not comparable:
            return False, (
                f"cannot compare {json_type(actual)} {show(actual)} {symbol} "
                f"{json_type(expected)} {show(expected)}"
            )
        if compare(actual, expected):
            return True, ""
        return False, f"expected {symbol} {show(expected)}, got {show(actual)}"

    return check


def _contains(actual: Any, expected: Any) -> Result:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            return False, f"a string can only contain a string, not {json_type(expected)}"
        found = expected in actual
    elif isinstance(actual, list):
        found = any(deep_equal(item, expected) for item in actual)
    elif isinstance(actual, dict):
        if not isinstance(expected, str):
            return False, f"an object contains keys (strings), not {json_type(expected)}"
        found = expected in actual
    else:
        return False, f"contains needs a string, array or object, got {json_type(actual)}"
    return (True, "") if found else (False, f"{show(actual)} does not contain {show(expected)}")


def _not_contains(actual: Any, expected: Any) -> Result:
    passed, message = _contains(actual, expected)
    if not passed and message.startswith(("contains needs", "a string can", "an object")):
        return False, message.replace("contains needs", "notContains needs")
    return (False, f"{show(actual)} contains {show(expected)}") if passed else (True, "")


def _exists(actual: Any, expected: Any) -> Result:
    return (True, "") if actual is not MISSING else (False, "path does not exist")


def _not_exists(actual: Any, expected: Any) -> Result:
    return (True, "") if actual is MISSING else (False, f"path exists with value {show(actual)}")


def _matches(actual: Any, expected: Any) -> Result:
    if not isinstance(actual, str):
        return False, f"matches needs a string, got {json_type(actual)}"
    if re.search(expected, actual):
        return True, ""
    return False, f"{show(actual)} does not match /{expected}/"


def _in(actual: Any, expected: Any) -> Result:
    if any(deep_equal(actual, option) for option in expected):
        return True, ""
    return False, f"{show(actual)} is not one of {show(expected)}"


def _length(actual: Any, expected: Any) -> Result:
    if not isinstance(actual, str | list | dict):
        return False, f"length needs a string, array or object, got {json_type(actual)}"
    size = len(actual)
    if isinstance(expected, dict):
        op, target = expected["operator"], expected["value"]
        passed, _ = OPERATIONS[op](size, target)
        return (True, "") if passed else (False, f"length {size} is not {op} {target}")
    return (True, "") if size == expected else (False, f"length is {size}, expected {expected}")


def _type(actual: Any, expected: Any) -> Result:
    kind = json_type(actual)
    if kind == expected or (expected == "number" and kind == "integer"):
        return True, ""
    return False, f"expected type {expected}, got {kind}"


def _json_schema(actual: Any, expected: Any) -> Result:
    errors = schema_errors(actual, expected, "$")
    return (True, "") if not errors else (False, "; ".join(errors[:5]))


def schema_errors(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """A JSON Schema subset: type, enum, const, properties, required, additionalProperties
    (false), items, minItems/maxItems, minimum/maximum, minLength/maxLength, pattern."""
    errors: list[str] = []
    wanted = schema.get("type")
    if wanted is not None:
        kinds = wanted if isinstance(wanted, list) else [wanted]
        if not any(_type(value, kind)[0] for kind in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {json_type(value)}"]
    if "enum" in schema and not any(deep_equal(value, v) for v in schema["enum"]):
        errors.append(f"{where}: {show(value)} is not one of {show(schema['enum'])}")
    if "const" in schema and not deep_equal(value, schema["const"]):
        errors.append(f"{where}: expected {show(schema['const'])}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required property '{key}'")
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value:
                errors.extend(schema_errors(value[key], sub, f"{where}.{key}"))
        if schema.get("additionalProperties") is False:
            for key in value:
                if key not in properties:
                    errors.append(f"{where}: unexpected property '{key}'")
    if isinstance(value, list):
        if "items" in schema:
            for i, item in enumerate(value):
                errors.extend(schema_errors(item, schema["items"], f"{where}[{i}]"))
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
    if _is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {show(value)} does not match /{schema['pattern']}/")
    return errors


OPERATIONS: dict[str, Callable[[Any, Any], Result]] = {
    "eq": _eq,
    "neq": _neq,
    "gt": _ordered(">", lambda a, b: a > b),
    "gte": _ordered(">=", lambda a, b: a >= b),
    "lt": _ordered("<", lambda a, b: a < b),
    "lte": _ordered("<=", lambda a, b: a <= b),
    "contains": _contains,
    "notContains": _not_contains,
    "exists": _exists,
    "notExists": _not_exists,
    "matches": _matches,
    "in": _in,
    "length": _length,
    "type": _type,
    "jsonSchema": _json_schema,
}


def evaluate(operator: str, actual: Any, expected: Any) -> Result:
    """Apply an operator. A missing value fails every operator but ``notExists``."""
    if actual is MISSING and operator not in ("exists", "notExists"):
        return False, "path does not exist"
    return OPERATIONS[operator](actual, expected)
