"""``{% load partners_display %}``: ``{{ url|display_url }}`` shows a URL without its password;
``{{ when|utc }}`` shows a time in UTC ISO 8601 with the local time on hover;
``{% status_badge status label %}`` a status as a coloured badge."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.html import conditional_escape, format_html

from partners.secret_rules import display_url as _display_url

register = template.Library()


@register.simple_tag
def status_badge(status: object, label: object) -> str:
    """``<span class="badge status-failed">Failed</span>``: a tag rather than an included
    template, since lists render one per row."""
    return format_html('<span class="badge status-{}">{}</span>', status, label)


@register.filter
def display_url(url: object) -> str:
    return _display_url(str(url or ""))


@register.filter
def utc(value: object) -> str:
    """A time as ``<time>`` in UTC ISO 8601 (``2026-12-02T10:39:11Z``, to the second); the page's
    script adds the reader's local time as its tooltip. Empty for None."""
    if not isinstance(value, dt.datetime):
        return "—" if value is None else conditional_escape(str(value))
    iso = value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return format_html('<time class="utc" datetime="{}">{}</time>', iso, iso)
