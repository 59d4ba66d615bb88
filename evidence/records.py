"""The bundle's record files: ``results.jsonl`` (a hash chain of every result) and
``exchanges.har`` (every HTTP exchange, for HAR viewers).

Both are streamed: steps come one by one from ``BundleSource.iter_steps`` and are written as
they come, so memory stays flat in the number of steps. Both are deterministic: the same source
gives the same bytes. They hold only what the source holds (results are masked when recorded).

``results.jsonl``: one canonical JSON document per line (keys sorted, no spaces, UTF-8), each
with ``seq`` (0, 1, 2 ...), ``prev`` (the hex SHA-256 of the previous line's bytes without its
newline; 64 zeros for the first) and ``type``; the last record is ``end`` with ``records``, the
number of records before it. The SHA-256 of the ``end`` line is the chain's head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

from evidence.bundle_source import FORMAT, BundleSource

GENESIS = "0" * 64
RESERVED = ("seq", "prev", "type")
HISTOGRAM_PRECISION = "log buckets, 0.1 % relative resolution"
RECOMPUTE = (
    "histogram.counts maps bucket i to a sample count; bucket i covers "
    "[0.001 ms * 1.001^i, 0.001 ms * 1.001^(i+1)). For percentile p, go through the buckets in "
    "increasing i adding up counts until the sum reaches ceil(histogram.count * p / 100) "
    "(nearest rank, at least 1): the percentile lies in that bucket. The reported value is the "
    "bucket's midpoint 0.001 ms * 1.001^i * 1.0005, kept within [histogram.min, histogram.max]; "
    "p100 is histogram.max."
)
HAR_CREATOR = {"name": "Certdash", "version": FORMAT}  # the product version when the summary has it


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj`` (no trailing newline): sorted keys, no whitespace,
    UTF-8, no NaN or infinity."""
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


@dataclass(frozen=True)
class ChainHead:
    """What a written ``results.jsonl`` ends with: ``records`` is the number of lines (the
    ``end`` record included) and ``head_sha256`` the hex SHA-256 of the ``end`` line."""

    records: int
    head_sha256: str


class _Chain:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.seq = 0
        self.prev = GENESIS

    def write(self, type_: str, fields: dict[str, Any]) -> None:
        clash = [k for k in RESERVED if k in fields]
        if clash:
            raise ValueError(f"a {type_} record may not carry its own {', '.join(clash)}")
        line = canonical({**fields, "seq": self.seq, "prev": self.prev, "type": type_})
        self.out.write(line + b"\n")
        self.prev = hashlib.sha256(line).hexdigest()
        self.seq += 1


class _Steps:
    """``iter_steps`` with one step of look-ahead, so the steps of one scenario can be taken
    off the single ordered stream."""

    def __init__(self, source: BundleSource) -> None:
        self._it: Iterator[tuple[int, int, dict[str, Any]]] = (
            iter(source.iter_steps()) if source.iter_steps is not None else iter(())
        )
        self._next = next(self._it, None)

    def take(self, run_id: Any, index: int) -> Iterator[dict[str, Any]]:
        while self._next is not None and (self._next[0], self._next[1]) == (run_id, index):
            step = self._next[2]
            self._next = next(self._it, None)
            yield step

    def check_exhausted(self) -> None:
        if self._next is not None:
            run_id, index, _ = self._next
            raise ValueError(
                f"a step of run {run_id} scenario {index} is out of order or belongs to no "
                "scenario of the summary"
            )


def _by_run(items: list[dict[str, Any]], run_ids: set[Any], what: str) -> dict[Any, list]:
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        if item.get("run") not in run_ids:
            raise ValueError(f"a {what} entry names run {item.get('run')!r}, not in summary.runs")
        grouped.setdefault(item["run"], []).append(item)
    return grouped


def write_results(source: BundleSource, out: BinaryIO) -> ChainHead:
    """Write ``results.jsonl`` to ``out``; returns the chain's head.

    Records, in order: ``bundle``; per run of ``summary["runs"]``: ``run``, then each of its
    scenarios' ``scenario`` record followed by that scenario's ``step`` records (the step dict
    with ``run`` and ``scenario``), then its ``latency`` records (one per endpoint, with the full
    histogram and how to recompute a percentile from it), then its ``sla`` verdicts; finally
    ``end``. Raises ``ValueError`` when the steps do not follow the summary's order (no step is
    ever left out silently).
    """
    summary = source.summary
    runs = summary.get("runs", [])
    run_ids = {run["id"] for run in runs}
    scenarios = _by_run(summary.get("scenarios", []), run_ids, "scenarios")
    latency = _by_run(summary.get("latency", []), run_ids, "latency")
    sla = _by_run(summary.get("sla", []), run_ids, "sla")
    percentile_method = summary.get("percentileMethod")

    chain = _Chain(out)
    chain.write(
        "bundle",
        {
            "format": summary.get("format", FORMAT),
            "kind": source.kind,
            "id": summary.get("id"),
            "partner": summary.get("partner"),
        },
    )
    steps = _Steps(source)
    for run in runs:
        run_id = run["id"]
        chain.write("run", run)
        for scenario in scenarios.get(run_id, []):
            chain.write("scenario", scenario)
            for step in steps.take(run_id, scenario["index"]):
                chain.write("step", {**step, "run": run_id, "scenario": scenario["index"]})
        for rollup in latency.get(run_id, []):
            histogram = rollup.get("histogram") or {}
            chain.write(
                "latency",
                {
                    **rollup,
                    "histogramScheme": histogram.get("scheme"),
                    "histogramPrecision": HISTOGRAM_PRECISION,
                    "percentileMethod": percentile_method,
                    "recompute": RECOMPUTE,
                },
            )
        for verdict in sla.get(run_id, []):
            chain.write("sla", verdict)
    steps.check_exhausted()
    records = chain.seq
    chain.write("end", {"records": records})
    return ChainHead(records=chain.seq, head_sha256=chain.prev)


