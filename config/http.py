"""Small response helpers shared by the apps' views."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect


def redirect_after_post(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect after a POST: htmx follows ``HX-Redirect``, a plain form a 302."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return redirect(url)
