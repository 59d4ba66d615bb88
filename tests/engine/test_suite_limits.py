"""The limits on what a suite holds are settings: one file, the whole suite with its $refs, the
requests of one probe, each refused with where and by how much."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from certification.engine import spec
from certification.engine.spec import SuiteInvalid, parse_suite

TESTS = "tests:\n  - name: t\n    steps:\n      - action: {type: wait, ms: 1}\n"


@pytest.fixture
def small_limits() -> Iterator[None]:
    saved = spec.Limits(**vars(spec.LIMITS))
    spec.configure(file_bytes=300, suite_bytes=500, probe_requests=50)
    try:
        yield
    finally:
        spec.configure(**vars(saved))


def test_the_product_sets_the_engines_limits_from_its_settings() -> None:
    assert (spec.LIMITS.file_bytes, spec.LIMITS.suite_bytes, spec.LIMITS.probe_requests) == (
        settings.SUITE_FILE_MAX_BYTES,
        settings.SUITE_MAX_BYTES,
        settings.PROBE_MAX_REQUESTS,
    )


def test_files_under_the_file_limit_still_add_up_to_the_suite_limit(small_limits: None) -> None:
    mock = "- {type: MOCK, name: m%d, mockTarget: x.example, mockPath: /%s}\n"
    mocks = {f"m{i}.yaml": mock % (i, "a" * 200) for i in range(3)}
    text = "name: s\nitems:\n" + "".join(f"  - $ref: {n}\n" for n in mocks) + TESTS

    with pytest.raises(SuiteInvalid) as info:
        parse_suite(text, filename="s.yaml", loader=mocks.__getitem__)
    message = str(info.value)
    assert message.startswith("s.yaml:4:11: item 2: with 'm1.yaml' the suite's files come to ")
    assert message.endswith("bytes, over the limit of 500 bytes for a whole suite")
    assert "\n" not in message  # said once, not again for m2.yaml


def test_a_file_over_the_configured_file_limit_is_refused_naming_the_limit(
    small_limits: None,
) -> None:
    with pytest.raises(SuiteInvalid, match="the limit is 300 bytes"):
        parse_suite("name: s\n" + "#" * 400 + "\n" + TESTS, filename="s.yaml")


def test_a_probe_over_the_configured_request_limit_is_refused(small_limits: None) -> None:
    probe = "      - action: {type: latencyProbe, url: /health, requests: 51, concurrency: 1}\n"
    with pytest.raises(SuiteInvalid, match="'requests'"):
        parse_suite("name: s\ntests:\n  - name: t\n    steps:\n" + probe, filename="s.yaml")
