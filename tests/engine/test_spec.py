"""Scenario suites: parsing, validation and error positions (certification/engine/spec.py).

Pure unit tests: no Django, no database, no network. Fixture suites: the four Dokkimi example
definitions from the seed document, shipped in the suite library (``certification/library/seed``)
with their shared files at the paths their ``$ref``s name (``definitions/x.yaml`` ->
``../shared/y.yaml``), and a ``broken/`` suite here in ``suites/`` with one mistake of each kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import yaml

from certification.engine import spec
from certification.engine.model import (
    MISSING,
    Assertion,
    AssertionGroup,
    CountCheck,
    DbQuery,
    HttpRequest,
    LatencyProbe,
    Mock,
    Pos,
    Step,
    Suite,
    Until,
    Wait,
)
from certification.engine.spec import (
    MAX_SUITE_BYTES,
    SpecError,
    SuiteInvalid,
    check_suite_bytes,
    load_suite_file,
    parse_path,
    parse_suite,
    read_suite_sources,
    suite_fingerprint,
    template_names,
)

# The seed's definitions and shared files ship in the suite library; broken/ is test-only.
LIBRARY = Path(__file__).resolve().parents[2] / "certification" / "library" / "seed"
BROKEN = Path(__file__).parent / "suites"


def _fixture(path: str) -> Path:
    return (BROKEN if path.startswith("broken/") else LIBRARY) / path


SCHEMA_FILE = Path(spec.__file__).with_name("suite.schema.json")
REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers


def disk_loader(path: str) -> bytes:
    return _fixture(path).read_bytes()


def load(relative: str) -> Suite:
    """A fixture suite, named relative to ``suites/`` so positions read like the fixture."""
    return parse_suite(_fixture(relative).read_bytes(), filename=relative, loader=disk_loader)


def dict_loader(files: dict[str, str]) -> Any:
    calls: list[str] = []

    def loader(path: str) -> str:
        calls.append(path)
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    loader.calls = calls  # type: ignore[attr-defined]
    return loader


def errors(text: str | bytes, *, filename: str = "suite.yaml", loader: Any = None) -> list[str]:
    """Every error of an invalid suite, as ``file:line:column: message``."""
    if isinstance(text, str):
        text = textwrap.dedent(text)
    with pytest.raises(SuiteInvalid) as info:
        parse_suite(text, filename=filename, loader=loader)
    return [str(error) for error in info.value.errors]


def messages(text: str | bytes, **kwargs: Any) -> list[str]:
    """Like ``errors`` without the position, for tests about wording."""
    return [line.split(": ", 1)[1] for line in errors(text, **kwargs)]


def parse(text: str, *, loader: Any = None) -> Suite:
    return parse_suite(textwrap.dedent(text), filename="suite.yaml", loader=loader)


def suite_text(*steps: dict[str, Any], **top: Any) -> str:
    """A one-scenario suite around ``steps``, as block YAML."""
    doc = {"name": "s", **top, "tests": [{"name": "Scenario", "steps": list(steps)}]}
    return yaml.safe_dump(doc, sort_keys=False)


def step_messages(*steps: dict[str, Any], **top: Any) -> list[str]:
    return messages(suite_text(*steps, **top))


def only_step(*steps: dict[str, Any], **top: Any) -> Step:
    return parse(suite_text(*steps, **top)).scenarios[0].steps[-1]


def http(**extra: Any) -> dict[str, Any]:
    return {"type": "httpRequest", "method": "GET", "url": "/v1/ping", **extra}


def check(path: str, operator: str, *value: Any) -> dict[str, Any]:
    assertion: dict[str, Any] = {"path": path, "operator": operator}
    if value:
        assertion["value"] = value[0]
    return {"action": http(), "assertions": [{"assertions": [assertion]}]}


def probe(**extra: Any) -> dict[str, Any]:
    return {"action": {"type": "latencyProbe", "url": "/v1/ping", "requests": 100, **extra}}


# ----------------------------------------------------------------------------- the seed suites

HAPPY = "definitions/checkout-happy-path.yaml"
DECLINED = "definitions/checkout-card-declined.yaml"
WEBHOOK = "definitions/webhook-charge-succeeded.yaml"
OUT_OF_STOCK = "definitions/checkout-out-of-stock.yaml"


def test_seed_happy_path_first_step_is_a_post_with_assertions_and_extract() -> None:
    suite = load(HAPPY)

    assert suite.name == "checkout-happy-path"
    [scenario] = suite.scenarios
    assert (scenario.name, scenario.code, scenario.kind) == ("Full checkout flow", "", "main")
    assert scenario.pos == Pos(HAPPY, 15, 5)
    assert scenario.steps[0] == Step(
        action=HttpRequest(
            method="POST",
            url="api-gateway/v1/orders",
            body={
                "customerId": 1,
                "items": [
                    {"sku": "WIDGET-001", "quantity": 1},
                    {"sku": "WIDGET-002", "quantity": 1},
                ],
            },
        ),
        groups=[
            AssertionGroup(
                assertions=[
                    Assertion("response.status", "eq", 201, pos=Pos(HAPPY, 31, 17)),
                    Assertion("response.body.order.totalCents", "eq", 2498, pos=Pos(HAPPY, 34, 17)),
                ],
                pos=Pos(HAPPY, 30, 13),
            )
        ],
        extract={"orderId": "response.body.order.id"},
        pos=Pos(HAPPY, 18, 9),
    )


def test_seed_happy_path_match_groups_assert_on_captured_traffic() -> None:
    pay = load(HAPPY).scenarios[0].steps[1]

    assert pay.action == HttpRequest(
        method="POST",
        url="api-gateway/v1/orders/{{orderId}}/pay",
        body={"paymentMethod": "pm_test_visa"},
    )
    assert [group.match for group in pay.groups] == [
        {"origin": "payment-service", "method": "POST", "url": "api.stripe.com/v1/charges"},
        {"origin": "shipping-service", "method": "POST", "url": "api.easypost.com/v2/shipments"},
        {
            "origin": "notification-service",
            "method": "POST",
            "url": "api.sendgrid.com/v3/mail/send",
        },
        {"origin": "notification-service", "method": "POST", "url": "api.twilio.com"},
    ]
    assert pay.groups[1].assertions == [
        Assertion("response.body.tracking_code", "exists", MISSING, pos=ANY)
    ]
    assert pay.groups[3].assertions == [
        Assertion("request.body.To", "eq", "+15551234567", pos=ANY),
        Assertion("request.body.Body", "contains", "9400111899223456789012", pos=ANY),
    ]
    assert all(group.count is None for group in pay.groups)


def test_seed_happy_path_database_steps_are_db_queries() -> None:
    steps = load(HAPPY).scenarios[0].steps

    assert [step.action for step in steps[2:]] == [
        DbQuery("postgres-db", "SELECT status, total_cents FROM orders WHERE id = {{orderId}}"),
        DbQuery("postgres-db", "SELECT stock FROM products WHERE sku = 'WIDGET-001'"),
    ]
    assert steps[3].groups == [
        AssertionGroup([Assertion("data[0].stock", "eq", 49, pos=ANY)], pos=ANY)
    ]


def test_seed_happy_path_mocks_are_parsed_from_shared_files() -> None:
    mocks = load(HAPPY).mocks

    json_header = {"content-type": "application/json"}
    assert mocks == [
        Mock(
            name="mock-stripe",
            target="api.stripe.com",
            path="/v1/charges",
            status=200,
            headers=json_header,
            body={
                "id": "ch_test_123",
                "object": "charge",
                "status": "succeeded",
                "amount": 2498,
                "currency": "usd",
            },
            pos=Pos("shared/mock-stripe-success.yaml", 2, 1),
        ),
        Mock(
            name="mock-easypost",
            target="api.easypost.com",
            path="/v2/shipments",
            status=201,
            headers=json_header,
            body={
                "id": "shp_test_789",
                "tracking_code": "9400111899223456789012",
                "status": "pre_transit",
                "postage_label": {"label_url": "https://easypost.com/labels/test-label.pdf"},
            },
            pos=ANY,
        ),
        Mock("mock-sendgrid", "api.sendgrid.com", "/v3/mail/send", 202, json_header, {}, pos=ANY),
        Mock(
            name="mock-twilio",
            target="api.twilio.com",
            path="/2010-04-01/Accounts/*/Messages.json",
            status=201,
            headers=json_header,
            body={"sid": "SM_test_456", "status": "queued"},
            pos=ANY,
        ),
    ]


def test_seed_service_and_database_items_are_ignored_with_a_warning_each() -> None:
    suite = load(HAPPY)

    assert suite.warnings == [
        f"shared/{name}.yaml:2:1: item '{name}' ({kind}) is not used by certification runs; ignored"
        for name, kind in [
            ("api-gateway", "SERVICE"),
            ("order-service", "SERVICE"),
            ("payment-service", "SERVICE"),
            ("shipping-service", "SERVICE"),
            ("notification-service", "SERVICE"),
            ("postgres-db", "DATABASE"),
        ]
    ]


def test_seed_card_declined_counts_captured_requests() -> None:
    suite = load(DECLINED)
    pay = suite.scenarios[0].steps[1]

    assert [mock.status for mock in suite.mocks] == [402, 201, 202]
    assert suite.mocks[0].body["error"]["code"] == "card_declined"
    assert pay.groups[0].match is None
    assert pay.groups[0].assertions[1] == Assertion(
        "response.body.error", "contains", "declined", pos=Pos(DECLINED, 39, 17)
    )
    assert pay.groups[1:] == [
        AssertionGroup(
            assertions=[],
            match={"origin": "shipping-service", "url": "api.easypost.com"},
            count=CountCheck("eq", 0, pos=Pos(DECLINED, 48, 15)),
            pos=Pos(DECLINED, 44, 13),
        ),
        AssertionGroup(
            assertions=[],
            match={"origin": "notification-service", "url": "api.sendgrid.com"},
            count=CountCheck("eq", 0, pos=ANY),
            pos=ANY,
        ),
    ]


def test_seed_webhook_keeps_headers_and_folded_sql() -> None:
    steps = load(WEBHOOK).scenarios[0].steps

    assert steps[0].action == DbQuery(
        "postgres-db",
        "INSERT INTO orders (id, customer_id, status, total_cents) "
        "VALUES (100, 1, 'payment_pending', 2498)\n",
    )
    webhook = steps[2].action
    assert isinstance(webhook, HttpRequest)
    assert webhook.url == "payment-service/webhooks/stripe"
    assert webhook.headers == {
        "stripe-signature": "whsec_test_signature",
        "content-type": "application/json",
    }
    assert webhook.body["data"]["object"]["metadata"] == {"order_id": "100"}
    assert steps[2].groups[1].match == {
        "origin": "payment-service",
        "method": "PATCH",
        "url": "order-service/v1/orders/100",
    }


@pytest.mark.parametrize(
    ("definition", "name", "steps", "mocks", "ignored"),
    [
        (HAPPY, "checkout-happy-path", 4, 4, 6),
        (DECLINED, "checkout-card-declined", 4, 3, 5),
        (WEBHOOK, "stripe-webhook-charge-succeeded", 4, 3, 6),
        (OUT_OF_STOCK, "out-of-stock-rejection", 2, 0, 3),
    ],
)
def test_seed_definitions_parse_unchanged(
    definition: str, name: str, steps: int, mocks: int, ignored: int
) -> None:
    suite = load(definition)

    assert suite.name == name
    assert len(suite.scenarios) == 1
    assert len(suite.scenarios[0].steps) == steps
    assert len(suite.mocks) == mocks
    assert len(suite.warnings) == ignored


def test_mocks_with_body_matching_load_from_a_file_holding_a_list() -> None:
    suite = parse(
        """
        name: llm-and-graphql
        items:
          - $ref: shared/mock-body-matching.yaml
        tests:
          - name: t
            steps:
              - action: {type: wait, ms: 0}
        """,
        loader=disk_loader,
    )

    assert [(m.name, m.body_contains, m.body_matches) for m in suite.mocks] == [
        ("mock-graphql-users", "getUsers", None),
        ("mock-graphql-orders", "getOrders", None),
        ("mock-tool-call-search", None, '"name":\\s*"search_database"'),
    ]
    assert suite.mocks[2].pos == Pos("shared/mock-body-matching.yaml", 26, 3)


@pytest.mark.parametrize(
    ("shared", "status", "delay", "headers"),
    [
        (
            "mock-stripe-rate-limited.yaml",
            429,
            0,
            {"content-type": "application/json", "retry-after": "2"},
        ),
        ("mock-stripe-slow.yaml", 200, 5000, {}),
    ],
)
def test_seed_mock_variants_parse(
    shared: str, status: int, delay: int, headers: dict[str, str]
) -> None:
    items = f"- $ref: ../shared/{shared}\n"
    suite = parse_suite(
        "name: s\nitems:\n" + textwrap.indent(items, "  ") + MINIMAL_TESTS,
        filename="definitions/s.yaml",
        loader=disk_loader,
    )

    [mock] = suite.mocks
    assert (mock.name, mock.status, mock.delay_ms, mock.headers) == (
        "mock-stripe",
        status,
        delay,
        headers,
    )


def test_load_suite_file_reads_a_seed_definition_and_its_refs_from_disk() -> None:
    suite = load_suite_file(_fixture(HAPPY))

    assert [mock.name for mock in suite.mocks][:1] == ["mock-stripe"]
    assert suite.mocks[0].pos is not None
    assert suite.mocks[0].pos.file == _fixture("shared/mock-stripe-success.yaml").as_posix()


# ----------------------------------------------------------------------------- every error, placed


def test_broken_suite_reports_every_error_with_file_line_and_column() -> None:
    with pytest.raises(SuiteInvalid) as info:
        load("broken/suite.yaml")

    assert [str(error) for error in info.value.errors] == [
        "broken/bad-indent.yaml:7:2: bad indentation: this line does not line up with the keys "
        "of the mapping that starts at line 1",
        "broken/cycle-b.yaml:1:9: item 1: $ref cycle: broken/cycle-a.yaml -> broken/cycle-b.yaml "
        "-> broken/cycle-a.yaml",
        "broken/suite.yaml:16:27: scenario 'Broken flow' step 1: unknown operator 'equals'; "
        "did you mean 'eq'?",
        "broken/suite.yaml:18:9: scenario 'Broken flow' step 2: missing 'action'",
    ]
    assert str(info.value) == "\n".join(str(error) for error in info.value.errors)


def test_errors_are_sorted_by_file_line_and_column() -> None:
    found = errors(
        """
        tests:
          - name: b
            steps: []
        name: 5
        bogus: 1
        """
    )

    assert found == [
        "suite.yaml:4:12: scenario 'b': 'steps' must list at least one step",
        "suite.yaml:5:7: 'name' must be a string, not 5",
        "suite.yaml:6:1: unknown key 'bogus' in the suite",
    ]


def test_spec_error_prints_as_file_line_column_message() -> None:
    assert str(SpecError("a.yaml", 3, 7, "boom")) == "a.yaml:3:7: boom"


def test_too_many_errors_are_cut_with_a_count() -> None:
    steps = [{"action": {"type": "nope"}} for _ in range(300)]

    found = step_messages(*steps)

    assert len(found) == 201
    assert found[-1] == "too many errors (300 in total); only the first 200 are shown"


def test_missing_action_is_reported_at_the_step_that_lacks_it() -> None:
    found = errors(
        """
        name: s
        tests:
          - name: X
            steps:
              - action: {type: wait, ms: 1}
              - name: second
        """
    )

    assert found == ["suite.yaml:7:9: scenario 'X' step 2: missing 'action'"]


def test_missing_name_and_tests_are_reported_at_the_top_mapping() -> None:
    assert errors("description: nothing else\n") == [
        "suite.yaml:1:1: missing 'name'",
        "suite.yaml:1:1: missing 'tests'",
    ]


def test_tests_must_list_a_scenario() -> None:
    assert messages("name: s\ntests: []\n") == ["'tests' must list at least one scenario"]


# ----------------------------------------------------------------------------- YAML safety


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_at_once() -> None:
    document = billion_laughs()
    assert len(document) <= 1024

    started = time.perf_counter()
    with pytest.raises(SuiteInvalid) as info:
        parse_suite(document, filename="lol.yaml")
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    refused = [e for e in info.value.errors if "anchors and aliases" in e.message]
    assert len(refused) == 9 + 8 * 9  # every anchor and every alias
    assert str(refused[0]) == "lol.yaml:1:4: YAML anchors and aliases are not allowed"


def test_anchor_and_alias_are_errors_at_their_positions() -> None:
    found = errors(
        """
        name: s
        variables:
          base: &base https://sandbox.example.com
          again: *base
        tests:
          - name: t
            steps:
              - action: {type: wait, ms: 1}
        """
    )

    assert found == [
        "suite.yaml:4:9: YAML anchors and aliases are not allowed",
        "suite.yaml:5:10: YAML anchors and aliases are not allowed",
    ]


def test_size_cap_is_checked_before_parsing() -> None:
    too_big = "name: [" * (MAX_SUITE_BYTES // 7 + 1)  # would be a YAML error if parsed

    assert errors(too_big) == [
        f"suite.yaml:1:1: the suite file is too large ({len(too_big):,} bytes; the limit is "
        f"{MAX_SUITE_BYTES:,} bytes)"
    ]


def test_size_cap_counts_utf8_bytes() -> None:
    text = "# " + "é" * (MAX_SUITE_BYTES // 2) + "\n"  # fewer characters than the cap

    assert len(text) < MAX_SUITE_BYTES
    assert messages(text)[0].startswith("the suite file is too large")


def test_suite_of_exactly_the_cap_is_read() -> None:
    text = suite_text({"action": {"type": "wait", "ms": 1}})
    text += "#" * (MAX_SUITE_BYTES - len(text) - 1) + "\n"

    assert len(text.encode()) == MAX_SUITE_BYTES
    assert parse_suite(text, filename="s.yaml").name == "s"


def test_size_cap_applies_to_referenced_files_at_the_ref() -> None:
    loader = dict_loader({"big.yaml": "x" * (MAX_SUITE_BYTES + 1)})

    found = errors(
        """
        name: s
        items:
          - $ref: big.yaml
        tests:
          - name: t
            steps:
              - action: {type: wait, ms: 1}
        """,
        loader=loader,
    )

    assert found == [
        f"suite.yaml:4:11: item 1: 'big.yaml' is too large ({MAX_SUITE_BYTES + 1:,} bytes; "
        f"the limit is {MAX_SUITE_BYTES:,} bytes)"
    ]


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    found = errors(
        """
        name: s
        tests:
          - name: t
            steps:
              - action:
                  type: httpRequest
                  url: /a
                  url: /b
        """
    )

    assert found == ["suite.yaml:9:11: duplicate key 'url' (first at line 8)"]


def test_duplicate_keys_are_errors_inside_bodies_and_ignored_items_too() -> None:
    found = messages(
        """
        name: s
        items:
          - {type: SERVICE, name: api, name: api2}
        tests:
          - name: t
            steps:
              - action: {type: httpRequest, url: /a, body: {a: 1, a: 2}}
        """
    )

    assert found == [
        "duplicate key 'name' (first at line 4)",
        "duplicate key 'a' (first at line 8)",
    ]


@pytest.mark.parametrize(
    ("key", "shown"),
    [("200", "'200'"), ("true", "'true'"), ("null", "'null'"), ("1.5", "'1.5'")],
)
def test_non_string_keys_are_errors(key: str, shown: str) -> None:
    found = errors(f"name: s\n{key}: x\ntests: []\n")

    assert found[0] == f"suite.yaml:2:1: mapping keys must be strings; quote {shown} to use it"


def test_a_list_as_a_key_is_an_error() -> None:
    assert "mapping keys must be strings, not a list or mapping" in messages(
        "name: s\n? [a, b]\n: x\ntests: []\n"
    )


def test_tab_indentation_is_reported_at_the_tab() -> None:
    found = errors("name: s\ntests:\n\t- name: t\n")

    assert found == ["suite.yaml:3:1: tab character: YAML is indented with spaces, not tabs"]


def test_bad_indentation_is_a_readable_error_at_the_line() -> None:
    found = errors(
        """
        name: s
        tests:
          - name: t
            steps:
              - action:
                  type: httpRequest
                 url: /a
        """
    )

    assert found == [
        "suite.yaml:8:10: bad indentation: this line does not line up with the keys of the "
        "mapping that starts at line 6"
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("name: a: b\n", "suite.yaml:1:8: unexpected ':' here"),
        ("name: s\ntests: [\n", "suite.yaml:3:1: invalid YAML: did not find expected node"),
        ("name: 'open\n", "suite.yaml:2:1: invalid YAML: found unexpected end of stream"),
    ],
)
def test_other_yaml_syntax_errors_carry_the_parsers_position(document: str, expected: str) -> None:
    [found] = errors(document)

    assert found.startswith(expected)
    assert "Traceback" not in found


def test_only_one_yaml_document_per_file() -> None:
    found = errors(suite_text({"action": {"type": "wait", "ms": 1}}) + "---\nname: again\n")

    assert found[-1].endswith("a suite file holds a single YAML document (remove the second '---')")


@pytest.mark.parametrize(
    "document",
    [
        "name: !!python/object/apply:os.system ['true']\ntests: []\n",
        "name: !!binary aGVsbG8=\ntests: []\n",
        "name: s\ntests: !!set {a}\n",
        "name: !custom x\ntests: []\n",
    ],
)
def test_yaml_tags_are_refused(document: str) -> None:
    assert any(
        "YAML tag" in message and "is not allowed" in message for message in messages(document)
    )


def test_merge_keys_are_refused() -> None:
    assert "YAML merge keys ('<<') are not allowed" in messages(
        "name: s\n<<: {description: x}\ntests: []\n"
    )


def test_deep_nesting_is_refused_without_recursion() -> None:
    started = time.perf_counter()
    found = errors("name: " + "[" * 200_000)

    # the top mapping is level 1, so the 64th '[' (column 70) is level 65
    assert found == ["suite.yaml:1:70: nesting deeper than 64 levels is not allowed"]
    assert time.perf_counter() - started < 2


def test_invalid_utf8_is_reported_at_the_byte() -> None:
    assert errors(b"name: s\ndescription: caf\xe9\n") == [
        "suite.yaml:2:17: not valid UTF-8 (byte 0xe9 at offset 24)"
    ]


def test_control_characters_are_reported_at_their_position() -> None:
    assert errors("name: s\ndescription: é\x07\n") == [
        "suite.yaml:2:15: character U+0007 is not allowed in a YAML file"
    ]


def test_empty_file_is_an_error() -> None:
    assert errors("# only a comment\n") == ["suite.yaml:1:1: the file is empty"]


def test_a_bom_is_accepted() -> None:
    text = "\ufeff" + suite_text({"action": {"type": "wait", "ms": 1}})

    assert parse_suite(text.encode("utf-8"), filename="s.yaml").name == "s"


@pytest.mark.parametrize(
    "document",
    [
        "name: s\ntests:\n\t- name: t\n",
        "a:\n  b: 1\n c: 2\n",
        billion_laughs(),
        "name: s\ndescription: é\x07\n",
        "name: s\nname: t\n200: x\ntests: []\n",
    ],
)
def test_pure_python_yaml_parser_reports_the_same_positions(
    document: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_libyaml = errors(document)
    monkeypatch.setattr(spec, "_Events", spec._PyEvents)

    positions = [line.split(": ", 1)[0] for line in errors(document)]

    assert positions == [line.split(": ", 1)[0] for line in with_libyaml]


def test_engine_spec_imports_no_django() -> None:
    code = (
        "import sys, certification.engine.spec; "
        "sys.exit(any(m.split('.')[0] in ('django', 'celery') for m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0


# ----------------------------------------------------------------------------- did you mean


@pytest.mark.parametrize(
    ("steps", "top", "expected"),
    [
        ([], {"test": []}, "unknown key 'test' in the suite; did you mean 'tests'?"),
        (
            [],
            {"Description": "x"},
            "unknown key 'Description' in the suite; did you mean 'description'?",
        ),
        (
            [{"action": http(), "assertion": []}],
            {},
            "unknown key 'assertion' in a step; did you mean 'assertions'?",
        ),
        (
            [{"action": http(methd="POST")}],
            {},
            "unknown key 'methd' in a httpRequest action; did you mean 'method'?",
        ),
        (
            [{"action": http(), "continueOnFail": True}],
            {},
            "unknown key 'continueOnFail' in a step; did you mean 'continueOnFailure'?",
        ),
        (
            [
                {
                    "action": http(),
                    "until": {
                        "path": "response.status",
                        "operator": "eq",
                        "value": 1,
                        "timeout": 5,
                    },
                }
            ],
            {},
            "unknown key 'timeout' in 'until'; did you mean 'timeoutMs'?",
        ),
    ],
)
def test_unknown_keys_suggest_the_closest(
    steps: list[dict[str, Any]], top: dict[str, Any], expected: str
) -> None:
    steps = steps or [{"action": http()}]

    assert any(message.endswith(expected) for message in step_messages(*steps, **top))


def test_unknown_key_without_a_close_match_just_says_so() -> None:
    assert step_messages({"action": http(), "zzz": 1}) == [
        "scenario 'Scenario' step 1: unknown key 'zzz' in a step"
    ]


def test_unknown_scenario_key_suggests() -> None:
    found = messages(
        """
        name: s
        tests:
          - name: t
            stpes:
              - action: {type: wait, ms: 1}
        """
    )

    assert found == [
        "scenario 't': missing 'steps'",
        "scenario 't': unknown key 'stpes' in a scenario; did you mean 'steps'?",
    ]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("equals", "eq"),
        ("EQ", "eq"),
        ("notcontains", "notContains"),
        ("greaterThan", "gt"),
        ("regex", "matches"),
        ("exist", "exists"),
        ("lenght", "length"),
        ("jsonschema", "jsonSchema"),
    ],
)
def test_unknown_operator_suggests_the_right_one(written: str, meant: str) -> None:
    found = step_messages(check("response.status", written, 1))

    assert found == [
        f"scenario 'Scenario' step 1: unknown operator '{written}'; did you mean '{meant}'?"
    ]


def test_unknown_operator_without_a_close_match_lists_them() -> None:
    [found] = step_messages(check("response.status", "zzzz", 1))

    assert found.endswith(
        "unknown operator 'zzzz'; use eq, neq, gt, gte, lt, lte, contains, "
        "notContains, exists, notExists, matches, in, length, type or jsonSchema"
    )


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("httprequest", "httpRequest"),
        ("http", "httpRequest"),
        ("HttpRequst", "httpRequest"),
        ("sql", "dbQuery"),
        ("dbquerry", "dbQuery"),
        ("sleep", "wait"),
        ("latency", "latencyProbe"),
    ],
)
def test_unknown_action_type_suggests_the_right_one(written: str, meant: str) -> None:
    found = step_messages({"action": {"type": written, "url": "/a"}})

    assert found == [
        f"scenario 'Scenario' step 1: unknown action type '{written}'; did you mean '{meant}'?"
    ]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("$uuid4", "$uuid"),
        ("$UUID", "$uuid"),
        ("$now", "$isoNow"),
        ("$timestmp", "$timestamp"),
        ("$randomint", "$randomInt"),
    ],
)
def test_unknown_builtin_suggests_the_right_one(written: str, meant: str) -> None:
    found = step_messages({"action": http(headers={"X-Request-Id": f"{{{{{written}}}}}"})})

    assert found == [
        f"scenario 'Scenario' step 1: unknown built-in '{{{{{written}}}}}'; did you mean '{meant}'?"
    ]


# ----------------------------------------------------------------------------- assertions


@pytest.mark.parametrize("operator", ["exists", "notExists"])
def test_exists_with_a_value_is_an_error_at_the_value_key(operator: str) -> None:
    found = errors(
        f"""
        name: s
        tests:
          - name: t
            steps:
              - action: {{type: httpRequest, url: /a}}
                assertions:
                  - assertions:
                      - path: response.body.id
                        operator: {operator}
                        value: true
        """
    )

    assert found == [
        f"suite.yaml:11:17: scenario 't' step 1: '{operator}' takes no 'value' (remove it, or "
        "use 'eq' to compare)"
    ]


def test_exists_without_a_value_has_missing_value() -> None:
    step = only_step(check("response.body.id", "exists"))

    assert step.groups[0].assertions[0].value is MISSING


@pytest.mark.parametrize("operator", ["eq", "neq", "gt", "contains", "matches", "in", "type"])
def test_other_operators_need_a_value(operator: str) -> None:
    assert step_messages(check("response.status", operator)) == [
        f"scenario 'Scenario' step 1: missing 'value' (operator '{operator}' compares with it)"
    ]


def test_explicit_null_value_is_kept() -> None:
    step = only_step(check("response.body.deletedAt", "eq", None))

    assert step.groups[0].assertions[0].value is None


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("eq", {"a": [1, 2]}, {"a": [1, 2]}),
        ("gt", 5, 5),
        ("lte", "2025-01-01", "2025-01-01"),
        ("contains", "declined", "declined"),
        ("matches", "^ch_[a-z0-9]+$", "^ch_[a-z0-9]+$"),
        ("in", [200, 201], [200, 201]),
        ("length", 3, 3),
        ("length", {"operator": "gte", "value": 1}, {"operator": "gte", "value": 1}),
        ("type", "integer", "integer"),
        (
            "jsonSchema",
            {"type": "object", "required": ["id"]},
            {"type": "object", "required": ["id"]},
        ),
        ("eq", "{{orderId}}", "{{orderId}}"),
    ],
)
def test_operator_values_are_kept(operator: str, value: Any, expected: Any) -> None:
    step = only_step(check("response.body", operator, value))

    assert step.groups[0].assertions[0] == Assertion("response.body", operator, expected, pos=ANY)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("matches", "([a-z]", "'value' is not a valid regular expression: missing ), unterminated"),
        ("matches", 5, "'matches' needs a regular expression, not 5"),
        ("in", "a", "'in' needs a list of allowed values, not 'a'"),
        ("length", -1, "a length cannot be negative"),
        ("length", "3", "'length' needs a count, or {operator, value}"),
        (
            "length",
            {"operator": "contains", "value": 1},
            "operator 'contains' cannot compare counts",
        ),
        ("length", {"operator": "gt"}, "missing 'value'"),
        (
            "type",
            "int",
            "'type' needs one of string, number, integer, boolean, array, object or null",
        ),
        ("type", "strng", "did you mean 'string'?"),
        ("jsonSchema", "object", "'jsonSchema' needs a schema (a mapping), not 'object'"),
        ("jsonSchema", {"oneOf": []}, "JSON Schema keyword 'oneOf' is not supported"),
        ("jsonSchema", {"type": "obj"}, "schema 'type' must be one of string, number"),
        ("jsonSchema", {"properties": {"id": {"minLenght": 1}}}, "did you mean 'minLength'?"),
        ("jsonSchema", {"pattern": "("}, "'pattern' is not a valid regular expression"),
        (
            "jsonSchema",
            {"additionalProperties": {"type": "string"}},
            "'additionalProperties' must be true or false",
        ),
        ("gt", [1], "'gt' compares with a number or a string, not a list"),
        ("gte", True, "'gte' compares with a number or a string, not true"),
        ("eq", "{{order id}}", "'{{order id}}' is not a variable name"),
    ],
)
def test_operator_values_are_checked(operator: str, value: Any, expected: str) -> None:
    found = step_messages(check("response.body", operator, value))

    assert len(found) == 1
    assert expected in found[0]


def test_assertions_without_match_need_a_non_empty_list() -> None:
    assert step_messages({"action": http(), "assertions": [{"assertions": []}]}) == [
        "scenario 'Scenario' step 1: 'assertions' must list at least one assertion"
    ]


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (
            {
                "count": {"operator": "eq", "value": 0},
                "assertions": [{"path": "response.status", "operator": "eq", "value": 1}],
            },
            "'count' needs 'match' (it counts captured requests)",
        ),
        ({}, "assertion group 1: missing 'assertions'"),
        ({"match": {"origin": "svc"}}, "a group with 'match' needs 'count' or 'assertions'"),
        (
            {"match": {}, "count": {"operator": "eq", "value": 0}},
            "'match' needs at least one of origin, method or url",
        ),
        (
            {"match": {"method": "FETCH"}, "count": {"operator": "eq", "value": 0}},
            "unknown method 'FETCH'",
        ),
        (
            {"match": {"url": "x"}, "count": {"operator": "eq", "value": -1}},
            "'value' must be an integer of at least 0",
        ),
        (
            {"match": {"url": "x"}, "count": {"operator": "matches", "value": 1}},
            "operator 'matches' cannot compare counts",
        ),
        (
            {"path": "response.status", "operator": "eq", "value": 200},
            "unknown key 'path' in an assertion group; a group holds 'assertions: [...]' (put "
            "path/operator/value inside it)",
        ),
    ],
)
def test_assertion_group_rules(group: dict[str, Any], expected: str) -> None:
    found = step_messages({"action": http(), "assertions": [group]})

    assert any(expected in message for message in found), found


def test_match_group_with_count_and_assertions() -> None:
    group = only_step(
        {
            "action": http(),
            "assertions": [
                {
                    "match": {"origin": "svc", "method": "post", "url": "api.x.com"},
                    "count": {"operator": "gte", "value": 1},
                    "assertions": [
                        {"path": "request.headers.idempotency-key", "operator": "exists"}
                    ],
                }
            ],
        }
    ).groups[0]

    assert group.match == {"origin": "svc", "method": "POST", "url": "api.x.com"}
    assert group.count == CountCheck("gte", 1, pos=ANY)
    assert group.assertions == [
        Assertion("request.headers.idempotency-key", "exists", MISSING, pos=ANY)
    ]


@pytest.mark.parametrize(
    ("action", "path", "expected"),
    [
        (http(), "data[0].status", "use a path under response, request or failure"),
        (
            {"type": "dbQuery", "database": "db", "query": "SELECT 1"},
            "response.status",
            "use a path under data",
        ),
        (http(), "latency.p95", "use a path under response, request or failure"),
        (
            {"type": "latencyProbe", "url": "/a", "requests": 5, "rate": 1},
            "response.status",
            "use a path under latency, errors or status",
        ),
    ],
)
def test_paths_must_suit_the_steps_action(action: dict[str, Any], path: str, expected: str) -> None:
    found = step_messages(
        {"action": action, "assertions": [{"assertions": [{"path": path, "operator": "exists"}]}]}
    )

    assert found == [
        f"scenario 'Scenario' step 1: path '{path}' cannot be used on this step; {expected}"
    ]


def test_paths_in_match_groups_are_under_the_captured_request() -> None:
    found = step_messages(
        {
            "action": {"type": "dbQuery", "database": "db", "query": "SELECT 1"},
            "assertions": [
                {"match": {"url": "x"}, "assertions": [{"path": "data[0]", "operator": "exists"}]}
            ],
        }
    )

    assert found == [
        "scenario 'Scenario' step 1: path 'data[0]' cannot be used on captured traffic ('match'); "
        "use a path under request, response, signature or replayed"
    ]


def test_invalid_path_is_reported_at_the_path() -> None:
    found = errors(
        """
        name: s
        tests:
          - name: t
            steps:
              - action: {type: httpRequest, url: /a}
                assertions:
                  - assertions:
                      - path: response.body.items[x]
                        operator: exists
        """
    )

    assert found == [
        "suite.yaml:9:23: scenario 't' step 1: invalid path 'response.body.items[x]': expected an "
        'index such as [0] or a quoted key such as ["name"] at character 20'
    ]


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("response.status", ["response", "status"]),
        ("response.timeMs", ["response", "timeMs"]),
        ("response.headers.content-type", ["response", "headers", "content-type"]),
        ("response.body", ["response", "body"]),
        ("response.body.items[0].sku", ["response", "body", "items", 0, "sku"]),
        ('response.body["odd.key"][12]', ["response", "body", "odd.key", 12]),
        ("response.body['a b']", ["response", "body", "a b"]),
        ('response.body["say \\"hi\\""]', ["response", "body", 'say "hi"']),
        ("request.method", ["request", "method"]),
        ("request.url", ["request", "url"]),
        ("request.headers.authorization", ["request", "headers", "authorization"]),
        (
            "request.body.personalizations[0].to[0].email",
            ["request", "body", "personalizations", 0, "to", 0, "email"],
        ),
        ("data", ["data"]),
        ("data[0].total_cents", ["data", 0, "total_cents"]),
        ("latency.p50", ["latency", "p50"]),
        ("latency.max", ["latency", "max"]),
        ("errors.rate", ["errors", "rate"]),
        ("errors.count", ["errors", "count"]),
        ("status.200", ["status", "200"]),
        ("status.503", ["status", "503"]),
        ("response.body.$id", ["response", "body", "$id"]),
    ],
)
def test_parse_path(path: str, segments: list[str | int]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "the path is empty"),
        (
            "body.id",
            "unknown root 'body'; a path starts with response, request, data, latency, errors, "
            "status, failure, signature, replayed, attempts, file, manifest, files, count, "
            "interchange, mdn, ack or as2",
        ),
        ("respons.status", "did you mean 'response'?"),
        ("response", "'response' needs a field: status, headers, body, timeMs or redirects"),
        (
            "response.code",
            "unknown field 'response.code'; response has status, headers, body, timeMs or "
            "redirects",
        ),
        ("response.statu", "did you mean 'status'?"),
        ("response.status.x", "'response.status' is a single value and has no fields"),
        (
            "response.headers",
            "'response.headers' needs one header name, e.g. response.headers.etag",
        ),
        ("response.headers.a.b", "'response.headers' needs one header name"),
        (
            "request.status",
            "unknown field 'request.status'; request has method, url, headers or body",
        ),
        ("latency.p42", "unknown field 'latency.p42'"),
        ("latency.p95.x", "'latency.p95' is a single value and has no fields"),
        ("errors.total", "unknown field 'errors.total'; errors has rate or count"),
        ("status", "'status' needs an HTTP status code, e.g. status.200"),
        ("status.ok", "'status' needs an HTTP status code"),
        ("status.200.x", "'status.<code>' is a count and has no fields"),
        ("response.body.", "expected a name after '.' at character 15"),
        ("response.body..id", "expected a name after '.' at character 15"),
        ("data[-1]", "expected an index such as [0]"),
        ("data[0", "expected an index such as [0]"),
        ('response.body["open', "the quoted key at character 15 is not closed"),
        ('response.body["k"x', "expected ']' after the quoted key at character 18"),
        ("response.body id", "unexpected ' ' at character 14"),
        ("0.status", "a path starts with one of response, request"),
    ],
)
def test_parse_path_rejects(path: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_path(path)

    assert reason in str(info.value)


# ----------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("api-gateway/v1/orders/{{orderId}}/pay", ["orderId"]),
        ("{{ orderId }}", ["orderId"]),
        ("Bearer {{secret.api_token}}", ["secret.api_token"]),
        ("{{secret.api-key}} {{order.items.0.sku}}", ["secret.api-key", "order.items.0.sku"]),
        ("{{partner.id}}-{{sla.p95}}-{{$uuid}}", ["partner.id", "sla.p95", "$uuid"]),
        ('{"id": {{{orderId}}}}', ["orderId"]),
        ("no templates, just } and }}", []),
    ],
)
def test_template_names(text: str, names: list[str]) -> None:
    assert template_names(text) == names


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("/orders/{{orderId", "'{{' at character 9 is not closed with '}}'"),
        ("{{}}", "empty '{{}}' at character 1"),
        ("{{order-id}}", "'{{order-id}}' is not a variable name"),
        ("{{order..id}}", "'{{order..id}}' is not a variable name"),
        ("{{1st}}", "'{{1st}}' is not a variable name"),
        ("{{partner.}}", "'{{partner.}}' is not a variable name"),
        ("{{$guid}}", "unknown built-in '{{$guid}}'; did you mean '$uuid'?"),
        ("{{$zzzzzz}}", "the built-ins are $uuid, $timestamp, $isoNow or $randomInt"),
    ],
)
def test_template_syntax_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        template_names(text)

    assert reason in str(info.value)


def test_templates_are_checked_everywhere_in_a_step() -> None:
    found = errors(
        """
        name: s
        tests:
          - name: t
            steps:
              - action:
                  type: httpRequest
                  url: /orders/{{orderId
                  headers: {X-Trace: "{{$nope}}"}
                  query: {page: ["{{}}"]}
                  body: {items: [{sku: "{{ bad name }}", "{{key": 1}]}
                assertions:
                  - assertions:
                      - {path: response.status, operator: eq, value: "{{x"}
        """
    )

    assert [line.split(": scenario")[0] for line in found] == [
        "suite.yaml:8:16",
        "suite.yaml:9:30",
        "suite.yaml:10:26",
        "suite.yaml:11:32",
        "suite.yaml:11:50",
        "suite.yaml:14:62",
    ]


def test_template_builtins_in_variables_are_checked() -> None:
    assert messages("name: s\nvariables: {id: '{{$uid}}'}\ntests: []\n")[0].startswith(
        "unknown built-in '{{$uid}}'"
    )


# ----------------------------------------------------------------------------- actions


def test_http_request_defaults() -> None:
    step = only_step({"action": {"type": "httpRequest", "url": "https://sandbox.example.com/a"}})

    assert step.action == HttpRequest(method="GET", url="https://sandbox.example.com/a")
    assert step.action.body is MISSING
    assert (step.name, step.groups, step.extract, step.until, step.continue_on_failure) == (
        "",
        [],
        {},
        None,
        False,
    )


def test_http_request_with_every_option() -> None:
    step = only_step(
        {
            "name": "create order",
            "action": http(
                method="post",
                url="/v1/orders",
                headers={"Idempotency-Key": "{{$uuid}}", "X-Count": 2},
                query={"expand": ["items", "customer"], "page": 1},
                body={"a": "b"},
                bodyType="form",
                timeoutMs=5000,
                followRedirects=False,
            ),
            "continueOnFailure": True,
        }
    )

    assert step.name == "create order"
    assert step.continue_on_failure is True
    assert step.action == HttpRequest(
        method="POST",
        url="/v1/orders",
        headers={"Idempotency-Key": "{{$uuid}}", "X-Count": 2},
        query={"expand": ["items", "customer"], "page": 1},
        body={"a": "b"},
        body_kind="form",
        timeout_ms=5000,
        follow_redirects=False,
    )


def test_raw_body_is_a_string() -> None:
    step = only_step({"action": http(method="POST", body="<xml/>", bodyType="raw")})

    assert (step.action.body, step.action.body_kind) == ("<xml/>", "raw")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"method": "FETCH"},
            "unknown method 'FETCH'; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
        ),
        ({"url": ""}, "'url' must not be empty"),
        ({"url": "/a b"}, "'url' must not contain spaces"),
        (
            {"url": "ftp://files.example.com/x"},
            "'url' must be http:// or https://, a /path, or endpoint-name/path",
        ),
        ({"body": {"a": 1}, "bodyType": "raw"}, "a raw body must be a string, not a mapping"),
        ({"body": {"a": {"b": 1}}, "bodyType": "form"}, "a form body must be a flat mapping"),
        ({"body": "a=b", "bodyType": "form"}, "a form body must be a flat mapping"),
        ({"body": {"on": True}, "bodyType": "form"}, "a form body must be a flat mapping"),
        (
            {"headers": {"X-Flag": True}},
            "header 'X-Flag' must be a string or number, not true (quote it)",
        ),
        ({"bodyType": "json"}, "'bodyType' is given but there is no 'body'"),
        ({"body": "x", "bodyType": "xml"}, "unknown bodyType 'xml'; use json, form or raw"),
        ({"timeoutMs": 0}, "'timeoutMs' must be an integer from 1 to 600000, not 0"),
        ({"timeoutMs": 600001}, "'timeoutMs' must be an integer from 1 to 600000, not 600001"),
        ({"timeoutMs": 1.5}, "'timeoutMs' must be an integer from 1 to 600000, not 1.5"),
        ({"timeoutMs": "5s"}, "'timeoutMs' must be an integer from 1 to 600000, not '5s'"),
        (
            {"followRedirects": "yes please"},
            "'followRedirects' must be true or false, not 'yes please'",
        ),
        (
            {"auth": "off"},
            "'auth' must be 'none' (send without the endpoint's credentials) or 'endpoint'",
        ),
        ({"headers": {"Content Type": "x"}}, "'Content Type' is not a valid header name"),
        (
            {"headers": {"Accept": "a", "accept": "b"}},
            "header 'accept' is given twice (as 'Accept')",
        ),
        ({"headers": {"X-A": {"b": 1}}}, "header 'X-A' must be a string or number, not a mapping"),
        ({"headers": ["X-A: b"]}, "'headers' must be a mapping, not a list"),
        ({"query": {"a": {"b": 1}}}, "query parameter 'a' must be a scalar or a list of scalars"),
    ],
)
def test_http_request_fields_are_checked(extra: dict[str, Any], expected: str) -> None:
    found = step_messages({"action": http(**extra)})

    assert len(found) == 1, found
    assert expected in found[0]


def test_auth_none_sends_a_request_without_the_endpoints_credentials() -> None:
    suite = parse(
        "name: s\ntests:\n  - name: t\n    steps:\n"
        "      - action: {type: httpRequest, url: /a, auth: none}\n"
        "      - action: {type: httpRequest, url: /a, auth: endpoint}\n"
        "      - action: {type: httpRequest, url: /a}\n"
    )
    assert [step.action.use_auth for step in suite.scenarios[0].steps] == [False, True, True]


def test_http_request_needs_a_url() -> None:
    assert step_messages({"action": {"type": "httpRequest"}}) == [
        "scenario 'Scenario' step 1: missing 'url'"
    ]


def test_action_needs_a_type() -> None:
    assert step_messages({"action": {"url": "/a"}}) == [
        "scenario 'Scenario' step 1: missing 'type'"
    ]


def test_db_query_action() -> None:
    step = only_step(
        {
            "action": {
                "type": "dbQuery",
                "database": "postgres-db",
                "query": "SELECT * FROM orders WHERE id = %s",
                "params": ["{{orderId}}"],
            },
            "assertions": [{"assertions": [{"path": "data", "operator": "length", "value": 1}]}],
            "extract": {"status": "data[0].status"},
        }
    )

    assert step.action == DbQuery(
        "postgres-db", "SELECT * FROM orders WHERE id = %s", ["{{orderId}}"]
    )
    assert step.extract == {"status": "data[0].status"}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"type": "dbQuery", "query": "SELECT 1"}, "missing 'database'"),
        ({"type": "dbQuery", "database": "db"}, "missing 'query'"),
        (
            {"type": "dbQuery", "database": "db", "query": "SELECT 1", "params": "1"},
            "'params' must be a list",
        ),
        (
            {"type": "dbQuery", "database": "db", "query": "SELECT 1", "params": [[1]]},
            "a query parameter must be a scalar",
        ),
        ({"type": "wait"}, "missing 'ms'"),
        ({"type": "wait", "ms": -1}, "'ms' must be an integer from 0 to 600000, not -1"),
        ({"type": "wait", "ms": 600001}, "'ms' must be an integer from 0 to 600000"),
        ({"type": "wait", "durationMs": 5, "ms": 5}, "unknown key 'durationMs' in a wait action"),
    ],
)
def test_db_query_and_wait_fields_are_checked(action: dict[str, Any], expected: str) -> None:
    found = step_messages({"action": action})

    assert any(expected in message for message in found), found


def test_wait_action() -> None:
    assert only_step({"action": {"type": "wait", "ms": 250}}).action == Wait(250)


def test_a_wait_step_has_nothing_to_assert_or_extract() -> None:
    found = step_messages(
        {
            "action": {"type": "wait", "ms": 1},
            "assertions": [{"assertions": [{"path": "response.status", "operator": "exists"}]}],
            "extract": {"x": "response.status"},
        }
    )

    assert (
        "scenario 'Scenario' step 1: a wait step has nothing to assert (it may check captured "
        "traffic with 'match')" in found
    )
    assert "scenario 'Scenario' step 1: a wait step has nothing to extract" in found


def test_latency_probe_with_concurrency() -> None:
    step = only_step(
        {
            **probe(method="post", body={"a": 1}, concurrency=10, expectStatus=[200, 201]),
            "assertions": [
                {
                    "assertions": [
                        {"path": "latency.p95", "operator": "lte", "value": "{{sla.p95}}"},
                        {"path": "errors.rate", "operator": "lt", "value": 0.01},
                        {"path": "status.201", "operator": "gte", "value": 1},
                    ]
                }
            ],
        }
    )

    assert step.action == LatencyProbe(
        request=HttpRequest(method="POST", url="/v1/ping", body={"a": 1}),
        requests=100,
        concurrency=10,
        expect_status=[200, 201],
    )


def test_latency_probe_with_rate_and_a_single_expected_status() -> None:
    action = only_step(probe(rate=12.5, expectStatus=204)).action

    assert (action.rate, action.concurrency, action.expect_status) == (12.5, None, [204])


def test_latency_probe_expects_200_by_default() -> None:
    assert only_step(probe(concurrency=1)).action.expect_status == [200]


def test_latency_probe_names_its_flow_for_flow_slas() -> None:
    assert only_step(probe(concurrency=1, flow="checkout")).action.flow == "checkout"
    assert only_step(probe(concurrency=1)).action.flow == ""


def test_latency_probe_flow_must_be_a_lower_case_name() -> None:
    (message,) = step_messages(probe(concurrency=1, flow="Check Out"))
    assert "'flow' must be lower-case letters, digits" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "a latencyProbe needs 'concurrency' or 'rate'"),
        (
            {"concurrency": 5, "rate": 10},
            "give either 'concurrency' (workers back to back) or 'rate' (requests per second), "
            "not both",
        ),
    ],
)
def test_latency_probe_needs_exactly_one_of_concurrency_or_rate(
    extra: dict[str, Any], expected: str
) -> None:
    assert step_messages(probe(**extra)) == [f"scenario 'Scenario' step 1: {expected}"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"requests": 0, "rate": 1}, "'requests' must be an integer from 1 to 100000, not 0"),
        ({"requests": 100001, "rate": 1}, "'requests' must be an integer from 1 to 100000"),
        ({"concurrency": 0}, "'concurrency' must be an integer from 1 to 1000, not 0"),
        ({"concurrency": 1001}, "'concurrency' must be an integer from 1 to 1000"),
        ({"rate": 0}, "'rate' must be more than 0 and at most 10000, not 0"),
        ({"rate": 10001}, "'rate' must be more than 0 and at most 10000"),
        ({"rate": "fast"}, "'rate' must be a number of requests per second, not 'fast'"),
        (
            {"rate": 1, "expectStatus": [200, 700]},
            "'expectStatus' must be an integer from 100 to 599, not 700",
        ),
        ({"rate": 1, "expectStatus": []}, "'expectStatus' must list at least one status"),
        (
            {"rate": 1, "followRedirects": False},
            "unknown key 'followRedirects' in a latencyProbe action",
        ),
    ],
)
def test_latency_probe_bounds(extra: dict[str, Any], expected: str) -> None:
    action = {"type": "latencyProbe", "url": "/v1/ping", "requests": 100, **extra}

    found = step_messages({"action": action})

    assert len(found) == 1, found
    assert expected in found[0]


# ----------------------------------------------------------------------------- steps and scenarios


def test_until_defaults() -> None:
    step = only_step(
        {
            "action": http(),
            "until": {"path": "response.body.state", "operator": "eq", "value": "done"},
        }
    )

    assert step.until == Until(
        "response.body.state", "eq", "done", timeout_ms=30_000, interval_ms=1_000
    )


def test_until_with_exists_and_timings() -> None:
    until = only_step(
        {
            "action": http(),
            "until": {
                "path": "response.body.id",
                "operator": "exists",
                "timeoutMs": 5000,
                "intervalMs": 10,
            },
        }
    ).until

    assert until == Until("response.body.id", "exists", MISSING, timeout_ms=5000, interval_ms=10)


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (
            {"path": "response.status", "operator": "eq", "value": 1, "timeoutMs": 600001},
            "'timeoutMs' must be an integer from 1 to 600000",
        ),
        (
            {"path": "response.status", "operator": "eq", "value": 1, "intervalMs": 5},
            "'intervalMs' must be an integer from 10 to 600000, not 5",
        ),
        (
            {
                "path": "response.status",
                "operator": "eq",
                "value": 1,
                "timeoutMs": 100,
                "intervalMs": 200,
            },
            "'intervalMs' (200) must not exceed 'timeoutMs' (100)",
        ),
        ({"operator": "eq", "value": 1}, "missing 'path'"),
        ({"path": "response.status", "value": 1}, "missing 'operator'"),
        ({"path": "response.status", "operator": "equal", "value": 1}, "did you mean 'eq'?"),
        ({"path": "data[0]", "operator": "exists"}, "path 'data[0]' cannot be used on this step"),
    ],
)
def test_until_fields_are_checked(until: dict[str, Any], expected: str) -> None:
    found = step_messages({"action": http(), "until": until})

    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ({"type": "wait", "ms": 1}, "wait"),
        ({"type": "latencyProbe", "url": "/a", "requests": 1, "rate": 1}, "latencyProbe"),
        ({"type": "dbQuery", "database": "db", "query": "SELECT 1"}, "dbQuery"),
    ],
)
def test_until_only_repeats_http_requests(action: dict[str, Any], kind: str) -> None:
    found = step_messages({"action": action, "until": {"path": "data", "operator": "exists"}})

    expected = f"'until' repeats an httpRequest action, not a {kind} action"
    assert any(message.endswith(expected) for message in found), found


@pytest.mark.parametrize(
    ("extract", "expected"),
    [
        (
            {"order-id": "response.body.id"},
            "extracted variable name 'order-id' must be letters, digits and '_'",
        ),
        ({"partner": "response.body.id"}, "extracted variable name 'partner' is reserved"),
        ({"id": "response.bdy.id"}, "invalid path 'response.bdy.id'"),
        ({"id": 5}, "'path' must be a string, not 5"),
    ],
)
def test_extract_is_checked(extract: dict[str, Any], expected: str) -> None:
    found = step_messages({"action": http(), "extract": extract})

    assert len(found) == 1, found
    assert expected in found[0]


def test_continue_on_failure_must_be_a_boolean() -> None:
    assert step_messages({"action": http(), "continueOnFailure": "yes please"}) == [
        "scenario 'Scenario' step 1: 'continueOnFailure' must be true or false, not 'yes please'"
    ]


def test_scenario_code_and_kind() -> None:
    suite = parse(
        """
        name: s
        tests:
          - name: Order created
            code: B-002
            kind: exception
            description: The partner rejects an unknown SKU.
            steps:
              - action: {type: wait, ms: 1}
        """
    )

    assert (suite.scenarios[0].code, suite.scenarios[0].kind) == ("B-002", "exception")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("code: b-002", "'code' must look like B-002 (1-4 capitals, '-', 1-4 digits), not 'b-002'"),
        ("code: B-00002", "'code' must look like B-002"),
        ("kind: happy", "unknown kind 'happy'; use main, alt, exception or cross"),
        ("kind: Alt", "did you mean 'alt'?"),
    ],
)
def test_scenario_fields_are_checked(fields: str, expected: str) -> None:
    found = messages(
        f"name: s\ntests:\n- name: t\n  {fields}\n  steps: [{{action: {{type: wait, ms: 1}}}}]\n"
    )

    assert len(found) == 1, found
    assert expected in found[0]


def test_scenario_names_and_codes_are_unique() -> None:
    found = errors(
        """
        name: s
        tests:
          - {name: A, code: B-001, steps: [{action: {type: wait, ms: 1}}]}
          - {name: A, code: B-001, steps: [{action: {type: wait, ms: 1}}]}
        """
    )

    assert found == [
        "suite.yaml:5:12: scenario 'A': duplicate scenario name (first at line 4)",
        "suite.yaml:5:21: scenario 'A': duplicate scenario code 'B-001' (first at line 4)",
    ]


def test_suite_fields() -> None:
    suite = parse(
        """
        name: partner-certification
        description: Orders API, MAE set
        version: 1.10
        variables:
          sku: WIDGET-001
          quantity: 2
          trace: "{{$uuid}}"
        tests:
          - name: t
            steps:
              - action: {type: wait, ms: 1}
        """
    )

    assert suite.description == "Orders API, MAE set"
    assert suite.version == "1.10"  # as written, not the float 1.1
    assert suite.variables == {"sku": "WIDGET-001", "quantity": 2, "trace": "{{$uuid}}"}
    assert suite.mocks == []
    assert suite.warnings == []


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ("[a, b]", "'variables' must be a mapping, not a list"),
        ("{sla: 1}", "variable name 'sla' is reserved"),
        ("{2x: 1}", "variable name '2x' must be letters, digits and '_'"),
    ],
)
def test_variables_are_checked(variables: str, expected: str) -> None:
    found = messages(f"name: s\nvariables: {variables}\n{MINIMAL_TESTS}")

    assert len(found) == 1, found
    assert expected in found[0]


def test_version_must_be_a_string_or_number() -> None:
    assert "'version' must be a string or a number, not a list" in messages(
        "name: s\nversion: [1]\ntests: []\n"
    )


# ----------------------------------------------------------------------------- items, mocks, $ref

MINIMAL_TESTS = """
tests:
  - name: t
    steps:
      - action: {type: wait, ms: 1}
"""


def items_suite(items: str, **kwargs: Any) -> Suite:
    return parse_suite(
        "name: s\nitems:\n" + textwrap.indent(textwrap.dedent(items), "  ") + MINIMAL_TESTS,
        filename="suite.yaml",
        **kwargs,
    )


def items_errors(items: str, **kwargs: Any) -> list[str]:
    with pytest.raises(SuiteInvalid) as info:
        items_suite(items, **kwargs)
    return [str(error) for error in info.value.errors]


def test_mock_defaults() -> None:
    [mock] = items_suite("- {type: MOCK, name: m, mockTarget: api.x.com, mockPath: /v1/*}").mocks

    assert mock == Mock("m", "api.x.com", "/v1/*", pos=Pos("suite.yaml", 3, 5))
    assert mock.body is MISSING
    assert (mock.status, mock.headers, mock.delay_ms) == (200, {}, 0)


def test_mock_header_numbers_become_strings() -> None:
    [mock] = items_suite(
        "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockResponseHeaders: {retry-after: 2}}"
    ).mocks

    assert mock.headers == {"retry-after": "2"}


def test_mock_body_contains_and_matches_are_mutually_exclusive() -> None:
    found = items_errors(
        """
        - type: MOCK
          name: m
          mockTarget: api.openai.com
          mockPath: /v1/chat/completions
          mockRequestBodyContains: search
          mockRequestBodyMatches: search
        """
    )

    assert found == [
        "suite.yaml:9:5: mock 'm': use either 'mockRequestBodyContains' or "
        "'mockRequestBodyMatches', not both"
    ]


def test_mock_body_matches_must_compile() -> None:
    found = items_errors(
        "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockRequestBodyMatches: '(unclosed'}"
    )

    assert found == [
        "suite.yaml:3:79: mock 'm': 'mockRequestBodyMatches' is not a valid regular expression: "
        "missing ), unterminated subpattern at position 0"
    ]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("- {type: MOCK, name: m, mockPath: /}", "mock 'm': missing 'mockTarget'"),
        ("- {type: MOCK, mockTarget: a, mockPath: /}", "item 1: missing 'name'"),
        (
            "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockResponseStatus: 99}",
            "'mockResponseStatus' must be an integer from 100 to 599",
        ),
        (
            "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockDelayMs: -5}",
            "'mockDelayMs' must be an integer from 0 to 600000",
        ),
        (
            "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockResponseHeader: {}}",
            "did you mean 'mockResponseHeaders'?",
        ),
        (
            "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockResponseHeaders: {a: [1]}}",
            "header 'a' must be a string, not a list",
        ),
        ("- {type: mock, name: m}", "unknown item type 'mock'; did you mean 'MOCK'?"),
        (
            "- {name: lonely}",
            "an item needs 'type' (MOCK, or a Dokkimi SERVICE/DATABASE) or '$ref'",
        ),
        ("- {type: 7}", "'type' must be a string, not 7"),
        ("- just-a-string", "an item must be a mapping, not 'just-a-string'"),
    ],
)
def test_items_are_checked(item: str, expected: str) -> None:
    found = items_errors(item)

    assert len(found) == 1, found
    assert expected in found[0]


def test_service_like_item_without_a_type_is_ignored_with_a_warning() -> None:
    suite = items_suite("- {name: worker, image: acme/worker:1, port: 9000}")

    assert suite.warnings == [
        "suite.yaml:3:5: item 'worker' (no type) is not used by certification runs; ignored"
    ]


def test_ref_without_a_loader_is_an_error() -> None:
    assert items_errors("- $ref: ../shared/mock.yaml") == [
        "suite.yaml:3:11: item 1: $ref needs a file: suites uploaded as one document cannot "
        "include others"
    ]


def test_ref_is_resolved_relative_to_the_including_file() -> None:
    loader = dict_loader(
        {
            "shared/mock.yaml": (
                "- $ref: more/second.yaml\n- {type: MOCK, name: one, mockTarget: a, mockPath: /}\n"
            ),
            "shared/more/second.yaml": "{type: MOCK, name: two, mockTarget: b, mockPath: /}\n",
        }
    )

    suite = parse_suite(
        "name: s\nitems:\n  - $ref: ../shared/mock.yaml\n" + MINIMAL_TESTS,
        filename="defs/a.yaml",
        loader=loader,
    )

    assert loader.calls == ["shared/mock.yaml", "shared/more/second.yaml"]
    assert [(mock.name, mock.pos) for mock in suite.mocks] == [
        ("two", Pos("shared/more/second.yaml", 1, 1)),
        ("one", Pos("shared/mock.yaml", 2, 3)),
    ]


def test_a_file_included_twice_is_read_once_and_its_mocks_repeat() -> None:
    loader = dict_loader({"m.yaml": "{type: MOCK, name: m, mockTarget: a, mockPath: /}\n"})

    suite = items_suite("- $ref: m.yaml\n- $ref: ./m.yaml\n", loader=loader)

    assert loader.calls == ["m.yaml"]
    assert [mock.name for mock in suite.mocks] == ["m", "m"]
    assert suite.mocks[0] is not suite.mocks[1]


def test_unreadable_ref_is_reported_at_the_ref() -> None:
    found = parse_errors_with_ref("../shared/missing.yaml", {}, filename="defs/a.yaml")

    assert found == [
        "defs/a.yaml:3:11: item 1: cannot read '../shared/missing.yaml' (resolved to "
        "'shared/missing.yaml'): no such file"
    ]


def parse_errors_with_ref(
    ref: str, files: dict[str, str], filename: str = "suite.yaml"
) -> list[str]:
    with pytest.raises(SuiteInvalid) as info:
        parse_suite(
            f"name: s\nitems:\n  - $ref: {ref}\n" + MINIMAL_TESTS,
            filename=filename,
            loader=dict_loader(files),
        )
    return [str(error) for error in info.value.errors]


def test_loader_errors_other_than_missing_files_are_reported_too() -> None:
    def loader(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    assert items_errors("- $ref: m.yaml", loader=loader) == [
        "suite.yaml:3:11: item 1: cannot read 'm.yaml': Permission denied"
    ]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "/etc/passwd.yaml",
            "$ref '/etc/passwd.yaml' must be a relative path such as ../shared/x.yaml",
        ),
        ("https://example.com/m.yaml", "must be a relative path"),
        ("C:/suites/m.yaml", "must be a relative path"),
        ("..\\\\shared\\\\m.yaml", "must be a relative path"),
        ("../shared/seed.sql", "$ref '../shared/seed.sql' must name a .yaml, .yml or .json file"),
        ("m", "must name a .yaml, .yml or .json file"),
    ],
)
def test_ref_must_be_a_relative_yaml_or_json_path(ref: str, expected: str) -> None:
    found = parse_errors_with_ref(f'"{ref}"', {})

    assert len(found) == 1
    assert expected in found[0]


def test_ref_json_and_yml_files_are_allowed() -> None:
    loader = dict_loader(
        {
            "a.json": '{"type": "MOCK", "name": "j", "mockTarget": "a", "mockPath": "/"}',
            "b.YML": "type: MOCK\nname: y\nmockTarget: a\nmockPath: /\n",
        }
    )

    assert [m.name for m in items_suite("- $ref: a.json\n- $ref: b.YML", loader=loader).mocks] == [
        "j",
        "y",
    ]


def test_ref_item_holds_only_the_ref() -> None:
    found = items_errors(
        "- {$ref: m.yaml, name: x}", loader=dict_loader({"m.yaml": "{type: SERVICE}"})
    )

    assert found == ["suite.yaml:3:20: item 1: a $ref item holds only '$ref', not 'name'"]


def test_ref_to_itself_is_a_cycle() -> None:
    found = parse_errors_with_ref("suite.yaml", {"suite.yaml": "{}"})

    assert found == ["suite.yaml:3:11: item 1: $ref cycle: suite.yaml -> suite.yaml"]


def test_included_file_must_hold_items() -> None:
    found = parse_errors_with_ref("m.yaml", {"m.yaml": "just text\n"})

    assert found == [
        "m.yaml:1:1: an included file holds one item or a list of items, not 'just text'"
    ]


def test_errors_inside_an_included_file_are_reported_once_at_their_own_position() -> None:
    loader = dict_loader(
        {"m.yaml": "- {type: MOCK, name: m, mockTarget: a, mockPath: /, mockDelayMs: x}\n"}
    )

    found = items_errors("- $ref: m.yaml\n- $ref: m.yaml\n", loader=loader)

    assert found == [
        "m.yaml:1:66: mock 'm': 'mockDelayMs' must be an integer from 0 to 600000, not 'x'"
    ]


def test_too_many_refs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec, "MAX_REFS", 3)
    loader = dict_loader({"m.yaml": "{type: SERVICE, name: x}"})

    found = items_errors("- $ref: m.yaml\n" * 5, loader=loader)

    assert found == ["suite.yaml:6:11: item 4: too many $ref includes (the limit is 3)"]


# ----------------------------------------------------------------------------- load_suite_file


def test_load_suite_file_follows_refs_on_disk(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "defs").mkdir()
    (tmp_path / "shared" / "m.yaml").write_text("type: MOCK\nname: m\nmockTarget: a\nmockPath: /\n")
    top = tmp_path / "defs" / "a.yaml"
    top.write_text("name: s\nitems:\n  - $ref: ../shared/m.yaml\n" + MINIMAL_TESTS)

    suite = load_suite_file(top)

    assert suite.mocks[0].pos == Pos((tmp_path / "shared" / "m.yaml").as_posix(), 1, 1)


def test_load_suite_file_reports_a_missing_file_as_suite_invalid(tmp_path: Path) -> None:
    path = (tmp_path / "nope.yaml").as_posix()

    with pytest.raises(SuiteInvalid) as info:
        load_suite_file(path)

    assert [str(error) for error in info.value.errors] == [
        f"{path}:1:1: cannot read '{path}': no such file"
    ]


def test_load_suite_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    top = tmp_path / "a.yaml"
    top.write_text("name: s\nitems:\n  - $ref: dir.yaml\n" + MINIMAL_TESTS)

    with pytest.raises(SuiteInvalid) as info:
        load_suite_file(top)

    assert "is not a regular file" in str(info.value)


def test_load_suite_file_reads_no_more_than_the_cap(tmp_path: Path) -> None:
    top = tmp_path / "big.yaml"
    top.write_bytes(b"#" * (3 * MAX_SUITE_BYTES))

    with pytest.raises(SuiteInvalid) as info:
        load_suite_file(top)

    assert f"({MAX_SUITE_BYTES + 1:,} bytes;" in str(info.value)


# ----------------------------------------------------------------------------- read_suite_sources


def test_read_suite_sources_keys_files_relative_to_the_suites_folder(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "defs").mkdir()
    mock = "type: MOCK\nname: m\nmockTarget: a\nmockPath: /\n"
    (tmp_path / "shared" / "m.yaml").write_text(mock)
    top = tmp_path / "defs" / "a.yaml"
    text = "name: s\nitems:\n  - $ref: ../shared/m.yaml\n" + MINIMAL_TESTS
    top.write_bytes(b"\xef\xbb\xbf" + text.encode())

    read = read_suite_sources(top)

    assert read.entry == "a.yaml"
    assert read.sources == {"a.yaml": text, "../shared/m.yaml": mock}
    assert read.suite.mocks[0].pos == Pos("../shared/m.yaml", 1, 1)
    assert parse_suite(text, filename="a.yaml", loader=read.sources.__getitem__) == read.suite


def test_read_suite_sources_reports_a_bad_byte_in_a_referenced_file_at_the_byte(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text("name: s\nitems:\n  - $ref: m.yaml\n" + MINIMAL_TESTS)
    (tmp_path / "m.yaml").write_bytes(b"type: MOCK\nname: caf\xe9\nmockTarget: a\nmockPath: /\n")

    with pytest.raises(SuiteInvalid) as info:
        read_suite_sources(tmp_path / "a.yaml")

    assert [str(error) for error in info.value.errors] == [
        "m.yaml:2:10: not valid UTF-8 (byte 0xe9 at offset 20)"
    ]


def test_read_suite_sources_caps_referenced_files_and_reads_no_more(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: s\nitems:\n  - $ref: big.yaml\n" + MINIMAL_TESTS)
    (tmp_path / "big.yaml").write_bytes(b"#" * (3 * MAX_SUITE_BYTES))

    with pytest.raises(SuiteInvalid) as info:
        read_suite_sources(tmp_path / "a.yaml")

    assert [str(error) for error in info.value.errors] == [
        f"a.yaml:3:11: item 1: 'big.yaml' is too large ({MAX_SUITE_BYTES + 1:,} bytes; "
        f"the limit is {MAX_SUITE_BYTES:,} bytes)"
    ]


def test_read_suite_sources_names_a_missing_file_as_given(tmp_path: Path) -> None:
    with pytest.raises(SuiteInvalid) as info:
        read_suite_sources(tmp_path / "nope.yaml")

    assert [str(error) for error in info.value.errors] == [
        f"nope.yaml:1:1: cannot read '{tmp_path.as_posix()}/nope.yaml': no such file"
    ]


# ----------------------------------------------------------------------------- check_suite_bytes


def test_check_suite_bytes_returns_the_text_without_a_byte_order_mark() -> None:
    assert check_suite_bytes(b"\xef\xbb\xbfname: s\n", filename="s.yaml") == "name: s\n"
    assert check_suite_bytes("name: é\n", filename="s.yaml") == "name: é\n"


def test_check_suite_bytes_reports_invalid_utf8_at_the_line_column_and_offset() -> None:
    with pytest.raises(SuiteInvalid) as info:
        check_suite_bytes(b"name: s\ndescription: caf\xe9\n", filename="up/s.yaml")

    assert str(info.value) == "up/s.yaml:2:17: not valid UTF-8 (byte 0xe9 at offset 24)"


def test_check_suite_bytes_does_not_count_a_byte_order_mark_as_a_column() -> None:
    with pytest.raises(SuiteInvalid) as info:
        check_suite_bytes(b"\xef\xbb\xbfname: caf\xe9\n", filename="s.yaml")

    assert str(info.value) == "s.yaml:1:10: not valid UTF-8 (byte 0xe9 at offset 12)"


def test_check_suite_bytes_refuses_more_than_the_cap_in_utf8_bytes() -> None:
    text = "é" * (MAX_SUITE_BYTES // 2 + 1)

    with pytest.raises(SuiteInvalid) as info:
        check_suite_bytes(text, filename="s.yaml")

    assert str(info.value) == (
        f"s.yaml:1:1: the suite file is too large ({MAX_SUITE_BYTES + 2:,} bytes; the limit is "
        f"{MAX_SUITE_BYTES:,} bytes)"
    )


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_ignores_dict_order_and_line_endings() -> None:
    one = suite_fingerprint({"a.yaml": "name: s\n", "b.yaml": "x: 1\n"})
    two = suite_fingerprint({"b.yaml": "x: 1\r\n", "a.yaml": "\ufeffname: s\r\n"})

    assert one == two
    assert len(one) == 64 and int(one, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        {"a.yaml": "name: t\n", "b.yaml": "x: 1\n"},
        {"c.yaml": "name: s\n", "b.yaml": "x: 1\n"},
        {"a.yaml": "name: s\n"},
        {"a.yaml": "name: s\nx: 1\n"},
    ],
)
def test_fingerprint_changes_with_content_or_names(other: dict[str, str]) -> None:
    assert suite_fingerprint(other) != suite_fingerprint(
        {"a.yaml": "name: s\n", "b.yaml": "x: 1\n"}
    )


# ----------------------------------------------------------------------------- the JSON Schema


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def schema_keys(*where: str) -> set[str]:
    node = schema()
    for part in where:
        node = node[part]
    return set(node["properties"])


@pytest.mark.parametrize(
    ("where", "parser_keys"),
    [
        ((), spec.TOP_LEVEL_KEYS),
        (("$defs", "scenario"), spec.SCENARIO_KEYS),
        (("$defs", "step"), spec.STEP_KEYS),
        (("$defs", "httpRequest"), spec.ACTION_KEYS["httpRequest"]),
        (("$defs", "dbQuery"), spec.ACTION_KEYS["dbQuery"]),
        (("$defs", "wait"), spec.ACTION_KEYS["wait"]),
        (("$defs", "latencyProbe"), spec.ACTION_KEYS["latencyProbe"]),
        (("$defs", "waitForRequest"), spec.ACTION_KEYS["waitForRequest"]),
        (("$defs", "webhook"), spec.ACTION_KEYS["webhook"]),
        (("$defs", "sftpUpload"), spec.ACTION_KEYS["sftpUpload"]),
        (("$defs", "waitForFile"), spec.ACTION_KEYS["waitForFile"]),
        (("$defs", "sftpList"), spec.ACTION_KEYS["sftpList"]),
        (("$defs", "assertionGroup"), spec.GROUP_KEYS),
        (("$defs", "match"), spec.MATCH_KEYS),
        (("$defs", "count"), spec.COUNT_KEYS),
        (("$defs", "assertion"), spec.ASSERTION_KEYS),
        (("$defs", "until"), spec.UNTIL_KEYS),
        (("$defs", "mock"), spec.MOCK_KEYS),
        (("$defs", "jsonSchemaSubset"), spec.SCHEMA_KEYWORDS),
    ],
)
def test_schema_and_parser_know_the_same_keys(
    where: tuple[str, ...], parser_keys: tuple[str, ...]
) -> None:
    assert schema_keys(*where) == set(parser_keys)


def test_schema_action_types_are_the_parsers() -> None:
    actions = schema()["$defs"]["action"]
    assert actions["properties"]["type"]["enum"] == list(spec.ACTION_TYPES)
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in actions["oneOf"]] == list(spec.ACTION_TYPES)
    for kind in spec.ACTION_TYPES:
        assert schema()["$defs"][kind]["properties"]["type"] == {"const": kind}


def test_schema_operators_kinds_and_limits_are_the_parsers() -> None:
    defs = schema()["$defs"]
    assert defs["operator"]["enum"] == list(spec.OPERATORS)
    assert defs["comparison"]["enum"] == list(spec.COMPARISONS)
    assert defs["typeName"]["enum"] == list(spec.TYPE_NAMES)
    assert defs["scenario"]["properties"]["kind"]["enum"] == list(spec.SCENARIO_KINDS)
    assert defs["httpRequest"]["properties"]["bodyType"]["enum"] == list(spec.BODY_TYPES)
    assert defs["httpRequest"]["properties"]["auth"]["enum"] == list(spec.AUTH_CHOICES)


SAMPLE_VALUES: dict[str, Any] = {
    "name": "n", "description": "d", "version": "1", "variables": {}, "items": [], "tests": [],
    "code": "B-001", "kind": "main", "steps": [], "action": {"type": "wait", "ms": 1},
    "assertions": [], "extract": {}, "until": {}, "continueOnFailure": True,
    "method": "GET", "url": "/a", "headers": {}, "query": {}, "body": "b", "bodyType": "raw",
    "timeoutMs": 5, "followRedirects": True, "auth": "none", "database": "db", "params": [],
    "ms": 1, "requests": 1, "concurrency": 1, "rate": 1, "expectStatus": 200,
}  # fmt: skip


def keys_rejected(doc: dict[str, Any]) -> list[str]:
    try:
        parse_suite(json.dumps(doc), filename="suite.json")
    except SuiteInvalid as exc:
        return [e.message for e in exc.errors if "unknown key" in e.message]
    return []


def suite_with(where: str, key: str) -> dict[str, Any]:
    """A suite with ``key`` written at ``where`` (top, scenario, step or an action type)."""
    value = SAMPLE_VALUES.get(key, "x")
    action: dict[str, Any] = {"type": "wait", "ms": 1}
    step: dict[str, Any] = {"action": action}
    scenario: dict[str, Any] = {"name": "t", "steps": [step]}
    doc: dict[str, Any] = {"name": "s", "tests": [scenario]}
    target = {"top": doc, "scenario": scenario, "step": step}.get(where)
    if target is None:
        action.clear()
        action["type"] = where
        target = action
    target[key] = value if key != "type" else target.get("type", value)
    return doc


@pytest.mark.parametrize(
    ("where", "schema_path"),
    [
        ("top", ()),
        ("scenario", ("$defs", "scenario")),
        ("step", ("$defs", "step")),
        *[(kind, ("$defs", kind)) for kind in ("httpRequest", "dbQuery", "wait", "latencyProbe")],
    ],
)
def test_parser_accepts_every_key_the_schema_lists_and_rejects_others(
    where: str, schema_path: tuple[str, ...]
) -> None:
    for key in schema_keys(*schema_path):
        assert keys_rejected(suite_with(where, key)) == [], key
    assert keys_rejected(suite_with(where, "notInTheSchema")) != []


def test_schema_is_draft_2020_12_with_resolvable_refs() -> None:
    document = schema()
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        if ref.startswith("#/$defs/"):
            assert ref.removeprefix("#/$defs/") in document["$defs"], ref


# ----------------------------------------------------------------------------- the reference


def test_the_docs_complete_example_is_a_valid_suite() -> None:
    doc = (REPO / "docs" / "scenario-format.md").read_text()
    example = doc.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]

    suite = parse_suite(example, filename="definitions/example.yaml", loader=disk_loader)

    assert [scenario.code for scenario in suite.scenarios] == ["B-001", "B-002", "B-090"]
    assert [mock.name for mock in suite.mocks] == ["mock-stripe"]
    assert len(suite.warnings) == 1


def test_a_relative_url_whose_query_holds_a_url_is_valid() -> None:
    step = only_step({"action": http(url="/callback?to=http://127.0.0.1:8605/hdrs")})
    assert step.action.url == "/callback?to=http://127.0.0.1:8605/hdrs"
    step = only_step({"action": http(url="api/authorize?redirect_uri=https://app.example/cb")})
    assert step.action.url.startswith("api/authorize")


@pytest.mark.parametrize("url", ["ftp://files.example/x", "htp://typo.example/"])
def test_a_url_with_another_scheme_is_still_refused(url: str) -> None:
    (message,) = step_messages({"action": http(url=url)})
    assert "'url' must be http:// or https://, a /path, or endpoint-name/path" in message


def test_a_converted_path_is_checked_like_the_path_inside_it() -> None:
    assert parse_path("number(response.headers.x-total-count)") == [
        "response", "headers", "x-total-count"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown field 'response.stauts'"):
        parse_path("number(response.stauts)")


def test_extracting_a_failure_without_asserting_on_it_is_refused() -> None:
    found = errors(
        "name: s\ntests:\n  - name: t\n    steps:\n"
        "      - action: {type: httpRequest, method: GET, url: /x}\n"
        "        extract: {why: failure.kind}\n"
    )
    assert any("only there when the step asserts on failure.kind" in e for e in found)


def test_until_on_a_failure_path_is_refused() -> None:
    found = errors(
        "name: s\ntests:\n  - name: t\n    steps:\n"
        "      - action: {type: httpRequest, method: GET, url: /x}\n"
        "        until: {path: failure.kind, operator: eq, value: timeout}\n"
    )
    assert any("cannot poll" in e for e in found)


def test_until_on_a_step_that_expects_a_failure_is_refused() -> None:
    found = errors(
        "name: s\ntests:\n  - name: t\n    steps:\n"
        "      - action: {type: httpRequest, method: GET, url: /x}\n"
        "        assertions: [{assertions: [{path: failure.kind, operator: eq, value: refused}]}]\n"
        "        until: {path: response.status, operator: eq, value: 200}\n"
    )
    assert any("cannot poll" in e for e in found)
