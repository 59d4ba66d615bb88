"""What django-axes needs from this project to throttle logins: the client address to count
failures by, the page a locked-out login gets, and the audit events for failed logins and
lockouts (connected in ``PartnersConfig.ready``).

Audit events name the username tried and the client address, never the password: the handlers
read only the username from the credentials (which Django has already masked).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from evidence.audit import audit_record


def _ip_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The address a login comes from (``AXES_CLIENT_IP_CALLABLE``).

    With ``TRUSTED_PROXY_COUNT`` = 0 it is the connecting address. Behind N reverse proxies
    that each append to ``X-Forwarded-For`` it is the N-th entry from the right, the one the
    outermost proxy wrote; entries left of it are whatever the client sent. A request with
    fewer entries did not pass through all the proxies, and an entry that is not an address is
    not trusted: both fall back to the connecting address.
    """
    remote = _ip_address(request.META.get("REMOTE_ADDR", ""))
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop]
        if len(hops) >= count:
            return _ip_address(hops[-count]) or remote
    return remote


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The page for a login refused because its username and address are locked out
    (``AXES_LOCKOUT_CALLABLE``): 429 with ``Retry-After``, since the attempt restarted the
    cool-off."""
    minutes = settings.LOGIN_COOLOFF_MINUTES
    response = render(
        request, "registration/locked_out.html", {"cooloff_minutes": minutes}, status=429
    )
    response["Retry-After"] = str(minutes * 60)
    return response


def _actor(ip: str | None) -> str:
    return f"anonymous ({ip or 'unknown address'})"


def record_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """``user_login_failed`` receiver: one audit event per failed login, refused ones included."""
    username = str(credentials.get(get_user_model().USERNAME_FIELD, ""))
    ip = client_ip(request) if request is not None else None
    audit_record(
        actor=_actor(ip),
        action="login.fail",
        target=username,
        data={"username": username, "ip_address": ip},
    )


def record_lockout(
    sender: Any,
    request: HttpRequest,
    username: str | None,
    ip_address: str | None,
    **kwargs: Any,
) -> None:
    """``axes.signals.user_locked_out`` receiver: sent when a failure reaches the limit and
    again for each attempt while locked."""
    audit_record(
        actor=_actor(ip_address),
        action="login.lockout",
        target=username or "",
        data={
            "username": username or "",
            "ip_address": ip_address,
            "cooloff_minutes": settings.LOGIN_COOLOFF_MINUTES,
        },
    )
