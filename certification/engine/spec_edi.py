"""Reading the EDI actions of a suite: ``x12Send`` and ``x12Receive``.

Kept apart from ``spec.py`` (the format's reader) because its rules are X12's: which sets can
be built, what fixed control numbers may hold. Errors go through the reader's ``err``, with
the line and column of the value at fault.
"""

from __future__ import annotations

from typing import Any

from certification.engine.model import MISSING, X12Receive, X12Send
from certification.engine.x12 import FUNCTIONAL_IDS

SENDABLE = ("850", "855", "856", "810", "846")
RECEIVABLE = ("997", "855", "856", "810", "846", "850")
EXPECT = ("accepted", "rejected", "any")
CONTROL_KEYS = ("interchange", "group", "set")
_CONTROL_MAX = {"interchange": 999_999_999, "group": 999_999_999, "set": 999_999_999}


def _set_id(parser: Any, y: Any, ctx: str, allowed: tuple[str, ...]) -> str | None:
    value = y.value
    if isinstance(value, bool) or not isinstance(value, int | str):
        parser.err(y.pos, ctx, f"'set' is a transaction set number ({', '.join(allowed)})")
        return None
    text = str(value).strip()
    if text not in allowed:
        parser.err(
            y.pos,
            ctx,
            f"'set' {text!r} is not one this action handles; use {', '.join(allowed)}",
        )
        return None
    return text


def _folder(parser: Any, m: dict[str, Any], ctx: str, default: str) -> str | None:
    if "dir" not in m:
        return default
    folder = parser.string(m["dir"], ctx, "dir", templated=False)
    if folder is not None and (folder.startswith("/") or ".." in folder.split("/")):
        parser.err(m["dir"].pos, ctx, "'dir' is relative to the endpoint's root (no '/', '..')")
        return None
    return folder


