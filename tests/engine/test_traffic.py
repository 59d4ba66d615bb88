"""Captured traffic in the engine: which hosted mock answers, which recorded requests a
``match`` selects, and how ``count`` and per-request assertions are judged (a fake recorder:
the real one is in tests/certification/test_hosted_mocks.py)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import pytest

from certification.engine.model import Mock, RunContext, ScenarioOutcome
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import SuiteInvalid, parse_suite
from certification.engine.traffic import parse_body, path_matches, select_mock, url_matches


def _mock(name: str, path: str = "/v1/charges", **kw: Any) -> Mock:
    return Mock(name=name, target="api.stripe.com", path=path, **kw)


def test_a_mock_with_a_matching_body_condition_wins_over_the_fallback() -> None:
    mocks = [
        _mock("fallback"),
        _mock("declined", body_contains="PM_CARD_DECLINED"),
        _mock("big", body_matches=r'"amount":\s*9\d{3}'),
    ]
    assert select_mock(mocks, "api.stripe.com", "/v1/charges", "pm_card_declined").name == (
        "declined"
    )  # contains is case-insensitive
    assert select_mock(mocks, "API.stripe.com", "/v1/charges", '{"amount": 9000}').name == "big"
    assert select_mock(mocks, "api.stripe.com", "/v1/charges", '{"amount": 10}').name == (
        "fallback"
    )


def test_without_a_fallback_an_unmatched_body_gets_no_mock() -> None:
    mocks = [_mock("declined", body_contains="declined")]
    assert select_mock(mocks, "api.stripe.com", "/v1/charges", "visa") is None


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/2010-04-01/Accounts/*/Messages.json", "/2010-04-01/Accounts/AC123/Messages.json", True),
        ("/2010-04-01/Accounts/*/Messages.json", "/2010-04-01/Accounts/A/B/Messages.json", False),
        ("/v1/**", "/v1/a/b/c", True),
        ("/v1/charges", "/v1/charges/", True),
        ("/v1/charges", "/v1/chargesX", False),
        ("/v1/ch*", "/v1/charges", True),
        ("/v1/charges.json", "/v1/chargesxjson", False),  # a dot is a dot
    ],
)
def test_mock_paths_match_with_wildcards(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern, path) is matches


@pytest.mark.parametrize(
    ("prefix", "url", "matches"),
    [
        ("api.twilio.com", "api.twilio.com/2010-04-01/Accounts/AC1/Messages.json", True),
        ("api.stripe.com/v1/charges", "api.stripe.com/v1/charges?expand=x", True),
        ("api.stripe.com/v1/charges", "api.stripe.com/v1/charges/ch_1", True),
        ("api.stripe.com/v1/charges", "api.stripe.com/v1/chargesX", False),
        ("api.stripe.com", "api.stripe.com.example.org/v1", False),
        ("https://api.stripe.com/v1", "api.stripe.com/v1/charges", True),
    ],
)
def test_match_urls_are_prefixes_on_boundaries(prefix: str, url: str, matches: bool) -> None:
    assert url_matches(prefix, url) is matches


def test_form_bodies_are_read_as_fields() -> None:
    body = parse_body("To=%2B15551234567&Body=hi&Body=again", "application/x-www-form-urlencoded")
    assert body == {"To": "+15551234567", "Body": ["hi", "again"]}


def _record(**kw: Any) -> dict[str, Any]:
    base = {
        "id": 1,
        "source": "mock",
        "origin": "payment-service",
        "method": "POST",
        "url": "api.stripe.com/v1/charges",
        "request": {"headers": {}, "body": {"amount": 2498, "currency": "usd"}},
        "response": {"status": 200, "headers": {}, "body": {"id": "ch_1"}},
        "signature": {"valid": None, "reason": ""},
        "replayed": False,
        "receivedAt": "2026-12-03T08:00:00.000Z",
    }
    base.update(kw)
    return base


SUITE = """
name: t
tests:
  - name: s
    steps:
      - action: {type: wait, ms: 0}
        settleMs: 0
        assertions:
          - match: {origin: payment-service, method: POST, url: api.stripe.com/v1/charges}
            assertions:
              - {path: request.body.amount, operator: eq, value: 2498}
          - match: {url: api.easypost.com}
            count: {operator: eq, value: 0}
