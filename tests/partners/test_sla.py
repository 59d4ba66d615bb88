from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from partners.sla import SLAParseError, describe, parse_sla_text


def test_latency_and_uptime_targets_are_parsed_from_the_registry_text() -> None:
    p95, uptime = parse_sla_text("p95<=300ms, uptime 99.9%")
    assert (p95.kind, p95.name, p95.percentile, p95.threshold_ms) == (
        "latency",
        "p95",
        Decimal("95"),
        300,
    )
    assert (uptime.kind, uptime.uptime_percent) == ("uptime", Decimal("99.9"))


def test_file_window_is_parsed_as_a_utc_time_and_schedule() -> None:
    (target,) = parse_sla_text("file@02:00Z daily")
    assert (target.kind, target.window_start, target.window_end, target.schedule) == (
        "file_window",
        time(2, 0),
        None,
        "daily",
    )


def test_file_window_with_an_end_time_keeps_both_ends() -> None:
    (target,) = parse_sla_text("file@02:00-03:00Z weekdays")
    assert (target.window_start, target.window_end) == (time(2, 0), time(3, 0))
    assert describe(target) == "file weekdays 02:00–03:00 UTC"


def test_ack_deadline_and_replay_retention_are_parsed() -> None:
    ack, replay = parse_sla_text("ack<=15m, replay 30d")
    assert (ack.kind, ack.threshold_ms) == ("ack", 15 * 60_000)
    assert (replay.kind, replay.retention_days) == ("replay", 30)
    assert describe(ack) == "ack ≤ 15 min"


@pytest.mark.parametrize(
    ("text", "name", "ms"),
    [("p99 < 0.8s", "p99", 800), ("P99.9<=1200ms", "p99.9", 1200), ("p50<=1s", "p50", 1000)],
)
def test_latency_targets_accept_seconds_and_fractional_percentiles(
    text: str, name: str, ms: int
) -> None:
    (target,) = parse_sla_text(text)
    assert (target.name, target.threshold_ms) == (name, ms)


def test_empty_sla_text_means_no_targets() -> None:
    assert parse_sla_text("  ") == []


@pytest.mark.parametrize(
    ("text", "fragment", "reason"),
    [
        ("p95<300 msec", "p95<300 msec", "expected a latency target"),
        ("p95<=300ms, uptime 101%", "uptime 101%", "at most 100"),
        ("file@25:00Z daily", "file@25:00Z daily", "not a time of day"),
        ("file@02:00Z fortnightly", "file@02:00Z fortnightly", "schedule must be one of"),
        ("p95<=300ms, p95<=200ms", "p95<=200ms", "a second 'p95'"),
        ("p100<=5ms", "p100<=5ms", "expected a latency target"),
        ("replay 0d", "replay 0d", "at least 1 day"),
    ],
)
def test_unparseable_fragment_is_named_in_the_error(text: str, fragment: str, reason: str) -> None:
    with pytest.raises(SLAParseError) as excinfo:
        parse_sla_text(text)
    assert excinfo.value.fragment == fragment
    assert reason in str(excinfo.value)


def test_strict_target_is_kept_and_shown_as_less_than() -> None:
    strict, inclusive = parse_sla_text("p99 < 0.8s, p95<=300ms")
    assert (strict.strict, inclusive.strict) == (True, False)
    assert describe(strict) == "p99 < 800 ms"
    assert describe(inclusive) == "p95 ≤ 300 ms"


def test_a_target_can_be_scoped_to_an_endpoint_or_a_flow() -> None:
    endpoint, flow, every = parse_sla_text(
        "p95<=300ms on orders, uptime 99.9% on flow:checkout, p99<1s"
    )
    assert (endpoint.name, endpoint.endpoint, describe(endpoint)) == (
        "p95@orders",
        "orders",
        "p95 ≤ 300 ms on orders",
    )
    assert (flow.name, flow.endpoint, describe(flow)) == (
        "uptime@flow:checkout",
        "flow:checkout",
        "uptime ≥ 99.9% on flow checkout",
    )
    assert every.endpoint == ""


def test_only_latency_and_uptime_targets_take_a_scope() -> None:
    with pytest.raises(SLAParseError, match="only latency and uptime"):
        parse_sla_text("ack<=15m on orders")
