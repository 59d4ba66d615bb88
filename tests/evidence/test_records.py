"""results.jsonl (a hash chain of every result) and exchanges.har (HAR 1.2), written from a
hand-built BundleSource."""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from certification.engine.histogram import Histogram
from evidence import records
from tests.evidence import make_source, results_bytes, steps_of


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def _har(source: Any = None) -> dict[str, Any]:
    out = io.BytesIO()
    records.write_har(source or make_source(), out)
    return json.loads(out.getvalue())


def test_every_results_line_is_canonical_json_followed_by_a_newline() -> None:
    data, _ = results_bytes(make_source())
    assert data.endswith(b"\n")
    for line in data[:-1].split(b"\n"):
        parsed = json.loads(line)
        assert line == json.dumps(
            parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")


def test_records_come_bundle_then_per_run_scenarios_with_their_steps_latency_sla_then_end() -> None:
    data, _ = results_bytes(make_source(runs=(7,)))
    kinds = [(r["type"], r.get("scenario", r.get("index"))) for r in _records(data)]
    assert kinds == [
        ("bundle", None),
        ("run", None),
        ("scenario", 0),
        ("step", 0),
        ("step", 0),
        ("step", 0),
        ("scenario", 1),
        ("step", 1),
        ("step", 1),
        ("latency", None),
        ("sla", None),
        ("end", None),
    ]


def test_each_run_is_followed_by_its_own_records() -> None:
    data, _ = results_bytes(make_source(runs=(7, 8)))
    runs = [(r["type"], r.get("run", r.get("id"))) for r in _records(data)[1:-1]]
    first_of_8 = runs.index(("run", 8))
    assert all(run == 7 for _, run in runs[:first_of_8])
    assert all(run == 8 for _, run in runs[first_of_8:])


def test_seq_counts_from_zero_and_prev_is_the_sha256_of_the_previous_line() -> None:
    data, _ = results_bytes(make_source())
    lines = data[:-1].split(b"\n")
    prev = "0" * 64
    for index, line in enumerate(lines):
        record = json.loads(line)
        assert (record["seq"], record["prev"]) == (index, prev)
        prev = hashlib.sha256(line).hexdigest()


def test_the_end_record_counts_the_records_before_it_and_its_hash_is_the_head() -> None:
    data, head = results_bytes(make_source())
    lines = data[:-1].split(b"\n")
    end = json.loads(lines[-1])
    assert end["type"] == "end" and end["records"] == len(lines) - 1
    assert head == records.ChainHead(
        records=len(lines), head_sha256=hashlib.sha256(lines[-1]).hexdigest()
    )


def test_the_bundle_record_names_format_kind_id_and_partner() -> None:
    source = make_source()
    data, _ = results_bytes(source)
    first = _records(data)[0]
    assert {k: first[k] for k in ("format", "kind", "id", "partner")} == {
        "format": "certdash-evidence/1",
        "kind": "certification",
        "id": source.summary["id"],
        "partner": {"id": "p_001", "name": "Alpha Freight"},
    }


def test_a_step_record_is_the_whole_step_with_its_run_and_scenario() -> None:
    data, _ = results_bytes(make_source(runs=(7,)))
    step = next(r for r in _records(data) if r["type"] == "step")
    recorded = {k: v for k, v in step.items() if k not in ("seq", "prev", "type")}
    assert recorded == {**steps_of(7, 0)[0], "run": 7, "scenario": 0}


def test_a_latency_record_lets_a_reader_recompute_the_percentiles_from_its_buckets() -> None:
    data, _ = results_bytes(make_source(runs=(7,)))
    latency = next(r for r in _records(data) if r["type"] == "latency")
    assert latency["histogramScheme"] == "log-0.001-ms"
    assert latency["histogramPrecision"] == "log buckets, 0.1 % relative resolution"
    assert latency["percentileMethod"].startswith("nearest rank")
    histogram = latency["histogram"]
    buckets = sorted((int(i), n) for i, n in histogram["counts"].items())

    def percentile(p: float) -> float:
        # Exactly as the record's "recompute" text says.
        rank, seen = max(1, math.ceil(histogram["count"] * p / 100)), 0
        for i, n in buckets:
            seen += n
            if seen >= rank:
                value = 0.001 * 1.001**i * 1.0005
                return min(max(value, histogram["min"]), histogram["max"])
        raise AssertionError("rank beyond the buckets")

    for p in (50, 90, 95, 99):
        assert round(percentile(p), 3) == pytest.approx(latency[f"p{p}"], abs=0.001)
    assert "1.001^i" in latency["recompute"] and "nearest rank" in latency["recompute"]


def test_a_latency_record_keeps_the_full_histogram() -> None:
    source = make_source(runs=(7,))
    data, _ = results_bytes(source)
    latency = next(r for r in _records(data) if r["type"] == "latency")
    rebuilt = Histogram.from_dict(latency["histogram"])
    assert rebuilt.to_dict() == source.summary["latency"][0]["histogram"]


def test_sla_records_are_the_verdicts_of_the_run() -> None:
    source = make_source(runs=(7,))
    data, _ = results_bytes(source)
    sla = [r for r in _records(data) if r["type"] == "sla"]
    assert [{k: v for k, v in r.items() if k not in ("seq", "prev", "type")} for r in sla] == (
        source.summary["sla"]
    )


def test_steps_out_of_the_summarys_order_are_refused_rather_than_left_out() -> None:
    def shuffled() -> Iterator[tuple[int, int, dict]]:
        yield 7, 1, steps_of(7, 1)[0]
        yield 7, 0, steps_of(7, 0)[0]

    with pytest.raises(ValueError, match="run 7 scenario 0 is out of order"):
        results_bytes(make_source(runs=(7,), iter_steps=shuffled))


class _Counting(io.BytesIO):
    def steps_written(self, marker: bytes) -> int:
        return self.getvalue().count(marker)


def _streaming_steps(out: _Counting, marker: bytes, total: int, lag: list[int]) -> Any:
    def steps() -> Iterator[tuple[int, int, dict]]:
        step = steps_of(7, 0)[0]
        for n in range(total):
            lag.append(n - out.steps_written(marker))
            yield 7, 0, step

    return steps


def test_results_are_written_as_the_steps_stream_in_not_gathered_first() -> None:
    out, lag = _Counting(), []
    source = make_source(runs=(7,), iter_steps=_streaming_steps(out, b'"type":"step"', 500, lag))
    records.write_results(source, out)
    assert out.steps_written(b'"type":"step"') == 500
    assert max(lag) <= 2  # at most the step in hand and the one looked ahead


def test_the_same_source_gives_the_same_results_bytes() -> None:
    assert results_bytes(make_source()) == results_bytes(make_source())


# ----------------------------------------------------------------------------- HAR


def test_the_har_is_har_1_2_with_one_entry_per_step_that_made_a_request() -> None:
    har = _har(make_source(runs=(7,)))
    log = har["log"]
    assert log["version"] == "1.2"
    assert log["creator"]["name"] == "Certdash" and log["creator"]["version"]
    # create order, fetch the label, cancel order (refused); the probes made no exchange.
    assert [e["_certdash"]["name"] for e in log["entries"]] == [
        "create order",
        "fetch the label",
        "cancel order",
    ]


def test_a_har_entry_carries_the_recorded_request_and_response() -> None:
    entry = _har(make_source(runs=(7,)))["log"]["entries"][0]
    step = steps_of(7, 0)[0]
    request, response = entry["request"], entry["response"]
    assert (request["method"], request["url"]) == ("POST", step["request"]["url"])
    assert request["headers"] == [
        {"name": "Content-Type", "value": "application/json"},
        {"name": "Authorization", "value": "••••••"},
    ]
    assert request["queryString"] == [
        {"name": "dry_run", "value": "1"},
        {"name": "tag", "value": "a b"},
    ]
    assert request["postData"]["mimeType"] == "application/json"
    assert request["postData"]["text"] == step["request"]["body"]
    assert request["bodySize"] == 21 and request["headersSize"] == -1
    assert request["cookies"] == [] and response["cookies"] == []
    assert response["status"] == 201
    assert response["content"] == {
        "size": 31,
        "mimeType": "application/json",
        "text": '{"id":"o_1","status":"created"}',
        "_sha256": "2" * 64,
    }
    assert entry["cache"] == {}
    assert entry["_certdash"] == {
        "run": 7,
        "scenario": 0,
        "step": 0,
        "name": "create order",
        "iteration": 0,
        "status": "passed",
    }


def test_har_timings_come_from_the_recorded_ones_and_add_up_to_the_entry_time() -> None:
    entry = _har(make_source(runs=(7,)))["log"]["entries"][0]
    timings = entry["timings"]
    assert (timings["ssl"], timings["connect"], timings["wait"]) == (7.5, 10.75, 41.125)
    assert (timings["blocked"], timings["dns"]) == (-1, -1)
    parts = [timings[k] for k in ("blocked", "dns", "connect", "send", "wait", "receive")]
    assert entry["time"] == 60.0
    assert sum(p for p in parts if p != -1) == pytest.approx(entry["time"])


def test_a_truncated_binary_body_is_base64_in_the_har_with_a_comment() -> None:
    entry = _har(make_source(runs=(7,)))["log"]["entries"][1]
    content = entry["response"]["content"]
    assert (content["encoding"], content["text"]) == ("base64", "JVBERi0xLjcK")
    assert "truncated" in content["comment"] and "48213 bytes" in content["comment"]
    assert entry["response"]["bodySize"] == -1  # gzip on the wire: size there unknown
    assert entry["response"]["redirectURL"] == ""


def test_a_request_that_got_no_response_is_an_entry_with_status_0_and_the_error() -> None:
    entry = _har(make_source(runs=(7,)))["log"]["entries"][2]
    assert entry["response"]["status"] == 0
    assert entry["response"]["_error"] == "refused: connection refused by 10.0.0.9:443"
    assert entry["_certdash"]["status"] == "failed"


def test_the_har_holds_only_values_the_steps_recorded() -> None:
    har = _har(make_source(runs=(7,)))
    recorded = json.dumps([steps_of(7, 0), steps_of(7, 1)], ensure_ascii=False)
    for entry in har["log"]["entries"]:
        for side in (entry["request"], entry["response"]):
            for header in side["headers"]:
                assert json.dumps(header["value"], ensure_ascii=False) in recorded
        text = entry["response"]["content"].get("text")
        if text:
            assert json.dumps(text, ensure_ascii=False) in recorded.replace("base64:", "")


def test_the_har_is_written_entry_by_entry_as_the_steps_stream_in() -> None:
    out, lag = _Counting(), []
    source = make_source(runs=(7,), iter_steps=_streaming_steps(out, b'"_certdash"', 500, lag))
    assert records.write_har(source, out) == 500
    json.loads(out.getvalue())
    assert max(lag) <= 1


def test_the_same_source_gives_the_same_har_bytes() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    records.write_har(make_source(), first)
    records.write_har(make_source(), second)
    assert first.getvalue() == second.getvalue()


def test_a_har_without_exchanges_is_valid_and_empty() -> None:
    source = make_source(runs=(7,), iter_steps=lambda: iter(()))
    assert _har(source)["log"]["entries"] == []
