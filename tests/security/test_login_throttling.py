"""Failed logins lock a username from one address (django-axes, partners/login_throttling.py).

The limit is ``LOGIN_FAILURE_LIMIT`` (5 by default) failures for one username from one address;
the pair is then refused, even with the right password, while other addresses and other users
are not affected.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from evidence.models import AuditEvent
from partners import login_throttling
from tests import factories

IP_A = "203.0.113.10"
IP_B = "198.51.100.20"
WRONG = "not-the-password"


@pytest.fixture
def qa(db: Any) -> Any:
    return factories.qa_lead()


def _login(username: str, password: str, *, ip: str) -> HttpResponse:
    return Client(REMOTE_ADDR=ip).post(
        reverse("login"), {"username": username, "password": password}
    )


def _fail(times: int, username: str = "qa", *, ip: str = IP_A) -> None:
    for _ in range(times):
        _login(username, WRONG, ip=ip)


def _logged_in(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("partners:list")


def test_default_limit_is_five_failures_for_fifteen_minutes() -> None:
    assert settings.LOGIN_FAILURE_LIMIT == 5 and settings.LOGIN_COOLOFF_MINUTES == 15


def test_failures_below_the_limit_show_the_login_form_again(qa: Any) -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        response = _login("qa", WRONG, ip=IP_A)
        assert response.status_code == 200 and b"id_password" in response.content
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_A))


def test_sixth_attempt_after_five_failures_is_refused_even_with_the_right_password(
    qa: Any,
) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    response = _login("qa", factories.PASSWORD, ip=IP_A)
    assert response.status_code == 429
    assert "_auth_user_id" not in response.client.session


def test_lockout_page_is_the_site_page_saying_for_how_long(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    response = _login("qa", factories.PASSWORD, ip=IP_A)
    body = response.content.decode()
    assert response.status_code == 429
    assert response["Retry-After"] == str(15 * 60)
    assert "Account locked" in body and "locked for 15 minutes" in " ".join(body.split())
    assert 'class="topbar"' in body  # base.html, not axes' bare text
    assert "Traceback" not in body


def test_locked_username_can_still_log_in_from_another_address(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT, ip=IP_A)
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_B))


def test_another_user_can_still_log_in_from_the_locked_address(qa: Any) -> None:
    factories.auditor()
    _fail(settings.LOGIN_FAILURE_LIMIT, "qa", ip=IP_A)
    assert _logged_in(_login("auditor", factories.PASSWORD, ip=IP_A))


def test_a_success_before_the_limit_resets_the_count(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT - 1)
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_A))
    _fail(settings.LOGIN_FAILURE_LIMIT - 1)
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_A))


def test_lock_ends_after_the_cool_off(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_A))


def test_lock_holds_until_the_cool_off_has_passed(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert _login("qa", factories.PASSWORD, ip=IP_A).status_code == 429


def test_failures_of_an_unknown_username_lock_that_username_too(db: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT, "nobody")
    assert _login("nobody", WRONG, ip=IP_A).status_code == 429


def test_failure_limit_is_a_setting(qa: Any, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    _fail(2)
    assert _login("qa", factories.PASSWORD, ip=IP_A).status_code == 429


def test_each_failure_is_audited_with_username_and_address(qa: Any) -> None:
    _fail(2)
    events = AuditEvent.objects.filter(action="login.fail")
    assert events.count() == 2
    event = events.first()
    assert event.target == "qa" and event.actor is None
    assert event.data == {"username": "qa", "ip_address": IP_A}
    assert IP_A in event.actor_label


def test_lockout_is_audited(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    lockouts = AuditEvent.objects.filter(action="login.lockout")
    assert lockouts.count() == 1
    assert lockouts.get().data == {"username": "qa", "ip_address": IP_A, "cooloff_minutes": 15}
    assert AuditEvent.objects.filter(action="login.fail").count() == settings.LOGIN_FAILURE_LIMIT


def test_audit_events_never_contain_the_password(qa: Any) -> None:
    _fail(settings.LOGIN_FAILURE_LIMIT)
    _login("qa", factories.PASSWORD, ip=IP_A)  # refused, but the right password was sent
    events = list(AuditEvent.objects.filter(action__startswith="login."))
    assert len(events) > settings.LOGIN_FAILURE_LIMIT
    stored = json.dumps([[e.actor_label, e.target, e.data] for e in events])
    assert WRONG not in stored and factories.PASSWORD not in stored


def test_a_successful_login_is_not_audited_as_a_failure(qa: Any) -> None:
    assert _logged_in(_login("qa", factories.PASSWORD, ip=IP_A))
    assert not AuditEvent.objects.filter(action__startswith="login.").exists()


def test_test_client_login_works_when_given_a_request(qa: Any) -> None:
    # Axes refuses to authenticate without a request; Client.login passes its arguments on.
    assert Client().login(request=HttpRequest(), username="qa", password=factories.PASSWORD)


def _request(remote: str, forwarded: str | None = None) -> HttpRequest:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_client_ip_ignores_x_forwarded_for_without_trusted_proxies(settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 0
    assert login_throttling.client_ip(_request("10.0.0.5", "203.0.113.9")) == "10.0.0.5"


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own entry is not trusted
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.5"),  # fewer entries than proxies: the connecting address
        (1, "", "10.0.0.5"),
        (1, "not-an-address", "10.0.0.5"),
        (1, " 2001:db8::1 ", "2001:db8::1"),
    ],
)
def test_client_ip_behind_trusted_proxies(
    settings: Any, count: int, forwarded: str, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = count
    assert login_throttling.client_ip(_request("10.0.0.5", forwarded)) == expected


def test_lockout_follows_the_forwarded_address_behind_a_proxy(qa: Any, settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(password: str, client_ip: str) -> HttpResponse:
        return Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=client_ip).post(
            reverse("login"), {"username": "qa", "password": password}
        )

    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        via_proxy(WRONG, IP_A)
    assert via_proxy(factories.PASSWORD, IP_A).status_code == 429
    assert _logged_in(via_proxy(factories.PASSWORD, IP_B))
