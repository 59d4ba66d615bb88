"""What x12Receive takes and what it judges: only verified AS2 messages on a signed endpoint,
only a 997 that acknowledges what we sent, only a 997 that states an acceptance, and MDN
checks that stand aside only for the field a step asserts on. The AS2 traffic is a fake
recorder (the real one is tested with the demo EDI partner in tests/certification)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from certification.engine import edi, x12
from certification.engine.model import EndpointConfig, RunContext
from certification.engine.netpolicy import AddressPolicy
from certification.engine.runner import run_suite
from certification.engine.spec import parse_suite

SENT = edi.Sent(interchange=41, group=41, first_set=1, set_id="850", started_iso="",
                monotonic=0.0)  # fmt: skip


def _interchange(*body: list[str], set_id: str = "997") -> x12.Interchange:
    text = x12.build([(set_id, list(body))], interchange_control=900, group_control=900,
                     first_set_control=1)  # fmt: skip
    return x12.parse(text)


def _ack(*body: list[str]) -> str:
    return x12.build([("997", list(body))], interchange_control=900, group_control=900,
                     first_set_control=1)  # fmt: skip


ACCEPTING = (["AK1", "PO", "41"], ["AK2", "850", "0001"], ["AK5", "A"], ["AK9", "A", "1", "1", "1"])


def test_a_997_naming_our_group_and_set_acknowledges_what_we_sent() -> None:
    assert edi._wanted("997", SENT, _interchange(*ACCEPTING))


@pytest.mark.parametrize(
    "body",
    [
        (["AK1", "PO", "40"], ["AK2", "850", "0001"], ["AK5", "A"], ["AK9", "A", "1", "1", "1"]),
        (["AK1", "IN", "41"], ["AK2", "810", "0777"], ["AK5", "A"], ["AK9", "A", "1", "1", "1"]),
        (["AK1", "PO", "41"], ["AK2", "850", "0002"], ["AK5", "A"], ["AK9", "A", "1", "1", "1"]),
    ],
    ids=["another group", "another document", "another set"],
)
def test_a_997_for_something_else_is_not_taken(body: tuple[list[str], ...]) -> None:
    assert not edi._wanted("997", SENT, _interchange(*body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ((["AK1", "PO", "41"],), "no AK9 for group 41: the 997 states no acceptance"),
        ((["AK1", "PO", "41"], ["AK9", "A", "1", "1", "0"]), "says 0 of 1 sets accepted"),
        (
            (["AK1", "PO", "41"], ["AK2", "850", "0001"], ["AK9", "A", "1", "1", "1"]),
            "AK2 for set 850 0001 has no AK5",
        ),  # fmt: skip
    ],
    ids=["no AK9", "AK9 A accepting none", "AK2 without AK5"],
)
def test_a_997_that_states_no_acceptance_is_not_one(
    body: tuple[list[str], ...], reason: str
) -> None:
    ack = x12.read_functional_ack(_interchange(*body))
    assert reason in x12.rejection_reason(ack)


def test_a_complete_997_accepts() -> None:
    assert x12.rejection_reason(x12.read_functional_ack(_interchange(*ACCEPTING))) == ""


# ------------------------------------------------------------------ MDN checks


class _Step:
    def __init__(self, *paths: str) -> None:
        class A:
            def __init__(self, path: str) -> None:
                self.path = path

        class G:
            match = None
            assertions = [A(p) for p in paths]

        self.groups = [G()]


BAD_MIC = {
    "signed": True, "signature": {"valid": True}, "micMatches": False, "mic": "x, sha256",
    "processed": True, "disposition": "processed", "originalMessageId": "<m1@us>",
}  # fmt: skip


def test_asserting_on_another_mdn_field_keeps_the_mic_check() -> None:
    problem = edi.mdn_problem(BAD_MIC, signed=True, message_id="<m1@us>", step=_Step("mdn.ms"))
    assert "not the MIC of what we sent" in problem


def test_asserting_on_the_mic_itself_replaces_the_mic_check() -> None:
    step = _Step("mdn.micMatches")
    assert edi.mdn_problem(BAD_MIC, signed=True, message_id="<m1@us>", step=step) == ""


def test_an_mdn_for_another_message_is_refused() -> None:
    mdn = {**BAD_MIC, "micMatches": True, "originalMessageId": "<other@x>"}
    problem = edi.mdn_problem(mdn, signed=True, message_id="<m1@us>", step=_Step())
    assert problem == "the MDN answers message <other@x>, not ours (<m1@us>)"


# ------------------------------------------------------------------ AS2 messages taken


RECEIVE = """
name: t
tests:
  - name: s
    steps:
      - action: {type: x12Receive, endpoint: edi, set: "997", timeoutMs: 300, intervalMs: 50}
