"""A run whose suite addresses endpoints the partner lacks is refused before it starts, naming
them; the endpoints a suite needs are read the way the runner resolves URLs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from certification import runs, suites
from certification.engine.runner import endpoints_needed
from certification.models import Run
from partners import services
from partners.models import Partner

SUITE = """\
name: needs
tests:
  - name: a
    steps:
      - action: {type: httpRequest, method: GET, url: orders/v1/orders}
      - action: {type: httpRequest, method: GET, url: "payments/{{orderId}}"}
      - action: {type: httpRequest, method: GET, url: "{{callbackBase}}/x"}
      - action: {type: httpRequest, method: GET, url: "https://api.example.com/x"}
      - action: {type: latencyProbe, method: GET, url: health/ping, requests: 1, concurrency: 1}
      - action: {type: dbQuery, database: shopdb, query: "select 1"}
"""
RELATIVE = (
    "name: relative\ntests:\n  - name: a\n    steps:\n"
    "      - action: {type: httpRequest, method: GET, url: /health}\n"
)


def _stored(text: str, entry: str = "s.yaml") -> Any:
    suite, _ = suites.suite_store(entry=entry, sources={entry: text}, by="t")
    return suite


def _endpoint(partner: Partner, name: str, *, default: bool = False) -> None:
    services.endpoint_save(
        partner=partner, by="t", name=name, base_url="http://127.0.0.1:9/x", is_default=default,
        auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip


def test_the_needed_endpoints_are_the_named_ones_not_templates_or_absolute_urls(db: Any) -> None:
    from certification.suites import suite_of

    names, needs_default = endpoints_needed(suite_of(_stored(SUITE)))
    assert names == {"orders", "payments", "health", "shopdb"} and needs_default is False


def test_a_run_missing_endpoints_is_refused_naming_them_and_nothing_is_created(
    partner_a: Partner,
) -> None:
    _endpoint(partner_a, "orders")
    with pytest.raises(runs.RunInputError) as caught:
        runs.run_create(partner=partner_a, suite=_stored(SUITE), by="t")
    message = str(caught.value)
    assert "needs endpoints health, payments, shopdb, which p_a01 does not have" in message
    assert "(its endpoints: orders)" in message
    assert not Run.objects.exists()


def test_a_relative_url_needs_a_default_endpoint(partner_a: Partner) -> None:
    _endpoint(partner_a, "api")
    with pytest.raises(runs.RunInputError, match="has no default endpoint"):
        runs.run_create(partner=partner_a, suite=_stored(RELATIVE, "r.yaml"), by="t")
    _endpoint(partner_a, "gw", default=True)
    assert runs.run_create(partner=partner_a, suite=_stored(RELATIVE, "r.yaml"), by="t").pk


def test_an_endpoint_override_provides_the_missing_endpoint(partner_a: Partner) -> None:
    for name in ("orders", "payments", "health"):
        _endpoint(partner_a, name)
    run = runs.run_create(
        partner=partner_a, suite=_stored(SUITE), by="t",
        endpoint_overrides={"shopdb": "postgres://reader@127.0.0.1:5432/shop"},
    )  # fmt: skip
    assert "shopdb" in run.endpoints


def test_the_run_button_explains_what_is_missing(qa_client: Client, partner_a: Partner) -> None:
    _endpoint(partner_a, "orders", default=True)
    suite = _stored(SUITE)
    response = qa_client.post(
        reverse("certification:run_start", args=[partner_a.external_id]),
        {"suite": suite.pk},
        follow=True,
    )
    assert "needs endpoints health, payments, shopdb" in response.content.decode()
    assert not Run.objects.exists()
