"""certificate.pdf: a valid PDF/A-3b with the evidence files attached, byte-identical for the
same bundle, that fetches nothing, shows partner text as text, tells the truth about SLAs and
samples, and stays the same size when the number of steps grows."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from weasyprint.formatting_structure import boxes

from evidence import pdf
from evidence.bundle_source import BundleSource
from evidence.pdf import DataOnlyURLFetcher, URLRefused, layout_certificate, render_certificate
from tests.evidence.pdf_fixtures import (
    EndpointSpec,
    Shape,
    attachments_for,
    build_source,
    write_results,
)

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = (EndpointSpec("orders-api"), EndpointSpec("billing", profile="none"))


# ----------------------------------------------------------------------------- helpers


def _render(source: BundleSource, attachments: list[Any] | None = None) -> bytes:
    out = io.BytesIO()
    render_certificate(source, attachments=attachments or [], out=out)
    return out.getvalue()


def _boxes(box: Any) -> Iterator[Any]:
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


class _Shown(str):
    """Laid-out text; ``phrase in shown`` ignores whitespace, since a line of the PDF may
    break (and lose its space) anywhere in a phrase."""

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and _squash(phrase) in _squash(str(self))


def _page_texts(document: Any) -> list[_Shown]:
    """The text of each laid-out page, as a reader sees it (margin boxes included)."""
    return [
        _Shown("".join(b.text for b in _boxes(page._page_box) if isinstance(b, boxes.TextBox)))
        for page in document.pages
    ]


def _text(document: Any) -> _Shown:
    return _Shown("\n".join(_page_texts(document)))


def _classed(document: Any, css_class: str) -> list[Any]:
    """Text boxes laid out for elements with ``css_class``."""
    found = []
    for page in document.pages:
        for box in _boxes(page._page_box):
            element = getattr(box, "element", None)
            classes = (element.get("class") or "").split() if element is not None else []
            if isinstance(box, boxes.TextBox) and css_class in classes:
                found.append(box)
    return found


def _looks_green(box: Any) -> bool:
    red, green, blue = box.style["color"].to("srgb").coordinates
    return green > red + 0.15 and green > blue + 0.1


def _images(document: Any) -> int:
    return sum(
        isinstance(b, boxes.ReplacedBox) for page in document.pages for b in _boxes(page._page_box)
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One rendered certificate of a realistic bundle, shared by the read-only tests."""
    source = build_source(Shape(scenarios=12, endpoints=ENDPOINTS))
    results = write_results(source, tmp_path_factory.mktemp("pdf") / "results.jsonl")
    attachments = attachments_for(source, results)
    data = _render(source, attachments)
    path = tmp_path_factory.mktemp("pdf") / "certificate.pdf"
    path.write_bytes(data)
    return {"source": source, "attachments": attachments, "data": data, "path": path}


@pytest.fixture(scope="module")
def document(bundle: dict[str, Any]) -> Any:
    return layout_certificate(bundle["source"], attachments=bundle["attachments"])


# ----------------------------------------------------------------------------- the file


def test_the_pdf_passes_qpdf_check(bundle: dict[str, Any]) -> None:
    check = subprocess.run(["qpdf", "--check", str(bundle["path"])], capture_output=True, text=True)

    assert check.returncode == 0, check.stdout + check.stderr


def test_the_xmp_metadata_declares_pdf_a_3b(bundle: dict[str, Any]) -> None:
    with pikepdf.open(bundle["path"]) as document:
        meta = document.open_metadata()

        assert meta["pdfaid:part"] == "3"
        assert meta["pdfaid:conformance"] == "B"


def test_every_attachment_is_embedded_with_identical_bytes(bundle: dict[str, Any]) -> None:
    expected = {
        name: content.read_bytes() if isinstance(content, Path) else content
        for name, content, _mime in bundle["attachments"]
    }

    with pikepdf.open(bundle["path"]) as document:
        embedded = {
            name: spec.get_file().read_bytes() for name, spec in document.attachments.items()
        }

    assert set(embedded) == {"results.jsonl", "certification.json", "suite/orders-v3/orders.yaml"}
    assert embedded == expected


def test_attachments_are_pdf_a_3_associated_files_with_their_types(
    bundle: dict[str, Any],
) -> None:
    with pikepdf.open(bundle["path"]) as document:
        associated = {str(spec.UF): spec for spec in document.Root.AF}
        kinds = {
            name: (str(spec.AFRelationship), str(spec.EF.F.Subtype))
            for name, spec in associated.items()
        }

    assert kinds == {
        "results.jsonl": ("/Data", "/application/x-ndjson"),
        "certification.json": ("/Data", "/application/json"),
        "suite/orders-v3/orders.yaml": ("/Source", "/application/yaml"),
    }


