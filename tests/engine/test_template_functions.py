"""Template functions: what partners compute (encodings, digests, signatures, times, ids,
conversions), checked against the standard library, and their errors where a suite is read
and where a step runs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

import pytest

from certification.engine.auth import sign
from certification.engine.spec import SuiteInvalid, parse_suite
from certification.engine.templating import TemplateFunctionError, parse, render

VARS: dict[str, Any] = {
    "user": "AC01",
    "secret": {"api": {"token": "tok-SECRET-123"}},
    "count": "42",
    "price": "4.50",
    "body": '{"id": "evt_1"}',
}


def test_base64_of_a_concatenation_is_the_basic_credential() -> None:
    out = render("Basic {{ base64(concat(user, ':', secret.api.token)) }}", VARS)
    assert out == "Basic " + base64.b64encode(b"AC01:tok-SECRET-123").decode()


def test_sha256_is_the_hex_digest_of_the_text() -> None:
    assert render("{{ sha256(body) }}", VARS) == hashlib.sha256(VARS["body"].encode()).hexdigest()


def test_hmac_sha256_builds_the_playbooks_x_signature() -> None:
    variables = {**VARS, "ts": 1767225600}
    header = render(
        "t={{ts}},v1={{ hmacSha256(secret.api.token, concat(ts, '.', body)) }}", variables
    )
    assert header == sign(VARS["body"].encode(), "tok-SECRET-123", timestamp=1767225600)
    expected = hmac.new(b"k", b"m", hashlib.sha256).hexdigest()
    assert render("{{ hmacSha256('k', 'm') }}", VARS) == expected


def test_a_whole_template_number_call_keeps_the_number_type() -> None:
    assert render("{{ number(count) }}", VARS) == 42
    assert render("{{ number(price) }}", VARS) == 4.5
    assert render("{{ string(7) }}", VARS) == "7"


def test_number_of_text_that_is_no_number_is_a_template_error() -> None:
    with pytest.raises(TemplateFunctionError, match="not a decimal number"):
        render("{{ number('abc') }}", VARS)


def test_now_uuid_and_now_ms_are_fresh_values() -> None:
    before = int(time.time())
    assert before <= render("{{ now() }}", VARS) <= int(time.time())
    assert abs(render("{{ nowMs() }}", VARS) - time.time() * 1000) < 5_000
    ids = {render("{{ uuid() }}", VARS) for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids)


def test_quoted_strings_may_hold_commas_parentheses_and_braces_inside() -> None:
    assert render("{{ concat('a,b', ')', \"(c\") }}", VARS) == "a,b)(c"


def test_templates_without_functions_render_as_before() -> None:
    assert render("{{count}}-{{ user }}", VARS) == "42-AC01"
    assert render("{{{count}}}", VARS) == "{42}"
    assert render("{{count}}}}", VARS) == "42}}"
    assert render('{"a":{"b":"{{ user }}"}}', VARS) == '{"a":{"b":"AC01"}}'


def _errors(template: str) -> list[str]:
    text = (
        "name: s\ntests:\n  - name: t\n    steps:\n"
        f'      - action: {{type: httpRequest, url: /a, headers: {{X-A: "{template}"}}}}\n'
    )
    try:
        parse_suite(text, filename="s.yaml")
    except SuiteInvalid as exc:
        return [f"{e.line}: {e.message}" for e in exc.errors]
    return []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ base46(x) }}", "unknown function 'base46()'; did you mean 'base64()'?"),
        ("{{ hmacSha256(x) }}", "hmacSha256() takes 2 arguments, not 1"),
        ("{{ now(x) }}", "now() takes 0 arguments, not 1"),
        ("{{ base64(x }}", "'base64(' is not closed with ')'"),
        ("{{ base64($uid) }}", "unknown built-in '{{$uid}}'; did you mean '$uuid'?"),
        ("{{ base64(x) y }}", "unexpected 'y'"),
    ],
)
def test_a_bad_function_call_is_an_error_when_the_suite_is_read(
    template: str, message: str
) -> None:
    errors = _errors(template)
    assert len(errors) == 1 and errors[0].startswith("5: "), errors
    assert message in errors[0]


def test_a_secret_inside_a_computed_base64_value_is_masked_when_recorded() -> None:
    from certification.engine.masking import Masker

    value = render("{{ base64(concat(user, ':', secret.api.token)) }}", VARS)
    masked = Masker(["tok-SECRET-123"]).mask(f"echo: {value}")
    decoded = base64.b64decode(masked.removeprefix("echo: ").split("•")[0] + "==", validate=False)
    assert value not in masked and b"tok-SECRET" not in decoded


def test_number_of_a_non_number_does_not_quote_the_value() -> None:
    with pytest.raises(TemplateFunctionError) as info:
        render("{{ number(v) }}", {"v": "sk_live_abcdefghijklmnop"})
    assert "sk_live" not in str(info.value)
    assert "24-character string" in str(info.value)


@pytest.mark.parametrize("text", ["1_000", "١٢", ".5", "inf", "nan", "1e", "0x10", ""])
def test_number_refuses_what_is_not_an_ascii_decimal(text: str) -> None:
    with pytest.raises(TemplateFunctionError):
        render("{{ number(v) }}", {"v": text})


@pytest.mark.parametrize(("text", "value"), [("42", 42), ("-1.5", -1.5), ("2e3", 2000.0)])
def test_number_reads_ascii_decimals(text: str, value: float) -> None:
    assert render("{{ number(v) }}", {"v": text}) == value


def test_number_of_null_says_null() -> None:
    with pytest.raises(TemplateFunctionError, match="null"):
        render("{{ number(v) }}", {"v": None})


def test_one_extra_closing_brace_stays_text_after_the_value() -> None:
    assert render("{{x}}}", {"x": 5}) == "5}"


def test_a_quoted_argument_may_hold_closing_braces() -> None:
    assert render("{{ concat('a}}b', x) }}", {"x": "c"}) == "a}}bc"


def test_deeply_nested_calls_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="nested more than 32"):
        parse("string(" * 40 + "x" + ")" * 40)


def test_a_missing_comma_between_arguments_is_named() -> None:
    with pytest.raises(ValueError, match="expected ',' or '\\)' after argument 1 of 'concat\\('"):
        parse("concat(a b)")
