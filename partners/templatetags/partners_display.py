"""``{% load partners_display %}``: ``{{ url|display_url }}`` shows a URL without its password."""

from __future__ import annotations

from django import template

from partners.secret_rules import display_url as _display_url

register = template.Library()


@register.filter
def display_url(url: object) -> str:
    return _display_url(str(url or ""))