def test_the_same_bundle_renders_to_the_same_bytes(bundle: dict[str, Any]) -> None:
    again = _render(bundle["source"], bundle["attachments"])

    assert again == bundle["data"]


def test_another_process_renders_the_same_bytes(bundle: dict[str, Any], tmp_path: Path) -> None:
    # A fresh interpreter with another hash seed: no set or dict order may leak into the PDF.
    out = tmp_path / "again.pdf"
    script = (
        "import django, io, sys; django.setup()\n"
        "from pathlib import Path\n"
        "from evidence.pdf import render_certificate\n"
        "from tests.evidence.pdf_fixtures import *\n"
        f"source = build_source(Shape(scenarios=12, endpoints={ENDPOINTS!r}))\n"
        f"results = write_results(source, Path({str(tmp_path / 'results.jsonl')!r}))\n"
        f"with open({str(out)!r}, 'wb') as f:\n"
        "    render_certificate(source, attachments=attachments_for(source, results), out=f)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)

    assert out.read_bytes() == bundle["data"]


def test_the_dates_in_the_pdf_are_the_bundles_fixed_time(bundle: dict[str, Any]) -> None:
    with pikepdf.open(bundle["path"]) as document:
        meta = document.open_metadata()
        info = document.docinfo
        params = [spec.get_file().obj.Params for spec in document.attachments.values()]

        assert meta["xmp:CreateDate"] == meta["xmp:ModifyDate"] == "2026-03-14T09:26:53Z"
        assert str(info.CreationDate) == str(info.ModDate) == "D:20260314092653Z"
        assert {str(p.ModDate) for p in params} == {"D:20260314092653Z"}
        assert "MetadataDate" not in str(meta) and "DocumentID" not in str(meta)


def test_the_pdf_id_follows_the_content() -> None:
    changed = build_source(Shape(scenarios=2))
    changed.summary["partner"]["name"] = "Alpha Freight Ltd"

    def pdf_id(source: BundleSource) -> list[bytes]:
        with pikepdf.open(io.BytesIO(_render(source))) as document:
            return [bytes(part) for part in document.trailer.ID]

    assert pdf_id(build_source(Shape(scenarios=2))) == pdf_id(build_source(Shape(scenarios=2)))
    assert pdf_id(changed) != pdf_id(build_source(Shape(scenarios=2)))


def test_duplicate_attachment_names_are_refused() -> None:
    source = build_source(Shape(scenarios=2))
    twice = [("a.json", b"{}", "application/json"), ("a.json", b"[]", "application/json")]

    with pytest.raises(ValueError, match="unique"):
        _render(source, twice)


def test_progress_is_reported_up_to_completion() -> None:
    seen: list[tuple[int, str]] = []
    source = build_source(Shape(scenarios=2))

    render_certificate(
        source, attachments=[], out=io.BytesIO(), progress=lambda p, s: seen.append((p, s))
    )

    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100


# ----------------------------------------------------------------------------- fetching


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "http://127.0.0.1:1/x",
        "https://example.com/logo.png",
        "ftp://example.com/x",
        "relative/logo.png",
        "/etc/passwd",
        "//example.com/x",
    ],
)
def test_the_url_fetcher_refuses_everything_but_data_urls(url: str) -> None:
    with pytest.raises(URLRefused):
        DataOnlyURLFetcher().fetch(url)


def test_the_url_fetcher_serves_data_urls() -> None:
    response = DataOnlyURLFetcher().fetch("data:image/svg+xml;base64,PHN2Zy8+")

    assert response.read() == b"<svg/>"
    assert response.content_type == "image/svg+xml"


def _planted(port: int) -> BundleSource:
    """A bundle whose partner-controlled text tries to make the renderer fetch things."""
    source = build_source(Shape(scenarios=3, failing_scenarios=1, endpoints=ENDPOINTS))
    source.summary["partner"]["name"] = '<img src="file:///etc/passwd"> Evil Freight'
    source.summary["scenarios"][0]["name"] = f'<img src="http://127.0.0.1:{port}/scenario">'
    source.summary["endpoints"][0]["baseUrl"] = f"http://127.0.0.1:{port}/<b>base</b>"
    step = source.failures[f"{source.run_ids[0]}/0"][0]
    step["response"]["body"] = (
        f'<html><link rel="stylesheet" href="http://127.0.0.1:{port}/x.css">'
        f"<style>body{{background:url(http://127.0.0.1:{port}/bg)}}</style>"
        f'<img src="file:///etc/passwd"></html>'
    )
    step["assertions"][0]["actual"] = f"<svg><image href='http://127.0.0.1:{port}/svg'/></svg>"
    return source


def test_references_planted_in_partner_text_are_never_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    original = DataOnlyURLFetcher.fetch

    def spy(self: DataOnlyURLFetcher, url: str, headers: Any = None) -> Any:
        asked.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(DataOnlyURLFetcher, "fetch", spy)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        _render(_planted(server.getsockname()[1]))
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected

    assert asked and all(url.startswith("data:") for url in asked)


