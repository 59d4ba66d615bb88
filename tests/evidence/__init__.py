"""Tests of the evidence bundle's pure parts. The builders here make a hand-built
``BundleSource`` (fake but realistically shaped results) and bundles from it."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certification.engine.histogram import Histogram
from evidence import archive, records
from evidence.bundle_source import FORMAT, BundleSource

FIXED_TIME = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
PERCENTILE_METHOD = "nearest rank over a log histogram (0.1 % relative resolution)"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def http_step(name: str, *, status: str = "passed", code: int = 200, **extra: Any) -> dict:
    """A step as ``certification.selectors.step_as_json`` returns it, for an HTTP request."""
    step = {
        "name": name,
        "status": status,
        "iteration": 0,
        "request": {
            "method": "POST",
            "url": "https://sandbox.example.com/orders?dry_run=1&tag=a%20b",
            "headers": {"Content-Type": "application/json", "Authorization": "••••••"},
            "body": '{"sku":"A-1","qty":2}',
            "body_size": 21,
            "body_sha256": "1" * 64,
            "truncated": False,
        },
        "response": {
            "status": code,
            "headers": {"content-type": "application/json", "set-cookie": "••••••"},
            "body": '{"id":"o_1","status":"created"}',
            "body_size": 31,
            "body_sha256": "2" * 64,
            "truncated": False,
            "redirects": [],
        },
        "timings": {"connect_ms": 3.25, "tls_ms": 7.5, "ttfb_ms": 41.125, "total_ms": 60.0},
        "assertions": [
            {
                "path": "response.status",
                "operator": "eq",
                "expected": 201,
                "actual": code,
                "passed": code == 201,
                "evaluated": True,
                "message": "",
            }
        ],
        "failure": None,
        "extracted": {"order_id": "o_1"},
        "data": None,
        "latency": None,
        "notes": [],
        "durationMs": 61.5,
    }
    step.update(extra)
    return step


def refused_step(name: str) -> dict:
    """A request that got no response (connection refused)."""
    step = http_step(name, status="failed")
    step["response"] = None
    step["timings"] = {"connect_ms": None, "tls_ms": None, "ttfb_ms": None, "total_ms": 1.5}
    step["assertions"] = []
    step["failure"] = {"kind": "refused", "message": "connection refused by 10.0.0.9:443"}
    return step


def probe_step(name: str) -> dict:
    """A latency probe: no exchange of its own is recorded."""
    histogram = latency_histogram()
    return {
        "name": name,
        "status": "passed",
        "iteration": 0,
        "request": None,
        "response": None,
        "timings": None,
        "assertions": [],
        "failure": None,
        "extracted": {},
        "data": None,
        "latency": {"endpoint": "api", "requests": histogram.count, "ok": histogram.count},
        "notes": [],
        "durationMs": 900.0,
    }


def latency_histogram() -> Histogram:
    histogram = Histogram()
    histogram.record_many([12.5 + (i % 37) * 1.75 for i in range(200)] + [480.0, 951.25])
    return histogram


def latency_rollup(run: int, endpoint: str = "api") -> dict:
    h = latency_histogram()
    return {
        "run": run,
        "endpoint": endpoint,
        "requests": h.count,
        "ok": h.count,
        "errors": 0,
        "p50": round(h.percentile(50), 3),
        "p90": round(h.percentile(90), 3),
        "p95": round(h.percentile(95), 3),
        "p99": round(h.percentile(99), 3),
        "max": round(h.max, 3),
        "histogram": h.to_dict(),
    }


def steps_of(run: int, scenario: int) -> list[dict]:
    if scenario == 0:
        return [
            http_step("create order", code=201),
            http_step(
                "fetch the label",
                response={
                    "status": 200,
                    "headers": {"Content-Type": "application/pdf", "Content-Encoding": "gzip"},
                    "body": "base64:JVBERi0xLjcK",
                    "body_size": 48213,
                    "body_sha256": "3" * 64,
                    "truncated": True,
                    "redirects": [{"status": 302, "url": "https://sandbox.example.com/l/1"}],
                },
            ),
            probe_step("latency"),
        ]
    return [refused_step("cancel order"), {**probe_step("skipped"), "status": "skipped"}]


def make_summary(runs: tuple[int, ...] = (101, 102)) -> dict:
    return {
        "format": FORMAT,
        "id": "6f1c1d8e-0000-4000-8000-000000000001",
        "partner": {"id": "p_001", "name": "Alpha Freight"},
        "runs": [
            {"id": run, "suite": "checkout", "suiteVersion": "1.2", "status": "failed"}
            for run in runs
        ],
        "scenarios": [
            {
                "run": run,
                "index": index,
                "code": f"S{index + 1}",
                "name": name,
                "kind": kind,
                "status": status,
            }
            for run in runs
            for index, (name, kind, status) in enumerate(
                [("Create an order", "main", "passed"), ("Cancel it", "alt", "failed")]
            )
        ],  # fmt: skip
        "sla": [
            {
                "run": run,
                "endpoint": "api",
                "sla": "p95",
                "target": "p95 <= 300 ms",
                "measured": 71.9,
                "samples": 202,
                "verdict": "met",
            }
            for run in runs
        ],  # fmt: skip
        "latency": [latency_rollup(run) for run in runs],
        "percentileMethod": PERCENTILE_METHOD,
    }


def make_source(
    runs: tuple[int, ...] = (101, 102),
    iter_steps: Callable[[], Iterator[tuple[int, int, dict]]] | None = None,
) -> BundleSource:
    def default_steps() -> Iterator[tuple[int, int, dict]]:
        for run in runs:
            for scenario in (0, 1):
                for step in steps_of(run, scenario):
                    yield run, scenario, step

    return BundleSource(
        kind="certification",
        summary=make_summary(runs),
        suite_files={"suite/checkout-v1.2/suite.yaml": b"name: checkout\nversion: '1.2'\n"},
        run_ids=list(runs),
        fixed_time=FIXED_TIME,
        iter_steps=iter_steps or default_steps,
    )


def results_bytes(source: BundleSource) -> tuple[bytes, records.ChainHead]:
    out = io.BytesIO()
    head = records.write_results(source, out)
    return out.getvalue(), head


def bundle_files(source: BundleSource | None = None) -> list[tuple[str, bytes]]:
    """The top-level files and suite files of a bundle, as the collector would pass them."""
    source = source or make_source()
    results, head = results_bytes(source)
    har = io.BytesIO()
    records.write_har(source, har)
    summary = {
        **source.summary,
        "results": {"headSha256": head.head_sha256, "records": head.records},
    }
    return [
        ("certification.json", records.canonical(summary) + b"\n"),
        ("certificate.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"),
        ("results.jsonl", results),
        ("exchanges.har", har.getvalue()),
        *source.suite_files.items(),
    ]


def build_zip(files: list[tuple[str, bytes]] | None = None) -> bytes:
    """A bundle zip signed with the current (settings') signing key."""
    out = io.BytesIO()
    archive.write_bundle_zip(
        out=out, files=files if files is not None else bundle_files(), fixed_time=FIXED_TIME
    )
    return out.getvalue()


def members(zip_bytes: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def rezip(contents: dict[str, bytes]) -> bytes:
    """A zip holding ``contents`` as they are (what someone altering a bundle would make)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in contents.items():
            z.writestr(name, data)
    return out.getvalue()


def flip_byte(data: bytes, position: int | None = None) -> bytes:
    """``data`` with one bit of one byte (the middle one by default) flipped."""
    at = len(data) // 2 if position is None else position
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


BUNDLE_MEMBERS = [
    "certification.json",
    "certificate.pdf",
    "results.jsonl",
    "exchanges.har",
    "suite/checkout-v1.2/suite.yaml",
    "SHA256SUMS",
    "SHA256SUMS.sig",
    "signing-key.pem",
    "VERIFY.txt",
]


def unzip(zip_bytes: bytes, folder: Path) -> Path:
    """Unzip as an auditor would: with unzip, into an empty folder."""
    zip_path = folder / "bundle.zip"
    zip_path.write_bytes(zip_bytes)
    target = folder / "bundle"
    target.mkdir()
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-q", str(zip_path)], cwd=target, check=True)
    else:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(target)
    return target


def run(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=60
    )
