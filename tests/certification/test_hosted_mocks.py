"""Hosted mocks over real HTTP (Django's live server on 127.0.0.1, PostgreSQL): which mock
answers, wildcards, delays, the 404 listing, what is recorded, and a run whose ``match``
groups are judged on the traffic recorded while it ran."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from django.core.management import call_command

from certification.models import CapturedRequest, Run, StepResult
from certification.runs import run_create
from certification.suites import suite_store
from partners import services
from partners.models import Partner

pytestmark = pytest.mark.django_db(transaction=True)

MOCKS = """
name: mocks
items:
  - type: MOCK
    name: stripe-ok
    mockTarget: api.stripe.com
    mockPath: /v1/charges
    mockResponseStatus: 200
    mockResponseBody: {id: ch_ok, status: succeeded}
  - type: MOCK
    name: stripe-declined
    mockTarget: api.stripe.com
    mockPath: /v1/charges
    mockRequestBodyContains: PM_CARD_DECLINED
    mockResponseStatus: 402
    mockResponseBody: {error: {code: card_declined}}
  - type: MOCK
    name: stripe-big
    mockTarget: api.stripe.com
    mockPath: /v1/charges
    mockRequestBodyMatches: '"amount":\\s*9\\d{4}'
    mockResponseStatus: 400
    mockResponseBody: {error: {code: amount_too_large}}
  - type: MOCK
    name: twilio
    mockTarget: api.twilio.com
    mockPath: /2010-04-01/Accounts/*/Messages.json
    mockResponseStatus: 201
    mockResponseHeaders: {content-type: application/json}
    mockResponseBody: {sid: SM1}
  - type: MOCK
    name: slow
    mockTarget: slow.example
    mockPath: /wait
    mockDelayMs: 150
  - type: MOCK
    name: quick
    mockTarget: slow.example
    mockPath: /now
tests:
  - name: noop
    steps:
      - action: {type: wait, ms: 0}
"""

HTTP = urllib3.PoolManager(retries=False)


def _running_run(partner: Partner, text: str = MOCKS, token: str = "") -> Run:
    suite, _ = suite_store(entry="suite.yaml", sources={"suite.yaml": text}, by=None)
    services.endpoint_save(
        partner=partner, by="test", name="api", base_url="http://127.0.0.1:9",
        is_default=True, auth_kind="bearer" if token else "none", auth_config={},
        new_secrets={"token": token} if token else {},
    )  # fmt: skip
    run = run_create(partner=partner, suite=suite, by=None)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, started_at=run.created_at)
    return run


def _post(url: str, body: Any, **headers: str) -> urllib3.BaseHTTPResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTP.request(
        "POST", url, body=data, headers={"Content-Type": "application/json", **headers}
    )


def _base(live_server: Any, partner: Partner) -> str:
    return f"{live_server.url}/mock/{partner.public_token}"


def test_a_body_condition_picks_its_mock_and_the_fallback_answers_the_rest(
    live_server: Any, partner_a: Partner
) -> None:
    _running_run(partner_a)
    url = _base(live_server, partner_a) + "/api.stripe.com/v1/charges"
    declined = _post(url, {"amount": 2498, "payment_method": "pm_card_declined"})
    big = _post(url, {"amount": 95000})
    fine = _post(url, {"amount": 2498, "payment_method": "pm_card_visa"})
    assert (declined.status, big.status, fine.status) == (402, 400, 200)
    assert fine.json() == {"id": "ch_ok", "status": "succeeded"}
    names = list(CapturedRequest.objects.order_by("id").values_list("name", flat=True))
    assert names == ["stripe-declined", "stripe-big", "stripe-ok"]


def test_a_wildcard_path_matches_any_account_sid(live_server: Any, partner_a: Partner) -> None:
    _running_run(partner_a)
    base = _base(live_server, partner_a) + "/api.twilio.com/2010-04-01/Accounts"
    response = HTTP.request(
        "POST",
        f"{base}/AC0123/Messages.json",
        body="To=%2B15551234567&Body=hello",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Origin": "notify"},
    )
    assert response.status == 201 and response.json() == {"sid": "SM1"}
    assert HTTP.request("POST", f"{base}/AC0123/Calls.json").status == 404
    row = CapturedRequest.objects.get(name="twilio")
    assert (row.origin, row.method, row.url) == (
        "notify",
        "POST",
        "api.twilio.com/2010-04-01/Accounts/AC0123/Messages.json",
    )


def test_without_x_origin_the_origin_is_the_endpoint_at_the_callers_address(
    live_server: Any, partner_a: Partner
) -> None:
    _running_run(partner_a)  # its one endpoint, "api", is at 127.0.0.1
    _post(_base(live_server, partner_a) + "/api.stripe.com/v1/charges", {"amount": 1})
    assert CapturedRequest.objects.get().origin == "api"


def test_an_unmatched_request_gets_a_404_listing_the_mocks_and_is_recorded(
    live_server: Any, partner_a: Partner
) -> None:
    run = _running_run(partner_a)
    response = _post(_base(live_server, partner_a) + "/api.easypost.com/v2/shipments", {})
    assert response.status == 404
    payload = response.json()
    assert payload["error"] == "no hosted mock matches POST api.easypost.com/v2/shipments"
    assert payload["run"] == run.pk
    assert {"name": "twilio", "target": "api.twilio.com",
            "path": "/2010-04-01/Accounts/*/Messages.json"} in payload["mocks"]  # fmt: skip
    row = CapturedRequest.objects.get()
    assert (row.run_id, row.response_status, row.name) == (run.pk, 404, "")


