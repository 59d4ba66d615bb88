"""Outbound webhooks against real HTTP servers on 127.0.0.1: the retry schedule (503 twice,
then 200; Retry-After; giving up), a fresh signature per attempt that the receiver verifies,
and the negative options (tamper, stale, replay) seen by the demo sandbox."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from certification.engine.model import EndpointConfig, RunContext, WebhookSigner
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.signatures import verify
from certification.engine.spec import SuiteInvalid, load_suite_file, parse_suite
from certification.engine.webhooks import RetryRule, backoff_ms, retry_after_ms

POLICY = AddressPolicy(["127.0.0.0/8"])
SECRET = "whsec_demo"


class Flaky:
    """Answers the given statuses in turn (then 200), recording each request's time, headers
    and whether its signature verified."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.extra = headers or {}
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                verdict = verify("playbook", [SECRET], dict(self.headers), body, window_s=600)
                outer.seen.append(
                    {
                        "at": time.perf_counter(),
                        "headers": dict(self.headers),
                        "body": body,
                        "valid": verdict.valid,
                    }  # fmt: skip
                )
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                for key, value in outer.extra.items():
                    if status != 200:
                        self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Flaky:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _context(url: str, rule: tuple[int, int, str] = (4, 2000, "full")) -> RunContext:
    return RunContext(
        endpoints={"hooks": EndpointConfig(name="hooks", base_url=url)},
        webhooks={"orders": WebhookSigner("orders", "playbook", SECRET, 600)},
        secrets={"webhook.orders": SECRET},
        retry_rules={"webhook.delivery": rule},
    )


def _run(text: str, context: RunContext) -> Any:
    suite = parse_suite(text, filename="s.yaml")
    [outcome] = asyncio.run(run_suite(suite, context, policy=POLICY))
    return outcome


ONE = """
name: t
tests:
  - name: s
    steps:
      - action:
          type: webhook
          url: hooks/webhooks/orders
          body: {id: evt_1, type: order.created, data: {order: 42}}
        assertions: [{assertions: [{path: response.status, operator: eq, value: 200}]}]
"""


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    with Flaky([503, 503]) as server:
        yield server


def test_a_delivery_is_retried_after_two_503s_and_succeeds_on_the_third(flaky: Flaky) -> None:
    outcome = _run(ONE, _context(flaky.url))
    step = outcome.steps[0]
    assert step.status == "passed", step.notes
    assert [s["valid"] for s in flaky.seen] == [True, True, True]
    assert [s["headers"]["X-Event-Id"] for s in flaky.seen] == ["evt_1"] * 3
    # A fresh signature per attempt, on the same body.
    assert len({s["body"] for s in flaky.seen}) == 1
    gaps = [b["at"] - a["at"] for a, b in zip(flaky.seen, flaky.seen[1:], strict=False)]
    assert gaps[0] <= 0.5 + 0.2 and gaps[1] <= 1.0 + 0.2  # full jitter under base * 2^(n-1)
    assert "3 attempts (503, 503, 200)" in step.notes[0]


