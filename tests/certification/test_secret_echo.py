"""A partner sandbox that echoes the endpoint's API key back in every encoding (JSON with
escaped slashes, \\u escapes, percent, base64, hex ...) leaves no trace of it in what a run
keeps: the JSON and JUnit exports, the database rows, or `dumpdata`."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from django.core.management import call_command

from partners import services
from partners.models import Partner
from tests.engine.servers import encoding_echo_app
from tests.engine.test_masking_echo import decoded_views

API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
WINDOW = 8

SUITE = """\
name: echo
tests:
  - name: echoed credentials
    steps:
      - name: post with the key everywhere
        continueOnFailure: true
        action:
          type: httpRequest
          method: POST
          url: "/echo-encoded?key={{secret.api.api_key}}"
          body: {key: "{{secret.api.api_key}}"}
        assertions:
          - assertions:
              - {path: response.status, operator: eq, value: 200}
              - {path: response.body, operator: eq, value: "something else"}
              - {path: request.headers.X-Partner-Key, operator: eq, value: "{{secret.api.api_key}}"}
"""


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(encoding_echo_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["url"] = runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield box["url"]
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def traces(text: str) -> list[str]:
    pieces = {API_KEY[i : i + WINDOW] for i in range(len(API_KEY) - WINDOW + 1)}
    return sorted({p for view in decoded_views(text) for p in pieces if p in view})


@pytest.fixture
def exported(partner_a: Partner, echo_url: str, tmp_path: Path) -> dict[str, str]:
    services.endpoint_save(
        partner=partner_a, by="test", name="api", base_url=echo_url, is_default=True,
        auth_kind="api_key", auth_config={"header_name": "X-Partner-Key"},
        new_secrets={"api_key": API_KEY},
    )  # fmt: skip
    suite = tmp_path / "echo.yaml"
    suite.write_text(SUITE)
    out_json, out_junit = tmp_path / "run.json", tmp_path / "junit.xml"
    with pytest.raises(SystemExit):  # the deliberately failing assertion quotes the body
        call_command("run_suite", "--partner", partner_a.external_id, "--suite", str(suite),
                     "--inline", "--json", str(out_json), "--junit", str(out_junit))  # fmt: skip
    dump = io.StringIO()
    call_command("dumpdata", "certification", "evidence", "partners", stdout=dump)
    return {"json": out_json.read_text(), "junit": out_junit.read_text(), "dump": dump.getvalue()}


@pytest.mark.django_db
def test_the_echo_really_carried_the_key_and_the_check_against_it_passed(
    exported: dict[str, str],
) -> None:
    run = json.loads(exported["json"])
    (step,) = run["scenarios"][0]["steps"]
    status, body, header = step["assertions"]
    assert status["passed"] and not body["passed"]
    assert header["passed"]  # the auth header as sent, compared before masking
    assert "••••••" in step["response"]["body"]


@pytest.mark.django_db
def test_no_trace_of_the_key_in_the_json_export(exported: dict[str, str]) -> None:
    assert traces(exported["json"]) == []


@pytest.mark.django_db
def test_no_trace_of_the_key_in_the_junit_export(exported: dict[str, str]) -> None:
    assert traces(exported["junit"]) == []


@pytest.mark.django_db
def test_no_trace_of_the_key_in_any_database_row(exported: dict[str, str]) -> None:
    # dumpdata of every app holding run data, audit events and partner rows (sealed secrets are
    # ciphertext): the strictest reading of "no secret in any record".
    assert traces(exported["dump"]) == []


@pytest.mark.django_db
def test_no_trace_of_the_key_in_the_runs_evidence_bundle(
    exported: dict[str, str], partner_a: Partner, tmp_path: Path
) -> None:
    import zipfile

    import pikepdf

    from certification.models import Run

    run = Run.objects.get(partner=partner_a)
    out = tmp_path / "bundle.zip"
    call_command("build_evidence", "--run", str(run.pk), "--out", str(out))
    texts: dict[str, str] = {}
    with zipfile.ZipFile(out) as archive:
        for name in archive.namelist():
            texts[name] = archive.read(name).decode("utf-8", "replace")
        (tmp_path / "certificate.pdf").write_bytes(archive.read("certificate.pdf"))
    with pikepdf.open(tmp_path / "certificate.pdf") as pdf:
        for number, obj in enumerate(pdf.objects):
            if isinstance(obj, pikepdf.Stream):
                try:
                    texts[f"pdf stream {number}"] = obj.read_bytes().decode("utf-8", "replace")
                except pikepdf.PdfError:
                    continue
    assert "exchanges.har" in texts and "results.jsonl" in texts
    assert {name: traces(text) for name, text in texts.items() if traces(text)} == {}
