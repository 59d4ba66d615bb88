"""x12Send and x12Receive are checked when the suite is read: each mistake located and named,
none left for the run to trip over."""

from __future__ import annotations

import re

import pytest

from certification.engine.spec import SuiteInvalid, parse_suite

ORDER = "{po: P1, date: '20261201', lines: [{sku: W-1, quantity: 1, price: '1.00'}]}"


def _read(action: str) -> None:
    parse_suite(f"name: t\ntests:\n  - name: s\n    steps:\n      - action: {action}\n",
                filename="s.yaml")  # fmt: skip


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{type: x12Send, endpoint: edi}", "exactly one of 'order' (an 850) or 'segments'"),
        (f"{{type: x12Send, endpoint: edi, set: '855', order: {ORDER}}}", "'order' builds an 850"),
        (
            "{type: x12Send, endpoint: edi, order: {po: P1, lines: abc}}",
            "'order.lines' lists the order lines",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, order: {po: P1, lines: 5}}",
            "'order.lines' lists the order lines",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, order: {po: P1, line: [{sku: A, quantity: 1}]}}",
            "unknown key 'line' in 'order'; did you mean 'lines'?",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, order: {po: P1, lines: [abc]}}",
            "'order.lines' line 1 is a mapping",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, order: {po: P1, lines: [{sku: A}]}}",
            "'order.lines' line 1 needs 'quantity'",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, order: {lines: [{sku: A, quantity: 1}]}}",
            "'order' needs 'po'",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, set: '856', segments: []}",
            "'segments' lists the set's segments: none given",
        ),  # fmt: skip
        (
            "{type: x12Send, endpoint: edi, set: '856', segments: [[ST, '856', '0001']]}",
            "envelopes are added for you",
        ),  # fmt: skip
        (
            f"{{type: x12Send, endpoint: edi, order: {ORDER}, name: '..'}}",
            "not starting with '.'",
        ),  # fmt: skip
        (
            f"{{type: x12Send, endpoint: edi, order: {ORDER}, repeat: true, "
            "control: {interchange: 1, group: 1, set: 1}}",
            "'control' or 'repeat', not both",
        ),
        (
            "{type: x12Receive, endpoint: edi, set: '855', expect: rejected}",
            "'expect' judges a 997",
        ),  # fmt: skip
        (
            "{type: sftpUpload, endpoint: files, name: .hidden.csv, content: x}",
            "not starting with '.'",
        ),  # fmt: skip
    ],
)
def test_a_mistake_in_an_edi_or_file_action_is_located_and_named(action: str, message: str) -> None:
    with pytest.raises(SuiteInvalid, match=re.escape(message)) as info:
        _read(action)
    assert str(info.value).startswith("s.yaml:5:")


def test_an_order_whose_lines_come_from_a_variable_is_checked_when_run() -> None:
    _read("{type: x12Send, endpoint: edi, order: {po: P1, lines: '{{lines}}'}}")