def test_markup_in_partner_text_is_shown_as_text() -> None:
    text = _text(layout_certificate(_planted(9), attachments=[]))

    assert '<img src="file:///etc/passwd"> Evil Freight' in text
    assert '<img src="http://127.0.0.1:9/scenario">' in text
    assert "http://127.0.0.1:9/<b>base</b>" in text
    assert "<style>body{background:url(http://127.0.0.1:9/bg)}</style>" in text


def test_control_and_bidi_characters_in_partner_text_are_neutralised() -> None:
    source = build_source(Shape(scenarios=2))
    source.summary["partner"]["name"] = "Alpha\u202eycarF\x00 Freight"

    text = _text(layout_certificate(source, attachments=[]))

    assert "Alpha\ufffdycarF\ufffd Freight" in text
    assert "\u202e" not in text


# ----------------------------------------------------------------------------- content


def test_the_cover_shows_the_verdict_and_the_partner(document: Any) -> None:
    cover = _page_texts(document)[0]

    assert "CERTIFIED until 2027-03-05" in cover
    assert "Alpha Freight" in cover and "p_a01" in cover
    assert "orders-api-v3" in cover
    assert "https://sandbox.partner.example/orders-api" in cover


def test_every_page_but_the_cover_has_the_running_header(document: Any) -> None:
    pages = _page_texts(document)

    assert all("Alpha Freight · orders-api-v3 · b-0f1e2d3c" in page for page in pages[1:])


def test_every_page_says_page_x_of_y(document: Any) -> None:
    pages = _page_texts(document)

    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page


def test_the_contents_give_the_page_of_each_section(document: Any) -> None:
    pages = _page_texts(document)
    contents = pages[1]

    for title in ("SLA verdicts", "Latency", "Scenarios", "Failures in full", "Waivers"):
        page = next(n for n, text in enumerate(pages, start=1) if n > 2 and title in text)
        after_leader = contents.split(title, 1)[1].lstrip(".")
        assert after_leader.startswith(str(page)), title


def test_a_run_bundle_names_the_run_and_says_it_carries_no_sign_off() -> None:
    source = build_source(Shape(scenarios=3, kind="run", signed=False))

    text = _text(layout_certificate(source, attachments=[]))

    assert "Run 4100 · suite orders v3" in text
    assert "RUN FAILED" in text
    assert "carries no sign-off" in text


def test_an_unsigned_certification_says_not_signed_off() -> None:
    source = build_source(Shape(scenarios=3, signed=False))

    text = _text(layout_certificate(source, attachments=[]))

    assert "NOT SIGNED OFF" in text
    assert "Not signed off" in text


def test_empty_lists_and_missing_parts_are_said_in_words() -> None:
    source = build_source(Shape(scenarios=0, failing_scenarios=0, endpoints=()))
    for key in ("sla", "latency", "waivers", "checklist", "suites", "endpoints"):
        source.summary[key] = []
    source.summary["certification"] = None
    source.summary["certifiedBy"] = source.summary["partnerConfirmation"] = None

    text = _text(layout_certificate(source, attachments=[]))

    for said in ("No SLA is in scope.", "No latency probe ran.", "No scenario ran.", "No waiver."):
        assert said in text


def test_an_endpoint_without_samples_says_so_instead_of_a_chart(document: Any) -> None:
    text = _text(document)

    assert "No successful samples: 20 requests, 20 failed." in text
    assert _images(document) == 2  # histogram and percentiles of orders-api only


def test_a_missed_sla_is_not_styled_as_met(document: Any) -> None:
    verdicts = _classed(document, "sla-verdict")
    by_word = {box.text: box for box in verdicts}

    assert {"met", "missed"} <= set(by_word)
    assert _looks_green(by_word["met"])
    assert not any(_looks_green(box) for box in verdicts if box.text != "met")


def test_insufficient_and_unmeasured_slas_are_not_green() -> None:
    source = build_source(Shape(scenarios=2, endpoints=(EndpointSpec("one", profile="single"),)))
    source.summary["sla"].append({**source.summary["sla"][0], "verdict": "not measured"})

    verdicts = _classed(layout_certificate(source, attachments=[]), "sla-verdict")

    assert {"insufficient samples", "not measured"} <= {box.text for box in verdicts}
    assert not any(_looks_green(box) for box in verdicts)


def test_a_failing_step_shows_request_response_assertion_and_body(document: Any) -> None:
    text = _text(document)

    assert "POST https://sandbox.partner.example/v3/orders?run=4100&s=0" in text
    assert "→ 422" in text
    assert "failed response.status eq" in text and "expected 201" in text
    assert "Failure: assertion: 1 of 2 assertions failed" in text
    assert '{"order": {"id": "ord_' in text