"""


def _run_receive(records: list[dict[str, Any]], auth_kind: str = "as2_smime") -> Any:
    async def source(since: str, until: str) -> tuple[list[dict[str, Any]], int]:
        return records, len(records)

    endpoint = EndpointConfig(name="edi", base_url="http://127.0.0.1:9/as2", kind="as2",
                              auth_kind=auth_kind, auth_config={"as2_to": "PARTNER"})  # fmt: skip
    context = RunContext(endpoints={"edi": endpoint}, traffic=source)
    suite = parse_suite(RECEIVE, filename="s.yaml")
    [outcome] = asyncio.run(run_suite(suite, context, policy=AddressPolicy([])))
    return outcome.steps[0]


def _document(n: int, *, valid: bool | None, replayed: bool = False) -> dict[str, Any]:
    return {
        "id": n, "source": "as2", "name": "document", "eventId": f"<msg{n}@partner>",
        "request": {"headers": {"AS2-From": "PARTNER"}, "body": _ack(*ACCEPTING)},
        "signature": {"valid": valid, "reason": "signed by another key" if valid is False else ""},
        "replayed": replayed, "receivedAt": "2026-12-03T10:00:00Z",
    }  # fmt: skip


def test_a_verified_997_is_taken() -> None:
    step = _run_receive([_document(1, valid=True)])
    assert step.status == "passed", step.failure


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (_document(1, valid=False), "<msg1@partner>: signed by another key"),
        (_document(2, valid=None), "<msg2@partner>: not signed"),
        (_document(3, valid=True, replayed=True), "<msg3@partner>: a replayed Message-ID"),
    ],
    ids=["bad signature", "unsigned", "replayed"],
)
def test_an_unverified_or_replayed_message_is_not_taken_and_the_timeout_says_why(
    record: dict[str, Any], why: str
) -> None:
    step = _run_receive([record])
    assert step.status == "failed" and step.failure.kind == "timeout"
    assert f"1 message(s) not used: {why}" in step.failure.message


def test_an_unsigned_message_counts_on_an_unsigned_endpoint() -> None:
    step = _run_receive([_document(1, valid=None)], auth_kind="as2_plain")
    assert step.status == "passed", step.failure


def test_no_855_says_nothing_about_the_ack_sla() -> None:
    suite = RECEIVE.replace('set: "997"', 'set: "855"')

    async def source(since: str, until: str) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    endpoint = EndpointConfig(name="edi", base_url="http://127.0.0.1:9/as2", kind="as2",
                              auth_kind="as2_plain", auth_config={})  # fmt: skip
    context = RunContext(endpoints={"edi": endpoint}, traffic=source)
    [outcome] = asyncio.run(
        run_suite(parse_suite(suite, filename="s.yaml"), context, policy=AddressPolicy([]))
    )
    assert outcome.steps[0].failure.kind == "timeout"
    assert "noAckWithinMs" not in (outcome.steps[0].data or {})


def test_sftp_keys_on_an_as2_endpoint_are_an_error_not_ignored() -> None:
    suite = RECEIVE.replace("timeoutMs: 300", 'pattern: "*.997", timeoutMs: 300')

    async def source(since: str, until: str) -> tuple[list[dict[str, Any]], int]:
        return [_document(1, valid=True)], 1

    endpoint = EndpointConfig(name="edi", base_url="http://127.0.0.1:9/as2", kind="as2",
                              auth_kind="as2_smime", auth_config={"as2_to": "PARTNER"})  # fmt: skip
    context = RunContext(endpoints={"edi": endpoint}, traffic=source)
    [outcome] = asyncio.run(
        run_suite(parse_suite(suite, filename="s.yaml"), context, policy=AddressPolicy([]))
    )
    step = outcome.steps[0]
    assert step.status == "error"
    assert step.failure.message == "'pattern' and 'dir' find a file on SFTP; 'edi' is AS2"