def x12_action(parser: Any, kind: str, y: Any, m: dict[str, Any], ctx: str) -> Any:
    from certification.engine.spec import MAX_MS, _kpos, _plain

    endpoint_y = parser.require(m, y, "endpoint", ctx)
    endpoint = parser.string(endpoint_y, ctx, "endpoint", templated=False)
    timeout = 60_000
    if "timeoutMs" in m:
        timeout = parser.integer(m["timeoutMs"], ctx, "timeoutMs", 1, MAX_MS)
    if kind == "x12Receive":
        set_id: str | None = "997"
        if "set" in m:
            set_id = _set_id(parser, m["set"], ctx, RECEIVABLE)
        expect: str | None = "accepted"
        if "expect" in m:
            expect = parser.string(m["expect"], ctx, "expect", templated=False)
            if expect is not None and expect not in EXPECT:
                parser.err(m["expect"].pos, ctx, f"'expect' is {', '.join(EXPECT)}")
                expect = None
            elif set_id != "997":
                parser.err(m["expect"].pos, ctx, "'expect' judges a 997, and this is not one")
        interval = 500
        if "intervalMs" in m:
            interval = parser.integer(m["intervalMs"], ctx, "intervalMs", 10, MAX_MS)
        pattern = parser.string(m["pattern"], ctx, "pattern") if "pattern" in m else "*"
        folder = _folder(parser, m, ctx, "outbox")
        if None in (endpoint, set_id, expect, timeout, interval, pattern, folder):
            return None
        return X12Receive(
            endpoint=endpoint, set_id=set_id, expect=expect, timeout_ms=timeout,
            interval_ms=interval, directory=folder, pattern=pattern,
        )  # fmt: skip
    set_id = "850"
    if "set" in m:
        set_id = _set_id(parser, m["set"], ctx, SENDABLE)
    order: Any = MISSING
    segments: Any = MISSING
    if ("order" in m) == ("segments" in m):
        parser.err(y.pos, ctx, "an x12Send needs exactly one of 'order' (an 850) or 'segments'")
    elif "order" in m:
        if set_id != "850":
            parser.err(m["order"].pos, ctx, "'order' builds an 850; give 'segments' for other sets")
        elif not m["order"].is_map:
            parser.err(m["order"].pos, ctx, "'order' is a mapping: po, date, lines")
        elif _order_ok(parser, m["order"], ctx):
            parser.templates(m["order"], ctx)
            order = _plain(m["order"])
    else:
        rows = parser.sequence(m["segments"], ctx, "'segments'") or []
        if not rows and m["segments"].is_list:
            parser.err(m["segments"].pos, ctx, "'segments' lists the set's segments: none given")
        for number, row in enumerate(rows, start=1):
            cells = parser.sequence(row, ctx, f"segment {number}")
            if cells is None:
                continue
            if not cells or not isinstance(cells[0].value, str) or not cells[0].value.isalnum():
                parser.err(row.pos, ctx, f"segment {number} starts with its segment id (BEG, PO1…)")
            elif cells[0].value in ("ISA", "GS", "ST", "SE", "GE", "IEA"):
                parser.err(row.pos, ctx, f"segment {number}: envelopes are added for you")
            elif any(cell.is_map or cell.is_list for cell in cells):
                parser.err(row.pos, ctx, f"segment {number}: an element is a scalar")
        parser.templates(m["segments"], ctx)
        segments = _plain(m["segments"])
    control = None
    if "control" in m:
        control_m = parser.mapping(m["control"], ctx, "'control'")
        if control_m is not None:
            parser.known_keys(m["control"], CONTROL_KEYS, ctx, "'control'")
            control = {}
            for key in CONTROL_KEYS:
                if key not in control_m:
                    parser.err(m["control"].pos, ctx, f"'control' fixes all three: missing '{key}'")
                    continue
                value = parser.integer(control_m[key], ctx, key, 1, _CONTROL_MAX[key])
                if value is not None:
                    control[key] = value
    repeat = False
    if "repeat" in m:
        repeat = bool(parser.boolean(m["repeat"], ctx, "repeat"))
        if repeat and control is not None:
            parser.err(_kpos(y, "repeat"), ctx, "give 'control' or 'repeat', not both")
    name = None
    if "name" in m:
        name = parser.string(m["name"], ctx, "name")
        if name is not None and ("/" in name or name.startswith(".")):
            parser.err(
                m["name"].pos, ctx, "'name' is a file name, without '/' and not starting with '.'"
            )
            name = None
    folder = _folder(parser, m, ctx, "inbox")
    if None in (endpoint, set_id, timeout, folder) or (order is MISSING and segments is MISSING):
        return None
    if control is not None and len(control) != 3:
        return None
    assert set_id in FUNCTIONAL_IDS
    return X12Send(
        endpoint=endpoint, set_id=set_id, order=order, segments=segments, control=control,
        repeat=repeat, directory=folder, name=name, timeout_ms=timeout,
    )  # fmt: skip


ORDER_KEYS = ("po", "date", "lines")
LINE_KEYS = ("sku", "quantity", "price", "unit")


def _order_ok(parser: Any, y: Any, ctx: str) -> bool:
    """An 850's ``order``: ``po``, ``date`` and ``lines``, each line a mapping with ``sku`` and
    ``quantity`` (``price``, ``unit``); a template in place of ``lines`` is checked when run."""
    parser.known_keys(y, ORDER_KEYS, ctx, "'order'")
    m = parser.mapping(y, ctx, "'order'") or {}
    ok = all(k in ORDER_KEYS for k in m)
    for key in ("po", "lines"):
        if key not in m:
            parser.err(y.pos, ctx, f"'order' needs '{key}'")
            ok = False
    lines = m.get("lines")
    if lines is None or (isinstance(lines.value, str) and "{{" in lines.value):
        return ok
    if not lines.is_list or not lines.value:
        parser.err(lines.pos, ctx, "'order.lines' lists the order lines: [{sku, quantity, price}]")
        return False
    for number, line in enumerate(lines.value, start=1):
        where = f"'order.lines' line {number}"
        if not line.is_map:
            parser.err(line.pos, ctx, f"{where} is a mapping: sku, quantity, price, unit")
            ok = False
            continue
        parser.known_keys(line, LINE_KEYS, ctx, where)
        fields = parser.mapping(line, ctx, where) or {}
        ok = ok and all(k in LINE_KEYS for k in fields)
        for key in ("sku", "quantity"):
            if key not in fields:
                parser.err(line.pos, ctx, f"{where} needs '{key}'")
                ok = False
    return ok