def test_passing_steps_are_counted_not_listed(document: Any) -> None:
    text = _text(document)

    assert "step 3: create order" not in text  # a passing step of a failing scenario
    assert "10/10" in text and "9/10" in text
    assert "results.jsonl" in text


def test_a_long_body_is_cut_and_points_to_the_full_record() -> None:
    source = build_source(Shape(scenarios=2, failing_scenarios=1))
    step = source.failures[f"{source.run_ids[0]}/0"][0]
    step["response"]["body"] = "x" * 20_000
    step["response"]["body_size"] = 20_000

    text = _text(layout_certificate(source, attachments=[]))

    assert "truncated: the first 2.0 KB of 19.5 KB captured" in text
    assert "x" * 2048 + " […]" in text
    assert "x" * 2049 not in text
    assert "full capture in results.jsonl (run 4100, scenario 0" in text


def test_failing_steps_beyond_the_cap_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_FULL_FAILED_STEPS", 4)
    source = build_source(
        Shape(scenarios=6, failing_scenarios=6, failing_steps_per_scenario=3, steps_per_scenario=3)
    )

    text = _text(layout_certificate(source, attachments=[]))

    assert "The limit of 4 failing steps printed in full was reached" in text
    assert "4 more failing scenarios are listed in the scenario tables only" in text
    assert "14 failing steps are not printed here and are in results.jsonl" in text


def test_page_count_stays_the_same_when_steps_grow_tenfold() -> None:
    def pages(steps: int) -> int:
        source = build_source(Shape(scenarios=20, steps_per_scenario=steps, failing_scenarios=3))
        with pikepdf.open(io.BytesIO(_render(source))) as document:
            return len(document.pages)

    assert pages(100) == pages(10)


def test_a_bundle_where_everything_fails_stays_within_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdf, "MAX_FULL_FAILED_STEPS", 6)

    def pages(failing_steps: int) -> int:
        shape = Shape(
            scenarios=3,
            failing_scenarios=3,
            steps_per_scenario=failing_steps,
            failing_steps_per_scenario=failing_steps,
        )
        return len(layout_certificate(build_source(shape), attachments=[]).pages)

    assert pages(60) == pages(6)


def test_many_scenarios_are_condensed_to_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_SCENARIO_ROWS", 6)
    source = build_source(Shape(scenarios=12, failing_scenarios=2))

    text = _text(layout_certificate(source, attachments=[]))

    assert "This bundle has 12 scenarios, more than 6" in text
    assert "3 passed main scenarios of run 4100 are not listed one by one" in text
    assert "M-000" in text and "A-001" in text  # the failing ones are still listed
    assert "E-002" not in text


def test_scenario_table_headers_repeat_on_every_page() -> None:
    source = build_source(Shape(scenarios=150, failing_scenarios=0))

    document = layout_certificate(source, attachments=[])

    scenario_pages = [t for t in _page_texts(document) if "10/10" in t]
    assert len(scenario_pages) > 1
    assert all("CodeScenarioStatusStepsDurationWaiver" in t for t in scenario_pages)


def test_waivers_checklist_and_sign_off_are_shown(document: Any) -> None:
    text = _text(document)

    assert "Known sandbox defect PARTNER-77; fixed in production" in text
    assert "in force" in text and "Dana Reviewer (dana.reviewer)" in text
    assert "Error responses reviewed" in text and "open" in text
    assert "Certified by Quinn Lead (quinn)" in text and "QA lead" in text


def test_the_verify_section_gives_the_commands_fingerprint_and_chain_head(
    document: Any, bundle: dict[str, Any]
) -> None:
    text = _text(document)
    summary = bundle["source"].summary

    assert "sha256sum -c SHA256SUMS" in text
    assert "openssl pkeyutl -verify -pubin -inkey signing-key.pem" in text
    assert summary["signingKey"]["fingerprint"] in text
    assert summary["results"]["headSha256"] in text


def test_the_attached_files_table_gives_each_files_sha256(
    document: Any, bundle: dict[str, Any]
) -> None:
    text = _text(document)

    for name, content, _mime in bundle["attachments"]:
        data = content.read_bytes() if isinstance(content, Path) else content
        assert hashlib.sha256(data).hexdigest() in text, name


def test_a_failing_step_without_response_shows_the_request_body() -> None:
    source = build_source(Shape(scenarios=3, failing_scenarios=2))
    key = f"{source.run_ids[0]}/1"  # the "error" scenario: a timeout, no response
    assert source.failures[key][0]["response"] is None

    text = _text(layout_certificate(source, attachments=[]))

    assert "→ no response" in text
    assert "Failure: timeout: no response within 5000 ms" in text
    assert "Request body" in text