"""


def _run(records: list[dict[str, Any]], total: int | None = None, text: str = SUITE) -> Any:
    async def source(since: str, until: str) -> tuple[list[dict[str, Any]], int]:
        return records, len(records) if total is None else total

    suite = parse_suite(text.replace("wait, ms: 0}", "wait, ms: 0}"), filename="s.yaml")
    context = RunContext(endpoints={}, traffic=source)
    [outcome] = asyncio.run(run_suite(suite, context, policy=AddressPolicy([])))
    return outcome


def test_match_and_count_pass_on_the_traffic_that_was_captured() -> None:
    outcome: ScenarioOutcome = _run([_record()])
    step = outcome.steps[0]
    assert step.status == "passed", [a.message for a in step.assertions]
    assert [g["requests"][0]["url"] for g in step.traffic if g["requests"]] == [
        "api.stripe.com/v1/charges"
    ]


def test_a_wrong_amount_fails_naming_the_request() -> None:
    step = _run([_record(request={"headers": {}, "body": {"amount": 999}})]).steps[0]
    assert step.status == "failed"
    failed = [a for a in step.assertions if not a.passed]
    assert failed[0].message.startswith("request 1 of 1 (POST api.stripe.com/v1/charges)")


def test_a_match_with_no_request_fails_and_its_assertions_are_not_evaluated() -> None:
    step = _run([_record(url="api.sendgrid.com/v3/mail/send")]).steps[0]
    assert step.status == "failed"
    assert any(
        a.path == "match" and not a.passed and "no request" in a.message for a in step.assertions
    )
    assert any(a.path == "request.body.amount" and not a.evaluated for a in step.assertions)


def test_count_zero_with_no_traffic_at_all_in_the_run_is_not_evaluated() -> None:
    text = SUITE.split("          - match: {origin")[0] + (
        "          - match: {url: api.easypost.com}\n            count: {operator: eq, value: 0}\n"
    )
    step = _run([], total=0, text=text).steps[0]
    assert step.status == "unevaluated"
    assert "cannot be told" in step.assertions[0].message


def test_count_zero_passes_when_the_run_captured_other_traffic() -> None:
    text = SUITE.split("          - match: {origin")[0] + (
        "          - match: {url: api.easypost.com}\n            count: {operator: eq, value: 0}\n"
    )
    step = _run([], total=3, text=text).steps[0]
    assert step.status == "passed"


def test_without_a_recorder_match_groups_are_not_evaluated() -> None:
    suite = parse_suite(SUITE, filename="s.yaml")
    [outcome] = asyncio.run(run_suite(suite, RunContext(endpoints={}), policy=AddressPolicy([])))
    assert outcome.steps[0].status == "unevaluated"


def test_wait_for_request_times_out_with_what_it_waited_for() -> None:
    text = """
name: t
tests:
  - name: s
    steps:
      - action:
          type: waitForRequest
          match: {method: POST, url: inbox/orders}
          timeoutMs: 50
          intervalMs: 10
"""
    step = _run([], text=text).steps[0]
    assert step.status == "failed"
    assert step.failure is not None and step.failure.kind == "timeout"
    assert "no request POST inbox/orders arrived within 50 ms" in step.failure.message


def test_wait_for_request_takes_the_matching_request_as_its_result() -> None:
    text = """
name: t
tests:
  - name: s
    steps:
      - action: {type: waitForRequest, match: {url: inbox/orders}, timeoutMs: 1000}
        assertions:
          - assertions:
              - {path: signature.valid, operator: eq, value: true}
              - {path: replayed, operator: eq, value: false}