# ----------------------------------------------------------------------------- HAR


def _har_json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _headers(headers: Any) -> list[dict[str, str]]:
    if isinstance(headers, dict):
        return [{"name": str(k), "value": str(v)} for k, v in headers.items()]
    return []


def _header(headers: Any, name: str) -> str:
    if isinstance(headers, dict):
        for key, value in headers.items():
            if str(key).lower() == name:
                return str(value)
    return ""


def _body(capture: dict[str, Any]) -> tuple[str, str | None]:
    """(text, HAR encoding): a binary body is recorded as ``base64:<data>``."""
    text = capture.get("body") or ""
    if text.startswith("base64:"):
        return text.removeprefix("base64:"), "base64"
    return text, None


def _truncation_comment(capture: dict[str, Any]) -> str:
    return (
        f"body truncated to the capture limit; the full body was {capture.get('body_size')} "
        f"bytes with sha256 {capture.get('body_sha256')}"
    )


def _ms(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _timings(timings: dict[str, Any] | None, total: float) -> dict[str, Any]:
    """HAR timings from the recorded ones. HAR's ``connect`` includes ``ssl``; what the
    transport does not time separately (name resolution, reading the body) is ``receive``, so
    the phases add up to the entry's ``time``."""
    timings = timings or {}
    connect, tls, wait = (_ms(timings.get(k)) for k in ("connect_ms", "tls_ms", "ttfb_ms"))
    har_connect = None if connect is None else connect + (tls or 0.0)
    rest = total - (har_connect or 0.0) - (wait or 0.0)
    return {
        "blocked": -1,
        "dns": -1,
        "connect": -1 if har_connect is None else round(har_connect, 3),
        "ssl": -1 if tls is None else round(tls, 3),
        "send": 0,
        "wait": round(wait or 0.0, 3),
        "receive": round(max(rest, 0.0), 3),
        "comment": "connect, ssl and wait as recorded; receive is the rest of the total time",
    }


def _entry(
    run_id: Any, scenario: int, position: int, step: dict[str, Any], started: str
) -> dict[str, Any]:
    request = step["request"]
    response = step.get("response")
    timings = step.get("timings") or {}
    total = _ms(timings.get("total_ms"))
    if total is None:
        total = _ms(step.get("durationMs")) or 0.0
    url = str(request.get("url", ""))
    req_headers = request.get("headers")
    har_request: dict[str, Any] = {
        "method": request.get("method", ""),
        "url": url,
        "httpVersion": "",  # not recorded
        "cookies": [],
        "headers": _headers(req_headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, True)],
        "headersSize": -1,
        "bodySize": request.get("body_size", -1),
    }
    if request.get("body_size") or request.get("body"):
        text, encoding = _body(request)
        post: dict[str, Any] = {"mimeType": _header(req_headers, "content-type"), "text": text}
        if encoding:
            post["_encoding"] = encoding
        if request.get("body_sha256"):
            post["_sha256"] = request["body_sha256"]
        if request.get("truncated"):
            post["comment"] = _truncation_comment(request)
        har_request["postData"] = post
    entry: dict[str, Any] = {"startedDateTime": started, "time": round(total, 3)}
    entry["request"] = har_request
    if response is not None:
        res_headers = response.get("headers")
        text, encoding = _body(response)
        content: dict[str, Any] = {
            "size": response.get("body_size", 0),
            "mimeType": _header(res_headers, "content-type"),
            "text": text,
        }
        if encoding:
            content["encoding"] = encoding
        if response.get("body_sha256"):
            content["_sha256"] = response["body_sha256"]
        if response.get("truncated"):
            content["comment"] = _truncation_comment(response)
        status = response.get("status")
        entry["response"] = {
            "status": status if isinstance(status, int) else 0,
            "statusText": "",  # not recorded
            "httpVersion": "",
            "cookies": [],
            "headers": _headers(res_headers),
            "content": content,
            "redirectURL": _header(res_headers, "location"),
            "headersSize": -1,
            # The recorded size is of the decoded body; on the wire it differs when encoded.
            "bodySize": -1
            if _header(res_headers, "content-encoding")
            else response.get("body_size", -1),
        }
        if response.get("redirects"):
            entry["response"]["_redirects"] = response["redirects"]
    else:
        failure = step.get("failure") or {}
        entry["response"] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": f"{failure.get('kind', 'error')}: {failure.get('message', '')}".strip(),
        }
    entry["cache"] = {}
    entry["timings"] = _timings(timings, total)
    entry["_certdash"] = {
        "run": run_id,
        "scenario": scenario,
        "step": position,
        "name": step.get("name"),
        "iteration": step.get("iteration"),
        "status": step.get("status"),
    }
    return entry


