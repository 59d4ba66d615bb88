"""The partner page's charts, as pure functions of run points: what is drawn, where the SLA
target and its breaches sit, and that nothing unmeasured is drawn as a value."""

from __future__ import annotations

import datetime as dt
from typing import Any

from certification.charts import (
    RunPoint,
    error_rate_chart,
    latency_chart,
    latency_charts,
    partner_charts,
    pass_rate_chart,
    run_point,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _rollup(p50: float | None, p95: float | None, p99: float | None, *, requests: int = 100,
            errors: int = 0) -> dict[str, Any]:  # fmt: skip
    return {"requests": requests, "ok": requests - errors, "errors": errors,
            "p50": p50, "p95": p95, "p99": p99, "histogram": {}}  # fmt: skip


def _verdict(endpoint: str, outcome: str, measured: float | None, target: str = "p95 ≤ 300 ms",
             reason: str = "") -> dict[str, Any]:  # fmt: skip
    return {"kind": "latency", "endpoint": endpoint, "target": target, "verdict": outcome,
            "measured": measured, "reason": reason, "sla": "p95"}  # fmt: skip


def _point(
    n: int,
    *,
    ran: int | None = None,
    latency: dict[str, Any] | None = None,
    verdicts: list[Any] | None = None,
    status: str = "passed",
    passed: int = 8,
    total: int = 8,
    suite: str = "orders",
) -> RunPoint:
    return run_point(
        run_id=n, suite=suite, status=status, finished_at=T0 + dt.timedelta(days=n),
        passed=passed, total=total, latency=latency, verdicts=verdicts, ran=ran,
    )  # fmt: skip


def _trace(chart: Any, name: str) -> dict[str, Any]:
    return next(t for t in chart.figure["data"] if t["name"] == name)


def test_no_runs_give_no_charts() -> None:
    assert partner_charts([]) == []


def test_latency_chart_draws_p50_p95_p99_of_each_run_in_time_order() -> None:
    points = [_point(2, latency={"api": _rollup(20, 80, 120)}),
              _point(1, latency={"api": _rollup(10, 50, 90)})]  # fmt: skip
    chart = latency_chart(points, "api")
    assert chart is not None
    assert _trace(chart, "p95")["y"] == [50, 80]
    assert _trace(chart, "p50")["x"] == ["2026-11-02 12:00:00", "2026-11-03 12:00:00"]
    assert [row[:6] for row in chart.rows] == [
        ["#1", T0 + dt.timedelta(days=1), "orders", "10 ms", "50 ms", "90 ms"],
        ["#2", T0 + dt.timedelta(days=2), "orders", "20 ms", "80 ms", "120 ms"],
    ]


def test_the_sla_target_is_a_dashed_line_at_its_threshold_in_every_run_it_was_evaluated() -> None:
    points = [_point(n, latency={"api": _rollup(10, 50, 90)}, verdicts=[_verdict("api", "met", 51)])
              for n in (1, 2, 3)]  # fmt: skip
    chart = latency_chart(points, "api")
    target = _trace(chart, "target p95")
    assert target["y"] == [300.0] * 5  # each run, and the two edges of the axis
    assert target["x"][0] == chart.figure["layout"]["xaxis"]["range"][0]
    assert target["x"][-1] == chart.figure["layout"]["xaxis"]["range"][1]
    assert target["line"]["dash"] == "dash"
    assert "0 missed, 3 met (of 3 latency verdicts)" in chart.summary
    assert "from 2026-11-02T12:00:00Z to 2026-11-04T12:00:00Z" in chart.summary


def test_a_changed_target_is_drawn_as_a_step_at_the_run_it_changed() -> None:
    points = [
        _point(1, latency={"api": _rollup(10, 50, 90)}, verdicts=[_verdict("api", "met", 51)]),
        _point(2, latency={"api": _rollup(10, 50, 90)},
               verdicts=[_verdict("api", "met", 51, target="p95 ≤ 200 ms")]),
    ]  # fmt: skip
    target = _trace(latency_chart(points, "api"), "target p95")
    assert target["y"] == [300.0, 300.0, 200.0, 200.0]
    assert target["line"]["shape"] == "hv"


def test_a_missed_sla_is_marked_at_the_measured_percentile_of_that_run() -> None:
    points = [
        _point(1, latency={"api": _rollup(10, 50, 90)}, verdicts=[_verdict("api", "met", 51)]),
        _point(2, latency={"api": _rollup(200, 450, 600)},
               verdicts=[_verdict("api", "missed", 451.2, reason="p95 451.2 ms is above 300 ms")]),
    ]  # fmt: skip
    chart = latency_chart(points, "api")
    missed = _trace(chart, "SLA missed")
    assert missed["x"] == ["2026-11-03 12:00:00"] and missed["y"] == [451.2]
    assert missed["marker"]["symbol"] == "x"
    assert "above 300 ms" in missed["text"][0]
    assert "1 missed, 1 met (of 2 latency verdicts)" in chart.summary
    assert chart.rows[1][-1] == "p95 (p95 ≤ 300 ms): missed"


def test_a_target_exactly_met_has_no_breach_marker() -> None:
    points = [_point(1, latency={"api": _rollup(100, 300, 300)},
                     verdicts=[_verdict("api", "met", 300.0)])]  # fmt: skip
    chart = latency_chart(points, "api")
    assert [t["name"] for t in chart.figure["data"]] == ["p50", "p95", "p99", "target p95"]


def test_every_request_failed_leaves_a_gap_and_marks_the_miss_on_the_target_line() -> None:
    points = [
        _point(1, latency={"api": _rollup(10, 50, 90)}, verdicts=[_verdict("api", "met", 51)]),
        _point(2, latency={"api": _rollup(None, None, None, errors=100)}, status="failed",
               verdicts=[_verdict("api", "missed", None, reason="no successful response")]),
    ]  # fmt: skip
    chart = latency_chart(points, "api")
    assert _trace(chart, "p95")["y"] == [50, None]
    assert _trace(chart, "p95")["connectgaps"] is False
    missed = _trace(chart, "SLA missed")
    assert missed["y"] == [300.0] and "no successful response" in missed["text"][0]
    assert chart.rows[1][3:6] == ["—", "—", "—"]


def test_insufficient_samples_are_marked_and_not_counted_as_met() -> None:
    points = [_point(1, latency={"api": _rollup(12, 12, 12, requests=1)},
                     verdicts=[_verdict("api", "insufficient samples", 12.0)])]  # fmt: skip
    chart = latency_chart(points, "api")
    marker = _trace(chart, "insufficient samples")
    assert marker["y"] == [12.0] and marker["marker"]["symbol"] == "circle-open"
    assert "0 missed, 1 insufficient samples (of 1 latency verdicts)" in chart.summary
    assert " met" not in chart.summary


def test_endpoints_get_a_chart_each_and_their_samples_are_never_pooled() -> None:
    both = {"fast": _rollup(5, 9, 12), "slow": _rollup(400, 900, 1200)}
    verdicts = [_verdict("fast", "met", 9), _verdict("slow", "missed", 900)]
    points = [_point(1, latency=both, verdicts=verdicts)]
    charts = latency_charts(points)
    assert [c.title.split(":")[0] for c in charts] == ["fast", "slow"]
    fast, slow = charts
    assert _trace(fast, "p95")["y"] == [9] and _trace(slow, "p95")["y"] == [900]
    assert not any(t["name"] == "SLA missed" for t in fast.figure["data"])
    assert _trace(slow, "SLA missed")["y"] == [900]
    assert fast.id != slow.id


def test_an_endpoint_without_a_latency_sla_says_so() -> None:
    chart = latency_chart([_point(1, latency={"api": _rollup(10, 50, 90)})], "api")
    assert "No latency SLA was evaluated" in chart.summary
    assert chart.rows[0][-1] == "—"


def test_cancelled_runs_are_left_out_of_every_chart() -> None:
    points = [_point(1, latency={"api": _rollup(10, 50, 90)}),
              _point(2, latency={"api": _rollup(900, 900, 900)}, status="cancelled",
                     passed=1, total=8)]  # fmt: skip
    latency = latency_chart(points, "api")
    assert _trace(latency, "p95")["y"] == [50]
    rows = pass_rate_chart(points).rows
    assert rows == [["#1", T0 + dt.timedelta(days=1), "orders", "passed", "8/8", "100 %"]]


def test_pass_rate_is_scenarios_passed_of_all_per_suite_and_marks_runs_that_failed() -> None:
    points = [_point(1, passed=8, total=8), _point(2, status="failed", passed=6, total=8),
              _point(3, suite="refunds", passed=3, total=4, status="failed")]  # fmt: skip
    chart = pass_rate_chart(points)
    orders, refunds = _trace(chart, "orders"), _trace(chart, "refunds")
    assert orders["y"] == [100.0, 75.0] and refunds["y"] == [75.0]
    assert orders["marker"]["symbol"] == ["circle", "x"]
    assert "1 of the runs passed as a whole" in chart.summary
    assert chart.rows[1][4:] == ["6/8", "75 %"]


def test_a_run_without_scenarios_has_no_pass_rate_point() -> None:
    assert pass_rate_chart([_point(1, status="error", passed=0, total=0)]) is None


def test_error_rate_is_failed_of_all_probe_requests_per_endpoint() -> None:
    points = [
        _point(1, latency={"api": _rollup(10, 50, 90, requests=200, errors=5)}),
        _point(2, latency={"api": _rollup(None, None, None, requests=40, errors=40)}),
    ]
    chart = error_rate_chart(points)
    assert _trace(chart, "api")["y"] == [2.5, 100.0]
    assert chart.rows[1][4:] == ["40/40", "100 %"]
    assert "Highest: 100 % on api in run #2" in chart.summary


def test_error_rate_with_no_failure_says_none_failed_and_keeps_headroom() -> None:
    chart = error_rate_chart([_point(1, latency={"api": _rollup(10, 50, 90)})])
    assert _trace(chart, "api")["y"] == [0.0]
    assert "No probe request failed" in chart.summary
    assert chart.figure["layout"]["yaxis"]["range"] == [0, 5.0]


def test_an_endpoint_no_probe_reached_has_no_error_rate_point() -> None:
    points = [_point(1, latency={"api": _rollup(None, None, None, requests=0)})]
    assert error_rate_chart(points) is None


def test_malformed_roll_ups_are_read_as_missing_values_not_errors() -> None:
    point = _point(1, latency={"api": {"requests": "x", "p95": "fast"}, "bad": 3},
                   verdicts=["junk", _verdict("api", "met", 1, target="unreadable")])  # fmt: skip
    chart = latency_chart([point], "api")
    assert _trace(chart, "p95")["y"] == [None]
    assert not any(t["name"].startswith("target") for t in chart.figure["data"])


def test_a_single_run_gets_a_time_axis_of_an_hour_not_of_milliseconds() -> None:
    chart = pass_rate_chart([_point(1)])
    assert chart.figure["layout"]["xaxis"]["range"] == [
        "2026-11-02 11:30:00",
        "2026-11-02 12:30:00",
    ]


def test_the_time_axis_spans_every_run_with_some_room_either_side() -> None:
    chart = pass_rate_chart([_point(1), _point(21)])
    first, last = chart.figure["layout"]["xaxis"]["range"]
    assert first == "2026-11-01 12:00:00" and last == "2026-11-23 12:00:00"


def test_two_slas_on_the_same_percentile_get_a_line_each_named_after_the_sla() -> None:
    both = [
        _verdict("orders", "met", 250, target="p95 ≤ 300 ms") | {"sla": "p95"},
        _verdict("orders", "met", 250, target="p95 ≤ 500 ms") | {"sla": "p95-orders"},
    ]
    points = [_point(n, latency={"orders": _rollup(100, 250, 400)}, verdicts=both) for n in (1, 2)]
    chart = latency_chart(points, "orders")
    assert _trace(chart, "target p95")["y"] == [300.0] * 4
    assert _trace(chart, "target p95-orders")["y"] == [500.0] * 4
    assert "0 missed, 4 met (of 4 latency verdicts)" in chart.summary


def test_a_target_is_drawn_only_over_the_runs_that_were_judged_on_it() -> None:
    judged = [_verdict("api", "met", 51)]
    points = [_point(1, latency={"api": _rollup(10, 50, 90)}),
              _point(2, latency={"api": _rollup(10, 50, 90)}, verdicts=judged),
              _point(3, latency={"api": _rollup(10, 50, 90)})]  # fmt: skip
    target = _trace(latency_chart(points, "api"), "target p95")
    assert target["y"] == [None, 300.0, None]  # not stretched to the edges nor other runs
    assert target["connectgaps"] is False
    assert target["marker"]["symbol"] == "line-ew-open"  # a lone judged run still shows it


def test_small_shares_never_round_to_zero_or_to_a_whole() -> None:
    points = [_point(1, latency={"api": _rollup(10, 50, 90, requests=3000, errors=1)},
                     passed=1999, total=2000, status="failed")]  # fmt: skip
    errors = error_rate_chart(points)
    assert errors.rows[0][4:] == ["1/3000", "0.03 %"]
    assert "Highest: 0.03 % on api" in errors.summary
    assert pass_rate_chart(points).rows[0][5] == "99.95 %"


def test_flows_are_left_out_of_the_error_rate_their_requests_are_counted_under_endpoints() -> None:
    latency = {"api": _rollup(10, 50, 90, requests=100, errors=10),
               "flow:checkout": _rollup(10, 50, 90, requests=100, errors=10)}  # fmt: skip
    chart = error_rate_chart([_point(1, latency=latency)])
    assert [t["name"] for t in chart.figure["data"]] == ["api"]
    assert [row[3] for row in chart.rows] == ["api"]


def test_a_run_that_ran_no_scenario_has_no_pass_rate_point() -> None:
    points = [_point(1, passed=8, total=8),
              _point(2, status="error", passed=0, total=8, ran=0)]  # fmt: skip
    chart = pass_rate_chart(points)
    assert _trace(chart, "orders")["y"] == [100.0]


def test_error_rate_of_every_request_failed_leaves_headroom_above_the_point() -> None:
    points = [_point(1, latency={"api": _rollup(None, None, None, requests=4, errors=4)})]
    assert error_rate_chart(points).figure["layout"]["yaxis"]["range"] == [0, 105.0]


def test_partner_given_names_reach_plotly_as_text_not_markup() -> None:
    point = _point(1, suite='<a href="https://evil.example">x</a>', passed=1, total=2,
                   status="failed")  # fmt: skip
    trace = pass_rate_chart([point]).figure["data"][0]
    assert trace["name"] == '&lt;a href="https://evil.example"&gt;x&lt;/a&gt;'
    assert "<a" not in trace["text"][0]
