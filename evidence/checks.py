"""System checks of the evidence app: the signing key must be usable before the first bundle."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security)
def signing_key_is_usable(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A configured ``EVIDENCE_SIGNING_KEY`` must parse as an Ed25519 private key (checked at
    start-up, not when the first bundle is built). An empty setting in development is fine: a
    key is generated on first use."""
    if not settings.EVIDENCE_SIGNING_KEY:
        return []
    from evidence import signing

    try:
        signing.parse_private_key(settings.EVIDENCE_SIGNING_KEY)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="evidence.E001")]
    return []
