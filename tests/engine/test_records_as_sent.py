"""`request.*` in assertions and in the stored record is what went on the wire: the final URL
after redirects, every header including the endpoint's auth, and the redirect chain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from certification.engine.masking import MASK
from certification.engine.model import EndpointConfig, RunContext, ScenarioOutcome
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite
from tests.engine.servers import partner_app, serve

LOOPBACK = AddressPolicy(["127.0.0.0/8"])
KEY = "sk_test_records-as-sent-0123456789"


def _run(steps: str) -> ScenarioOutcome:
    text = f"name: t\ntests:\n  - name: s\n    steps:\n{steps}"
    suite = parse_suite(text, filename="suite.yaml")

    async def main() -> list[ScenarioOutcome]:
        async with serve(partner_app()) as base:
            context = RunContext(
                endpoints={
                    "api": EndpointConfig(
                        name="api",
                        base_url=base,
                        auth_kind="api_key",
                        auth_config={"header_name": "X-API-Key"},
                        secrets={"api_key": KEY},
                    )
                },
                default_endpoint="api",
                secrets={"api.api_key": KEY},
            )
            return await run_suite(suite, context, policy=LOOPBACK)

    (outcome,) = asyncio.run(main())
    return outcome


def _assert(path: str, operator: str, value: Any) -> str:
    return (
        f"              - {{path: {json.dumps(path)}, operator: {operator}, "
        f"value: {json.dumps(value)}}}\n"
    )


def test_assertions_see_the_auth_header_that_was_sent() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: /echo}\n"
        "        assertions:\n          - assertions:\n"
        + _assert("request.headers.X-API-Key", "eq", "{{secret.api.api_key}}")
    )
    step = outcome.steps[0]
    assert step.status == "passed", step.assertions
    assert step.request.headers["X-API-Key"] == MASK  # stored masked
    assert KEY not in json.dumps(outcome.to_dict(), default=str)


def test_request_url_is_the_final_hop_after_redirects() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: '/redirect?to=/echo/final'}\n"
        "        assertions:\n          - assertions:\n"
        + _assert("request.url", "matches", "/echo/final$")
        + _assert("response.redirects[0].status", "eq", 302)
    )
    step = outcome.steps[0]
    assert step.status == "passed", step.assertions
    assert step.request.url.endswith("/echo/final")
    (hop,) = step.response.redirects
    assert hop.status == 302 and hop.url.endswith("/redirect?to=/echo/final")


def test_a_request_without_redirects_has_an_empty_chain() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: /echo}\n"
        "        assertions:\n          - assertions:\n"
        + _assert("response.redirects", "length", 0)
    )
    assert outcome.steps[0].status == "passed", outcome.steps[0].assertions
    assert outcome.steps[0].response.redirects == []


def test_a_match_group_is_not_evaluated_and_never_passes() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: /echo}\n"
        "        assertions:\n"
        "          - assertions:\n" + _assert("response.status", "eq", 200) + "          - match:\n"
        "              origin: api\n              method: POST\n"
        "              url: api.stripe.com\n"
        "            assertions:\n" + _assert("request.body.amount", "eq", 2498)
    )
    step = outcome.steps[0]
    assert (step.status, outcome.status) == ("unevaluated", "unevaluated")
    plain, deferred = step.assertions
    assert plain.passed and plain.evaluated
    assert not deferred.passed and not deferred.evaluated
    assert deferred.message.startswith("not evaluated")


def test_a_failed_check_outranks_an_unevaluated_one() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: /echo}\n"
        "        assertions:\n"
        "          - assertions:\n" + _assert("response.status", "eq", 201) + "          - match:\n"
        "              url: api.stripe.com\n"
        "            assertions:\n" + _assert("request.body.amount", "eq", 2498)
    )
    assert outcome.steps[0].status == "failed"


def test_credential_header_values_are_not_recorded_in_assertion_results() -> None:
    outcome = _run(
        "      - action: {type: httpRequest, method: GET, url: /echo}\n"
        "        extract: {sent: request.headers.X-API-Key,\n"
        "                  echoed: response.body.headers.X-Api-Key}\n"
        "        assertions:\n          - assertions:\n"
        + _assert("request.headers.X-API-Key", "eq", "{{secret.api.api_key}}")
        + _assert("response.body.headers.X-Api-Key", "eq", "wrong")
    )
    step = outcome.steps[0]
    sent, echoed = step.assertions
    assert sent.passed and sent.actual == MASK
    assert not echoed.passed and (echoed.actual, echoed.expected) == (MASK, MASK)
    assert "wrong" not in echoed.message
    assert step.extracted == {"sent": MASK, "echoed": MASK}