def test_without_a_running_run_no_mock_answers(live_server: Any, partner_a: Partner) -> None:
    response = _post(_base(live_server, partner_a) + "/api.stripe.com/v1/charges", {})
    assert response.status == 404
    assert "no run is running" in response.json()["error"]


def test_an_unknown_token_is_404_and_records_nothing(live_server: Any, partner_a: Partner) -> None:
    assert _post(f"{live_server.url}/mock/not-a-token/api.stripe.com/v1/charges", {}).status == 404
    assert not CapturedRequest.objects.exists()


def test_mock_delay_is_honoured_within_10_ms(live_server: Any, partner_a: Partner) -> None:
    _running_run(partner_a)
    base = _base(live_server, partner_a) + "/slow.example"

    def timed(path: str) -> float:
        started = time.perf_counter()
        assert HTTP.request("GET", base + path).status == 200
        return (time.perf_counter() - started) * 1000

    timed("/now")  # warm up the connection and the parsed suite
    baseline = statistics.median(timed("/now") for _ in range(9))
    delayed = statistics.median(timed("/wait") for _ in range(9))
    assert abs((delayed - baseline) - 150) <= 10, (baseline, delayed)


def test_an_oversized_body_is_refused_with_413(
    live_server: Any, partner_a: Partner, settings: Any
) -> None:
    _running_run(partner_a)
    settings.MOCK_MAX_BYTES = 1000
    response = _post(_base(live_server, partner_a) + "/api.stripe.com/v1/charges", b"x" * 2000)
    assert response.status == 413
    assert not CapturedRequest.objects.exists()


def test_secrets_the_sandbox_sends_are_masked_in_the_record(
    live_server: Any, partner_a: Partner
) -> None:
    _running_run(partner_a, token="tok-SECRET-1234567890")
    _post(
        _base(live_server, partner_a) + "/api.stripe.com/v1/charges",
        {"echo": "tok-SECRET-1234567890"},
        Authorization="Bearer tok-SECRET-1234567890",
    )
    row = CapturedRequest.objects.get()
    stored = json.dumps([row.request_headers, row.request_body])
    assert "tok-SECRET" not in stored
    assert row.request_body_size == len(json.dumps({"echo": "tok-SECRET-1234567890"}))


MATCHING_SUITE = """
name: traffic
items:
  - type: MOCK
    name: stripe
    mockTarget: api.stripe.com
    mockPath: /v1/charges
    mockResponseBody: {id: ch_1}
tests:
  - name: the partner charged Stripe the right amount, and sent no email
    steps:
      - name: the sandbox calls Stripe (played by this step)
        action:
          type: httpRequest
          method: POST
          url: mocks/api.stripe.com/v1/charges
          headers: {X-Origin: payment-service}
          body: {amount: 2498, currency: usd}
        settleMs: 100
        assertions:
          - match: {origin: payment-service, method: POST, url: api.stripe.com/v1/charges}
            count: {operator: eq, value: 1}
            assertions:
              - {path: request.body.amount, operator: eq, value: 2498}
              - {path: response.body.id, operator: eq, value: ch_1}
          - match: {url: api.sendgrid.com}
            count: {operator: eq, value: 0}
  - name: a wrong amount fails
    steps:
      - action:
          type: httpRequest
          method: POST
          url: mocks/api.stripe.com/v1/charges
          headers: {X-Origin: payment-service}
          body: {amount: 999, currency: usd}
        settleMs: 100
        assertions:
          - match: {url: api.stripe.com/v1/charges}
            assertions:
              - {path: request.body.amount, operator: eq, value: 2498}
"""


