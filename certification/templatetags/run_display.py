"""Filters for the run page: values of assertions with their differing part marked, durations,
milliseconds and deltas.

``{{ a.actual|diff_mark:a.expected }}`` shows ``actual`` with the part that differs from
``expected`` (what is left between their common prefix and suffix) in ``<mark>``; long common
parts are cut to a little context either side.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from evidence.svg_charts import format_ms

register = template.Library()

CONTEXT = 40  # characters of the common prefix and suffix kept around the difference
MAX_MIDDLE = 200


def show_value(value: Any) -> str:
    """A value as the suite wrote it: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def split_difference(text: str, other: str) -> tuple[str, str, str]:
    """``text`` as (common prefix, differing middle, common suffix) against ``other``; the
    suffix never overlaps the prefix."""
    prefix = 0
    limit = min(len(text), len(other))
    while prefix < limit and text[prefix] == other[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix and text[len(text) - 1 - suffix] == other[len(other) - 1 - suffix]
    ):
        suffix += 1
    return text[:prefix], text[prefix : len(text) - suffix], text[len(text) - suffix :]


@register.filter
def diff_mark(value: Any, other: Any) -> SafeString:
    """``value`` with what differs from ``other`` in ``<mark>`` (escaped throughout)."""
    text, against = show_value(value), show_value(other)
    head, middle, tail = split_difference(text, against)
    if len(head) > CONTEXT:
        head = "…" + head[-CONTEXT:]
    if len(tail) > CONTEXT:
        tail = tail[:CONTEXT] + "…"
    if len(middle) > MAX_MIDDLE:
        middle = middle[:MAX_MIDDLE] + "…"
    if not middle:
        # Equal text, or one is the other plus something: mark the spot so it can be seen.
        return format_html('{}<mark class="gap" title="differs here"></mark>{}', head, tail)
    return format_html("{}<mark>{}</mark>{}", head, middle, tail)


@register.filter
def plain_value(value: Any) -> str:
    text = show_value(value)
    return text if len(text) <= MAX_MIDDLE else text[:MAX_MIDDLE] + "…"


@register.filter
def ms(value: float | None) -> str:
    """``165 ms``, ``0.532 ms``; an em dash when there is no value."""
    return format_ms(value)


@register.filter
def delta_ms(value: float | None) -> str:
    """``+12.5 ms``, ``−3 ms``, ``±0 ms``; an em dash when either side is missing."""
    if value is None:
        return "—"
    if value == 0:
        return "±0 ms"
    sign = "+" if value > 0 else "−"
    return f"{sign}{format_ms(abs(value))}"


@register.filter
def elapsed(seconds: float | None) -> str:
    """``0.4 s``, ``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
