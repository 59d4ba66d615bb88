"""The sandbox address policy as configured for this deployment (``SANDBOX_ALLOWED_NETWORKS``)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError

from certification.engine.netpolicy import AddressPolicy, ResolvedTarget, UrlRefused, parse_networks


@cache
def _policy_for(spec: str) -> AddressPolicy:
    return AddressPolicy(parse_networks(spec))


def sandbox_policy() -> AddressPolicy:
    return _policy_for(settings.SANDBOX_ALLOWED_NETWORKS)


def check_sandbox_url(url: str) -> ResolvedTarget:
    """Resolve the URL's host and refuse it unless every address is allowed.

    Raises ``ValidationError`` with a message fit for a form. Passing here is not the whole guard:
    the transport checks the address it connects to again, because DNS can change in between.
    """
    try:
        return sandbox_policy().check_url(url)
    except UrlRefused as exc:
        raise ValidationError(str(exc), code="sandbox_url_refused") from None