def test_full_jitter_stays_under_the_exponential_ceiling_and_the_cap() -> None:
    rule = RetryRule(max_attempts=8, cap_ms=3000, jitter="full", base_ms=500)
    rng = random.Random(1)
    for retry in range(1, 8):
        ceiling = min(3000, 500 * 2 ** (retry - 1))
        waits = [backoff_ms(rule, retry, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range, not a fixed delay


def test_retry_after_is_honoured(flaky: Flaky) -> None:
    with Flaky([429], headers={"Retry-After": "1"}) as server:
        outcome = _run(ONE, _context(server.url))
    assert outcome.steps[0].status == "passed"
    assert server.seen[1]["at"] - server.seen[0]["at"] >= 0.95


def test_a_retry_after_beyond_the_cap_ends_the_delivery_with_the_reason() -> None:
    with Flaky([503], headers={"Retry-After": "600"}) as server:
        outcome = _run(ONE, _context(server.url))
    step = outcome.steps[0]
    assert step.status == "failed"
    assert len(server.seen) == 1
    assert "Retry-After asks for 600 s, beyond the policy's cap of 2 s" in step.notes[0]


def test_a_4xx_is_the_partners_answer_and_is_not_retried() -> None:
    with Flaky([401]) as server:
        outcome = _run(ONE, _context(server.url))
    assert len(server.seen) == 1 and outcome.steps[0].status == "failed"


def test_delivery_gives_up_after_the_policys_attempts() -> None:
    with Flaky([503] * 10) as server:
        outcome = _run(ONE, _context(server.url, rule=(3, 50, "full")))
    assert len(server.seen) == 3
    assert "gave up after 3 attempts" in outcome.steps[0].notes[0]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_ms("3") == 3000
    assert retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10_000
    assert retry_after_ms("soon") is None


NEGATIVE = """
name: t
tests:
  - name: s
    steps:
      - action: {type: webhook, url: hooks/x, body: {id: evt_9, type: t}, tamper: true}
        continueOnFailure: true
      - action: {type: webhook, url: hooks/x, body: {id: evt_8, type: t}, stale: true}
        continueOnFailure: true
      - action: {type: webhook, url: hooks/x, replay: true}
"""


def test_tamper_stale_and_replay_send_what_they_say() -> None:
    with Flaky([]) as server:
        _run(NEGATIVE, _context(server.url))
    tampered, stale, replay = server.seen
    assert not tampered["valid"] and json.loads(tampered["body"])["tampered"] is True
    assert not stale["valid"]
    assert replay["valid"] and replay["headers"]["X-Event-Id"] == "evt_8"
    assert replay["body"] == stale["body"]


def test_the_signature_is_not_recorded(flaky: Flaky) -> None:
    outcome = _run(ONE, _context(flaky.url))
    recorded = json.dumps(outcome.steps[0].to_dict(), default=str)
    assert flaky.seen[-1]["headers"]["X-Signature"].split("v1=")[1] not in recorded


def test_replay_without_an_earlier_webhook_is_an_error() -> None:
    text = NEGATIVE.split("      - action: {type: webhook, url: hooks/x, body: {id: evt_9")[0] + (
        "      - action: {type: webhook, url: hooks/x, replay: true}\n"
    )
    outcome = _run(text, _context("http://127.0.0.1:9"))
    assert outcome.steps[0].status == "error"
    assert "no earlier webhook step" in outcome.steps[0].failure.message


def test_replay_with_a_body_is_refused_when_read() -> None:
    with pytest.raises(SuiteInvalid, match="takes no 'body'"):
        parse_suite(
            "name: t\ntests:\n  - name: s\n    steps:\n      - action: {type: webhook, url: "
            "hooks/x, replay: true, body: {a: 1}}\n",
            filename="s.yaml",
        )


def test_several_secrets_need_a_name() -> None:
    context = _context("http://127.0.0.1:9")
    context.webhooks["billing"] = WebhookSigner("billing", "stripe", "whsec_x", 300)
    outcome = _run(ONE, context)
    assert outcome.steps[0].status == "error"
    assert "say which signs with 'secret: <name>' (billing, orders)" in (
        outcome.steps[0].failure.message
    )


LIBRARY = Path(__file__).resolve().parents[2] / "certification" / "library"


def test_every_library_suite_reads_without_errors() -> None:
    files = sorted(LIBRARY.glob("*/**/*.yaml"))
    entries = [f for f in files if "shared" not in f.parts]
    assert len(entries) >= 5
    for entry in entries:
        load_suite_file(entry)  # raises SuiteInvalid with every error


def test_the_library_webhook_suite_passes_against_the_demo_sandbox(sandbox: Any) -> None:
    from demo.sandbox import WEBHOOK_SECRET

    suite = load_suite_file(LIBRARY / "b2b" / "webhooks.yaml")
    context = RunContext(
        endpoints={"api": EndpointConfig(name="api", base_url=sandbox.url)},
        default_endpoint="api",
        webhooks={"orders": WebhookSigner("orders", "playbook", WEBHOOK_SECRET, 600)},
    )
    outcomes = asyncio.run(run_suite(suite, context, policy=POLICY))
    assert {o.code: o.status for o in outcomes} == {"B-002": "passed", "B-102": "passed"}, [
        (s.name, s.status, s.notes, [a.message for a in s.assertions if not a.passed])
        for o in outcomes
        for s in o.steps
    ]
