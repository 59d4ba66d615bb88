"""The sandbox address policy as configured for this deployment (``SANDBOX_ALLOWED_NETWORKS``)."""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from certification.engine.netpolicy import AddressPolicy, ResolvedTarget, UrlRefused, parse_networks
from partners.secret_rules import INLINE_DB_PASSWORD_MESSAGE, has_inline_password


@cache
def _policy_for(spec: str) -> AddressPolicy:
    return AddressPolicy(parse_networks(spec))


def sandbox_policy() -> AddressPolicy:
    return _policy_for(settings.SANDBOX_ALLOWED_NETWORKS)


def _host_part(netloc: str) -> str:
    host = netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.rsplit(":", 1)[0]


def check_sandbox_url(url: str, *, kind: str = "http") -> ResolvedTarget:
    """Resolve the URL's host and refuse it unless every address is allowed.

    ``kind`` is the endpoint kind: ``http`` takes http(s) URLs without credentials (the policy
    refuses ``user:password@``), ``postgresql`` postgres:// URLs without a password (it belongs
    in the endpoint's sealed secrets, auth kind ``db_password``).
    Raises ``ValidationError`` with a message fit for a form. Passing here is not the whole guard:
    the transport checks the address it connects to again, because DNS can change in between.
    """
    if kind == "postgresql":
        if has_inline_password(url):
            raise ValidationError(INLINE_DB_PASSWORD_MESSAGE, code="inline_password")
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
            raise ValidationError(
                "A database endpoint needs a postgres://user@host:5432/dbname URL.",
                code="bad_scheme",
            )
        try:
            port = parts.port or 5432
        except ValueError:
            raise ValidationError("The port is not a number from 1 to 65535.") from None
        # The policy speaks http(s); check the database host and port in that form.
        url = f"http://{_host_part(parts.netloc)}:{port}/"
    elif kind == "sftp":
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname:
            raise ValidationError(
                "A file server endpoint needs an sftp://host[:port][/root] URL.", code="bad_scheme"
            )
        if "@" in parts.netloc:
            raise ValidationError(
                "Put the user in the endpoint's settings and the password or key in its secrets, "
                "not in the URL.",
                code="inline_password",
            )
        try:
            port = parts.port or 22
        except ValueError:
            raise ValidationError("The port is not a number from 1 to 65535.") from None
        url = f"http://{_host_part(parts.netloc)}:{port}/"
    try:
        return sandbox_policy().check_url(url)
    except UrlRefused as exc:
        raise ValidationError(str(exc), code="sandbox_url_refused") from None