def test_a_run_judges_match_groups_on_the_traffic_recorded_while_it_ran(
    live_server: Any, partner_a: Partner, tmp_path: Path
) -> None:
    services.endpoint_save(
        partner=partner_a, by="test", name="mocks",
        base_url=f"{live_server.url}/mock/{partner_a.public_token}",
        is_default=True, auth_kind="none", auth_config={}, new_secrets={},
    )  # fmt: skip
    path = tmp_path / "suite.yaml"
    path.write_text(MATCHING_SUITE)
    with pytest.raises(SystemExit):
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(path),
                     "--inline")  # fmt: skip
    run = Run.objects.get()
    first, second = StepResult.objects.order_by("scenario_run__index")
    assert first.status == "passed", first.assertions
    assert [a["path"] for a in first.assertions] == [
        "count", "request.body.amount", "response.body.id", "count",
    ]  # fmt: skip
    assert first.traffic[0]["requests"][0]["url"] == "api.stripe.com/v1/charges"
    assert second.status == "failed"
    assert second.assertions[0]["message"].startswith("request 1 of 1 (POST api.stripe.com")
    assert run.captured_requests.count() == 2
    assert run.status == "failed"


def test_a_body_with_a_nul_byte_is_recorded_as_binary_not_a_server_error(
    live_server: Any, partner_a: Partner
) -> None:
    _running_run(partner_a)
    response = _post(
        _base(live_server, partner_a) + "/api.stripe.com/v1/charges%00x", b'{"a":"\x00"}'
    )
    assert response.status in (200, 404)
    row = CapturedRequest.objects.get()
    assert row.request_body.startswith("base64:") and "%00" in row.url


def test_a_content_length_that_is_no_number_gets_400(live_server: Any, partner_a: Partner) -> None:
    from django.test import Client

    _running_run(partner_a)
    response = Client(HTTP_HOST="127.0.0.1").generic(
        "POST", f"/mock/{partner_a.public_token}/api.stripe.com/v1/charges", b"{}",
        CONTENT_LENGTH="ten",
    )  # fmt: skip
    assert response.status_code == 400


def test_a_chunked_body_is_read_where_the_server_hands_it_over_and_refused_where_not(
    partner_a: Partner,
) -> None:
    import io

    from django.test import RequestFactory

    from certification.traffic_views import hosted_mock

    _running_run(partner_a)
    factory = RequestFactory(HTTP_HOST="127.0.0.1")
    body = b'{"amount":2498,"payment_method":"pm_card_declined"}'
    request = factory.generic("POST", "/mock/t/api.stripe.com/v1/charges", b"",
                              HTTP_TRANSFER_ENCODING="chunked")  # fmt: skip
    request.META.pop("CONTENT_LENGTH", None)
    assert hosted_mock(
        request, partner_a.public_token, "api.stripe.com/v1/charges"
    ).status_code == (411)
    request = factory.generic("POST", "/mock/t/api.stripe.com/v1/charges", b"",
                              HTTP_TRANSFER_ENCODING="chunked")  # fmt: skip
    request.META.pop("CONTENT_LENGTH", None)
    request.META["wsgi.input_terminated"] = True
    request.META["wsgi.input"] = io.BytesIO(body)
    response = hosted_mock(request, partner_a.public_token, "api.stripe.com/v1/charges")
    assert response.status_code == 402  # the body reached the body-matching mock
    assert CapturedRequest.objects.get(name="stripe-declined").request_body_size == len(body)


def test_a_delayed_mock_is_counted_while_it_is_still_waiting(
    live_server: Any, partner_a: Partner
) -> None:
    import threading

    _running_run(partner_a)
    url = _base(live_server, partner_a) + "/slow.example/wait"
    thread = threading.Thread(target=lambda: HTTP.request("GET", url))
    thread.start()
    deadline = time.monotonic() + 5
    while not CapturedRequest.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    row = CapturedRequest.objects.get()
    assert row.response_status == 0  # recorded, answer pending
    thread.join()
    row.refresh_from_db()
    assert row.response_status == 200 and row.duration_ms >= 150