def _run_started(summary: dict[str, Any], source: BundleSource) -> dict[Any, str]:
    """Each run's start, for an exchange whose step has no time of its own."""
    fallback = source.fixed_time.isoformat()
    return {
        run.get("id"): str(run.get("startedAt") or run.get("createdAt") or fallback)
        for run in summary.get("runs", [])
    }


def write_traffic(source: BundleSource, out: BinaryIO) -> int:
    """``traffic.jsonl``: one canonical JSON line per captured request (hosted-mock calls and
    inbox deliveries of the evidence runs); returns how many."""
    count = 0
    for record in source.iter_traffic() if source.iter_traffic is not None else ():
        out.write(canonical(record) + b"\n")
        count += 1
    return count


def exchanged(run_id: Any, scenario: int, position: int, step: dict[str, Any]) -> list[dict]:
    """The files, interchanges and MDNs one step sent or received (its ``data``), as
    ``files.jsonl`` records: ``direction`` sent or received, ``kind`` (file, interchange,
    mdn), and what the step kept of each (name, path, size, sha256, text cut at the capture
    cap; an MDN's disposition, MIC and signature)."""
    data = step.get("data")
    if not isinstance(data, dict):
        return []
    where = {"run": run_id, "scenario": scenario, "step": position, "stepName": step.get("name")}
    out: list[dict[str, Any]] = []
    for direction in ("sent", "received"):
        items = data.get(direction)
        for item in items if isinstance(items, list) else [items] if items else []:
            if isinstance(item, dict) and "sha256" in item:
                out.append({**where, "direction": direction, "kind": "file", **item})
    mdn = data.get("mdn")
    if isinstance(mdn, dict):
        out.append({**where, "direction": "received", "kind": "mdn", **mdn})
    return out


def write_files(source: BundleSource, out: BinaryIO) -> dict[str, int]:
    """``files.jsonl``: one canonical JSON line per file or interchange sent or received and
    per MDN, in the steps' order; returns the counts (records, sent, received, mdns)."""
    counts = {"records": 0, "sent": 0, "received": 0, "mdns": 0}
    position, current = 0, None
    for run_id, scenario, step in source.iter_steps() if source.iter_steps is not None else ():
        if current != (run_id, scenario):
            current, position = (run_id, scenario), 0
        else:
            position += 1
        for record in exchanged(run_id, scenario, position, step):
            out.write(canonical(record) + b"\n")
            counts["records"] += 1
            if record["kind"] == "mdn":
                counts["mdns"] += 1
            else:
                counts[record["direction"]] += 1
    return counts


def write_har(source: BundleSource, out: BinaryIO) -> int:
    """Write ``exchanges.har`` (HAR 1.2) to ``out``; returns the number of entries.

    One entry per step that made an HTTP exchange (it has a request): a request that got no
    response is an entry with ``response.status`` 0 and ``response._error``. Each entry carries
    ``_certdash`` {run, scenario, step (0-based position in the scenario), name, iteration,
    status}. Entries are written one by one, in the steps' order.
    """
    run_started = _run_started(source.summary, source)
    fallback = source.fixed_time.isoformat()
    environment = source.summary.get("environment") or {}
    creator = {**HAR_CREATOR, "version": str(environment.get("productVersion") or FORMAT)}
    out.write(b'{"log":{"version":"1.2","creator":' + _har_json(creator))
    out.write(b',"entries":[')
    written = 0
    position = 0
    current: tuple[Any, int] | None = None
    steps = source.iter_steps() if source.iter_steps is not None else iter(())
    for run_id, scenario, step in steps:
        if current != (run_id, scenario):
            current, position = (run_id, scenario), 0
        else:
            position += 1
        if not isinstance(step.get("request"), dict):
            continue  # no HTTP exchange: a wait, a dbQuery, a latency probe, a skipped step
        started = str(
            step.get("startedAt") or step.get("started_at") or run_started.get(run_id, fallback)
        )
        out.write(b"\n" if written == 0 else b",\n")
        out.write(_har_json(_entry(run_id, scenario, position, step, started)))
        written += 1
    out.write(b"\n]}}\n")
    return written