"""
    record = _record(source="inbox", url="inbox/orders", signature={"valid": True, "reason": ""})
    step = _run([record], text=text).steps[0]
    assert step.status == "passed", [a.message for a in step.assertions]


def test_scenarios_that_check_traffic_take_turns_and_the_rest_run_beside_them() -> None:
    traffic = """
  - name: traffic {i}
    steps:
      - action: {{type: wait, ms: 30}}
        settleMs: 0
        assertions:
          - match: {{url: api.stripe.com}}
            count: {{operator: gte, value: 0}}
"""
    plain = """
  - name: plain {i}
    steps:
      - action: {{type: wait, ms: 30}}
"""
    text = "name: t\ntests:" + "".join(traffic.format(i=i) + plain.format(i=i) for i in range(3))

    async def source(since: str, until: str) -> tuple[list[dict[str, Any]], int]:
        return [], 1

    suite = parse_suite(text, filename="s.yaml")
    context = RunContext(endpoints={}, traffic=source)
    outcomes = asyncio.run(run_suite(suite, context, policy=AddressPolicy([]), parallel=6))
    assert all(o.status == "passed" for o in outcomes)

    def starts(kind: str) -> list[datetime]:
        return sorted(
            datetime.fromisoformat(o.steps[0].started_at) for o in outcomes if kind in o.name
        )

    turns = starts("traffic")
    gaps = [(b - a).total_seconds() for a, b in zip(turns, turns[1:], strict=False)]
    assert all(gap >= 0.025 for gap in gaps), gaps  # one after another's 30 ms step
    together = starts("plain")
    assert (together[-1] - together[0]).total_seconds() < 0.025  # all at once, beside them


def test_a_second_wait_for_request_waits_for_another_request() -> None:
    text = """
name: t
tests:
  - name: s
    steps:
      - action: {type: waitForRequest, match: {url: inbox/orders}, timeoutMs: 100, intervalMs: 10}
      - action: {type: waitForRequest, match: {url: inbox/orders}, timeoutMs: 100, intervalMs: 10}
"""
    first, second = _run([_record(source="inbox", url="inbox/orders")], text=text).steps
    assert first.status == "passed"
    assert second.status == "failed" and second.failure.kind == "timeout"


def test_a_masked_recorded_value_is_not_evaluated_whichever_way_the_check_goes() -> None:
    text = SUITE.split("          - match: {origin")[0] + (
        "          - match: {url: api.stripe.com}\n"
        "            assertions:\n"
        "              - {path: request.body.key, operator: notContains, value: sk_live}\n"
        "              - {path: request.body.key, operator: exists}\n"
    )
    record = _record(request={"headers": {}, "body": {"key": "••••••"}})
    step = _run([record], text=text).steps[0]
    assert step.status == "unevaluated"
    contains, exists = step.assertions
    assert not contains.evaluated and "masked" in contains.message
    assert exists.passed


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ("{path: request.headers.Authorization, operator: notContains, value: sk}",
         "only 'exists' or 'notExists' can check it"),
        ('{path: request.body.key, operator: neq, value: "{{secret.api.token}}"}',
         "cannot be compared with {{secret...}}"),
    ],
)  # fmt: skip
def test_comparisons_that_masking_makes_impossible_are_refused_when_read(
    assertion: str, message: str
) -> None:
    text = SUITE.split("          - match: {origin")[0] + (
        f"          - match: {{url: api.stripe.com}}\n            assertions:\n"
        f"              - {assertion}\n"
    )
    with pytest.raises(SuiteInvalid, match=re.escape(message)):
        parse_suite(text, filename="s.yaml")


def test_a_match_value_that_templates_to_nothing_is_an_error() -> None:
    text = """
name: t
variables: {svc: ""}
tests:
  - name: s
    steps:
      - action: {type: wait, ms: 0}
        settleMs: 0
        assertions:
          - match: {origin: "{{svc}}"}
            count: {operator: gte, value: 1}
"""
    step = _run([_record(origin="")], text=text).steps[0]
    assert step.status == "error"
    assert "match.origin is empty after templating" in step.failure.message
