"""Walks every URL pattern of the project as a user of partner A, filling each URL parameter with
partner B's objects. A view that forgets partner scoping makes this test fail; a new URL
parameter must be taught to ``B_VALUES`` before the test passes again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from certification import runs, suites
from certification.models import Run
from partners.models import Endpoint, Partner
from tests import factories


@dataclass(frozen=True)
class Route:
    name: str
    kwargs: tuple[str, ...]


def _walk(patterns: list[Any], namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            if ns == "admin":
                continue  # Django's own; closed to partner users as a whole (tested below)
            yield from _walk(entry.url_patterns, f"{namespace}{ns}:" if ns else namespace)
        elif isinstance(entry, URLPattern):
            assert entry.name, f"URL pattern {entry.pattern} has no name; name it"
            kwargs = tuple(entry.pattern.converters) or tuple(entry.pattern.regex.groupindex)
            yield Route(f"{namespace}{entry.name}", kwargs)


ROUTES = list(_walk(get_resolver().url_patterns))


def _certification_b(partner: Partner, run: Run) -> Any:
    from django.utils import timezone

    from evidence.models import Certification

    certification, _ = Certification.objects.get_or_create(
        partner=partner,
        scope="b-scope",
        defaults={"title": "B", "suite_names": [run.suite.name], "created_at": timezone.now()},
    )
    return certification


def _waiver_b(partner: Partner, run: Run) -> str:
    from django.utils import timezone

    from evidence.models import Waiver

    return str(
        Waiver.objects.create(
            certification=_certification_b(partner, run), item_kind="suite", item_key="s",
            item_label="s", reason="r", ends_on=timezone.now().date(),
            requested_by=factories.qa_lead("qa-b"), requested_at=timezone.now(),
        ).pk
    )  # fmt: skip


def _suite_b(partner: Partner, run: Run) -> str:
    _certification_b(partner, run)  # names the suite: it is assigned to partner B only
    return str(run.suite_id)


def _bundle_b(partner: Partner, run: Run) -> str:
    from django.utils import timezone

    from evidence.models import EvidenceBundle

    return str(
        EvidenceBundle.objects.create(partner=partner, run=run, requested_at=timezone.now()).pk
    )


# How to point each URL parameter at partner B's objects.
B_VALUES: dict[str, Callable[[Partner, Endpoint, Run], str]] = {
    "partner_id": lambda partner, endpoint, run: partner.external_id,
    "endpoint_id": lambda partner, endpoint, run: str(endpoint.pk),
    "run_id": lambda partner, endpoint, run: str(run.pk),
    "fmt": lambda partner, endpoint, run: "json",
    "schedule_id": lambda partner, endpoint, run: str(
        runs.schedule_save(partner=partner, suite_name=run.suite.name, every_days=7, by="test").pk
    ),
    "certification_id": lambda partner, endpoint, run: str(_certification_b(partner, run).pk),
    "waiver_id": lambda partner, endpoint, run: _waiver_b(partner, run),
    "key": lambda partner, endpoint, run: "auth",
    "bundle_id": lambda partner, endpoint, run: _bundle_b(partner, run),
    "scope": lambda partner, endpoint, run: _certification_b(partner, run).scope,
    "suite_id": lambda partner, endpoint, run: _suite_b(partner, run),
}
# Public on purpose, for deploy pipelines and embedded badges: the go-live answer of any
# partner's scope (tests/evidence/test_certification_views.py checks what it says).
# The go-live answer, and the URLs partners' sandboxes call without a session: the hosted
# mocks, the webhook inbox and the AS2 receiver, addressed by the partner's unguessable token
# (which is the scoping: a session plays no part; a delivery's or an AS2 message's signature
# is its credential).
PUBLIC_BY_DESIGN = {
    "evidence:go_live", "evidence:go_live_badge", "hosted-mock", "webhook-inbox", "as2-inbound",
}  # fmt: skip
# Parameters naming objects shared by all partners: such URLs must answer, but show nothing of
# partner B. None today: suites are seen by a partner's users only once assigned to it.
GLOBAL_VALUES: dict[str, Callable[[Run], str]] = {}


@pytest.fixture
def run_b(partner_b: Partner, endpoint_b: Endpoint, tmp_path: Any) -> Run:
    suite, _ = suites.suite_store(
        entry="s.yaml",
        sources={"s.yaml": "name: s\ntests:\n  - name: a\n    steps:\n"
                 "      - action: {type: wait, ms: 1}\n"},
        by="test",
    )  # fmt: skip
    return runs.run_create(partner=partner_b, suite=suite, by="test")


@pytest.fixture
def client_of_a(partner_a: Partner) -> Callable[[], Client]:
    user = factories.partner_user(partner_a)

    def fresh() -> Client:
        client = Client()
        client.force_login(user)  # again for each request: /logout/ ends the session
        return client

    return fresh


def _markers(partner: Partner, endpoint: Endpoint) -> list[str]:
    return [partner.name, partner.external_id, endpoint.base_url, str(endpoint.pk)]


def _is_global(route: Route) -> bool:
    return bool(route.kwargs) and all(k in GLOBAL_VALUES for k in route.kwargs)


def test_every_project_url_is_walked() -> None:
    names = {r.name for r in ROUTES}
    assert {"partners:list", "partners:detail", "partners:endpoint_edit"} <= names


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.kwargs and not _is_global(r) and r.name not in PUBLIC_BY_DESIGN],
    ids=lambda r: r.name,
)
def test_url_with_partner_b_objects_is_404_for_partner_a(
    route: Route,
    client_of_a: Callable[[], Client],
    partner_b: Partner,
    endpoint_b: Endpoint,
    run_b: Run,
) -> None:
    unknown = [k for k in route.kwargs if k not in B_VALUES]
    assert not unknown, f"{route.name} takes {unknown}: add partner B's value to B_VALUES"
    kwargs = {k: B_VALUES[k](partner_b, endpoint_b, run_b) for k in route.kwargs}
    url = reverse(route.name, kwargs=kwargs)
    statuses = {
        "GET": client_of_a().get(url).status_code,
        "POST": client_of_a().post(url, {"name": "x", "base_url": "http://127.0.0.1/"}).status_code,
    }
    assert set(statuses.values()) <= {404, 405}, f"{url} answered {statuses} to partner A"
    assert 404 in statuses.values(), f"{url} answered {statuses} to partner A"
    endpoint_b.refresh_from_db()
    assert endpoint_b.name == "bravo-api"
    run_b.refresh_from_db()
    assert run_b.status == "queued"


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if not r.kwargs or _is_global(r)], ids=lambda r: r.name
)
def test_url_without_partner_objects_shows_partner_a_nothing_of_partner_b(
    route: Route,
    client_of_a: Callable[[], Client],
    partner_b: Partner,
    endpoint_b: Endpoint,
    run_b: Run,
) -> None:
    url = reverse(route.name, kwargs={k: GLOBAL_VALUES[k](run_b) for k in route.kwargs})
    for method in ("get", "post"):
        response = getattr(client_of_a(), method)(url, follow=True)
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        body = raw.decode(errors="replace")
        leaked = [m for m in _markers(partner_b, endpoint_b) if m in body]
        assert not leaked, f"{method.upper()} {url} shows partner B's {leaked} to partner A"
    assert Partner.objects.filter(pk=partner_b.pk).exists()


def test_admin_is_closed_to_partner_users(
    client_of_a: Callable[[], Client], partner_b: Partner
) -> None:
    response = client_of_a().get(reverse("admin:partners_partner_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
