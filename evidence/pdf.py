"""``certificate.pdf``: the human-readable certificate of an evidence bundle.

:func:`render_certificate` writes a PDF/A-3b document from a :class:`BundleSource`: the cover
(partner, scope, suites, endpoints, dates and the verdict in large type), a table of contents,
the SLA verdicts, latency charts, the scenarios with the failures in full, waivers, the review
checklist, the sign-off and how to verify the bundle. The bundle's files (``results.jsonl``,
``certification.json``, the suite files) are embedded as PDF/A-3 associated files, so the PDF
alone carries its evidence.

Guarantees:

- **Deterministic**: the same source and attachments give the same bytes. The only time in the
  document is ``source.fixed_time`` (``dcterms.created``/``modified``, which WeasyPrint writes
  to the info dictionary and the XMP packet, and the attachments' dates); the PDF ``/ID`` is
  WeasyPrint's MD5 of the document's objects, so it follows the content; WeasyPrint's XMP for
  PDF/A-3 holds no random ``DocumentID``. ``tests/evidence/test_pdf.py`` checks the bytes.
- **Nothing is fetched**: the document is rendered from a string with no base URL, and the URL
  fetcher (:class:`DataOnlyURLFetcher`) refuses every URL that is not ``data:`` (the charts are
  ``data:`` SVG images); partner-controlled text is autoescaped by the Django template, so markup
  in a scenario name or a response body is shown as text and never becomes an ``<img>`` or a
  stylesheet.
- **Bounded**: the page count depends on the scenarios and the failures shown, not on the number
  of steps. Passing steps are counted, never listed (they are all in ``results.jsonl``); at most
  :data:`MAX_FULL_FAILED_STEPS` failing steps are printed in full per bundle (at most
  :data:`MAX_FULL_STEPS_PER_SCENARIO` per scenario), each body excerpt is capped at
  :data:`BODY_EXCERPT_BYTES`, and above :data:`MAX_SCENARIO_ROWS` scenarios the passing ones are
  given as counts per run and kind. ``source.iter_steps`` is never called.

Memory: layout memory is bounded like the page count. Attachments are read once, a chunk at a
time, into their Flate-compressed form (:func:`read_attachment`), and embedded by a WeasyPrint
``finisher`` as PDF/A-3 associated files; the uncompressed content is never held whole (the
``weasyprint.Attachment`` route would read each file whole and compress it twice).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import html
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes
from xml.sax.saxutils import unescape

import pydyf
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from certification.engine.model import SCENARIO_KINDS
from evidence import archive, svg_charts
from evidence.bundle_source import BundleSource

# At most this many failing, errored or unevaluated steps are printed in full in one
# certificate (request line, response status, failed assertions, failure, body excerpt); the
# rest are counted and left to results.jsonl. A step in full costs WeasyPrint about 20 ms of
# layout and PDF writing and a third of a page, so this bounds a bundle where everything
# failed to about 70 pages of failures and 10 s (bench/pdf.py, "all failing").
MAX_FULL_FAILED_STEPS = 200
# ...and at most this many of one scenario, so that one scenario cannot use up the budget.
MAX_FULL_STEPS_PER_SCENARIO = 10
# Body excerpts are cut at this many bytes of UTF-8 (and BODY_EXCERPT_LINES lines).
BODY_EXCERPT_BYTES = 2048
BODY_EXCERPT_LINES = 40
# Above this many scenarios in a bundle, passing scenarios are not listed one per row but
# counted per run and kind; failing ones are still listed (up to this many rows in all).
MAX_SCENARIO_ROWS = 500
# Latency charts are drawn for at most this many (run, endpoint) pairs; the table lists all.
MAX_LATENCY_CHARTS = 24
# Assertions shown per failing step (the failed and unevaluated ones).
MAX_ASSERTIONS_SHOWN = 20
# Verdict and run reasons shown in one list.
MAX_REASONS = 40
# Partner-controlled labels and values are clipped to these many characters.
MAX_LABEL_CHARS = 300
MAX_VALUE_CHARS = 800

PDF_VARIANT = "pdf/a-3b"
# Attachments are read and compressed this many bytes at a time, at this zlib level.
READ_CHUNK = 1 << 20
FLATE_LEVEL = 6
TEMPLATE = "evidence/certificate.html"
BAD_STATUSES = ("failed", "error", "unevaluated")
# Scenario kinds in the order the suite format lists them, and how the certificate names them.
KIND_ORDER = SCENARIO_KINDS
KIND_LABELS = {
    "main": "main",
    "alt": "alternative",
    "exception": "exception",
    "cross": "cross-cutting",
}


AttachmentSpec = tuple[str, Path | bytes, str]


class URLRefused(ValueError):
    """The certificate asked for a resource that is not a ``data:`` URL."""


def _data_url_response(url: str) -> URLFetcherResponse:
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise URLRefused("malformed data: URL")
    params = header.split(";")
    mime = params[0].strip() or "text/plain"
    try:
        if any(p.strip().lower() == "base64" for p in params[1:]):
            body = base64.b64decode(unquote_to_bytes(payload), validate=True)
        else:
            body = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise URLRefused(f"malformed data: URL ({exc})") from exc
    return URLFetcherResponse(url, body=body, headers={"Content-Type": mime})


class DataOnlyURLFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that decodes ``data:`` URLs itself and raises
    :class:`URLRefused` for everything else (``file:``, ``http:``, ``https:``, relative
    references, custom schemes), without opening a socket or a file. WeasyPrint then leaves the
    resource out and logs the refusal."""

    def __init__(self) -> None:
        # allowed_protocols is a second lock: fetch() below never calls the urllib opener.
        super().__init__(allowed_protocols=["data"], allow_redirects=False)

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        if not isinstance(url, str) or url[:5].lower() != "data:":
            shown = str(url)[:80]
            raise URLRefused(f"the certificate loads nothing but data: URLs, not {shown!r}")
        return _data_url_response(url)


# ----------------------------------------------------------------------------- formatting

# C0 controls (but tab and newline), DEL, and bidirectional overrides/isolates: partner text
# with these could garble the PDF text or reorder what a reader sees.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _clean(value: Any, limit: int = MAX_LABEL_CHARS) -> str:
    """Partner-controlled text made safe to print: a string, no control or bidi-override
    characters, no lone surrogates, at most ``limit`` characters (clipped with an ellipsis)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _UNSAFE_CHARS.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_node(text: str) -> SafeString:
    """``text`` escaped for the content of an element (``&``, ``<``, ``>``), never for an
    attribute: quotes need no escaping there, and Django's ``&quot;`` for each ``"`` of a JSON
    body makes WeasyPrint's HTML parser several times slower on the failure pages."""
    return mark_safe(html.escape(text, quote=False))  # safe: escaped right here


def _show(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """An assertion's expected/actual value as JSON text (``"abc"``, ``201``, ``null``)."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _clean(text, limit)


def _parse_time(value: Any) -> datetime | date | None:
    if not value:
        return None
    if isinstance(value, datetime | date):
        return value
    text = str(value)
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def when(value: Any) -> str:
    """``2026-03-05 16:00 UTC`` for a time, ``2026-06-30`` for a date, ``—`` for none; text
    that is neither is shown as given."""
    parsed = _parse_time(value)
    if parsed is None:
        return _clean(value) if value else "—"
    if isinstance(parsed, datetime):
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC)
        return f"{parsed:%Y-%m-%d %H:%M} UTC"
    return f"{parsed:%Y-%m-%d}"


def _w3c(moment: datetime) -> str:
    """``2026-03-14T09:26:53Z``: the form WeasyPrint reads from ``dcterms.*`` meta tags."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def _utc_naive(moment: datetime) -> datetime:
    """WeasyPrint prints attachment dates with ``strftime(...Z)``: give it UTC fields."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def duration(ms: Any) -> str:
    if ms is None:
        return "—"
    ms = float(ms)
    if ms >= 60_000:
        minutes, seconds = divmod(ms / 1000, 60)
        return f"{int(minutes)} min {seconds:.0f} s"
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.0f} ms"


def _count(n: Any) -> str:
    return f"{int(n or 0):,}"


def _size(n: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def _person(who: Mapping[str, Any] | None) -> str:
    if not who:
        return "—"
    name, username = _clean(who.get("name")), _clean(who.get("username"))
    if name and username and name != username:
        return f"{name} ({username})"
    return name or username or "—"


def _tone(status: str) -> str:
    """The CSS class of a status word. Only a status that is a pass is ``ok`` (green)."""
    status = (status or "").lower()
    if status in ("passed", "met", "certified", "approved", "yes"):
        return "ok"
    if status in ("failed", "error", "missed", "not certified", "rejected"):
        return "bad"
    if status in ("unevaluated", "insufficient samples", "open", "requested", "cancelled"):
        return "warn"
    return "muted"


def _clip_list(items: Iterable[Any], limit: int = MAX_REASONS) -> tuple[list[str], int]:
    items = list(items)
    return [_clean(i, MAX_VALUE_CHARS) for i in items[:limit]], max(len(items) - limit, 0)


# ----------------------------------------------------------------------------- view model


@dataclass(frozen=True)
class EmbeddedFile:
    """One attachment, read once: its size, hashes and Flate-compressed bytes."""

    name: str
    mime: str
    size: int
    sha256: str
    md5: str
    deflated: bytes


def read_attachment(name: str, content: Path | bytes, mime: str) -> EmbeddedFile:
    """Read ``content`` once, :data:`READ_CHUNK` bytes at a time, into its compressed form.

    WeasyPrint's own ``Attachment`` reads a file whole and Flate-compresses it at level 9
    twice (once for the stream, once more when hashing the objects for the PDF ``/ID``), so a
    50 MB results.jsonl would cost several copies in memory; here only the compressed bytes are
    kept, and the hashes shown in the document are of the very bytes embedded."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    compressor = zlib.compressobj(FLATE_LEVEL)
    parts: list[bytes] = []
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        sha256.update(chunk)
        md5.update(chunk)
        size += len(chunk)
        parts.append(compressor.compress(chunk))

    if isinstance(content, Path):
        with content.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                take(chunk)
    else:
        for start in range(0, len(content), READ_CHUNK):
            take(bytes(content[start : start + READ_CHUNK]))
    parts.append(compressor.flush())
    return EmbeddedFile(
        name=name,
        mime=mime or "application/octet-stream",
        size=size,
        sha256=sha256.hexdigest(),
        md5=md5.hexdigest(),
        deflated=b"".join(parts),
    )


def _pdf_name(value: str) -> str:
    """``/application#2fx-ndjson``: a PDF name, every byte outside [A-Za-z0-9.+_-] #-escaped."""
    return "/" + "".join(
        chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in ".+_-") else f"#{b:02x}"
        for b in value.encode("utf-8")
    )


def _name_key(name: str) -> bytes:
    """A file name as the PDF string bytes it is written as, for the sorted name tree."""
    return (
        name.encode("ascii") if name.isascii() else codecs.BOM_UTF16_BE + name.encode("utf-16-be")
    )


def _embedder(files: list[EmbeddedFile], moment: datetime) -> Callable[[Any, pydyf.PDF], None]:
    """A WeasyPrint ``finisher`` that embeds ``files`` as PDF/A-3 associated files: an
    ``/EmbeddedFile`` stream each (MIME ``/Subtype``, ``/Params`` with size, MD5 checksum and
    the fixed dates), a ``/Filespec`` with ``/AFRelationship``, the catalog's sorted
    ``/EmbeddedFiles`` name tree and its ``/AF`` array. The same structure WeasyPrint writes
    for its own attachments, without holding the uncompressed content."""
    stamp = f"D:{_utc_naive(moment):%Y%m%d%H%M%S}Z"

    def finish(document: Any, pdf: pydyf.PDF) -> None:
        if not files:
            return
        names, associated = pydyf.Array(), pydyf.Array()
        for f in sorted(files, key=lambda f: _name_key(f.name)):
            params = {"CheckSum": f"<{f.md5}>", "Size": f.size}
            params |= {"CreationDate": pydyf.String(stamp), "ModDate": pydyf.String(stamp)}
            stream = pydyf.Stream(
                [f.deflated],
                pydyf.Dictionary(
                    {
                        "Type": "/EmbeddedFile",
                        "Subtype": _pdf_name(f.mime),
                        "Filter": "/FlateDecode",
                        "Params": pydyf.Dictionary(params),
                    }
                ),
                compress=False,  # already Flate-compressed, once
            )
            pdf.add_object(stream)
            spec = pydyf.Dictionary(
                {
                    "Type": "/Filespec",
                    "F": pydyf.String(f.name.encode("ascii", "replace").decode("ascii")),
                    "UF": pydyf.String(f.name),
                    "EF": pydyf.Dictionary({"F": stream.reference, "UF": stream.reference}),
                    "Desc": pydyf.String(_description(f.name)),
                    "AFRelationship": f"/{_relationship(f.name)}",
                }
            )
            pdf.add_object(spec)
            names.extend([pydyf.String(f.name), spec.reference])
            associated.append(spec.reference)
        tree = pydyf.Dictionary({"Names": names})
        pdf.add_object(tree)
        if "Names" not in pdf.catalog:
            pdf.catalog["Names"] = pydyf.Dictionary()
        pdf.catalog["Names"]["EmbeddedFiles"] = tree.reference
        pdf.catalog["AF"] = pydyf.Array([*pdf.catalog.get("AF", []), *associated])

    return finish


def _attachment_rows(files: list[EmbeddedFile]) -> list[dict[str, str]]:
    return [
        {
            "name": _clean(f.name),
            "mime": _clean(f.mime),
            "size": _size(f.size),
            "sha256": f.sha256,
            "relationship": _relationship(f.name),
        }
        for f in files
    ]


def _relationship(name: str) -> str:
    """The PDF/A-3 AFRelationship: suite files are the source the runs executed; the results
    and the summary are the data this document presents."""
    return "Source" if name.startswith("suite/") else "Data"


def _description(name: str) -> str:
    if name == "results.jsonl":
        return "Every step of the evidence runs, one JSON record per line (hash-chained)"
    if name == "certification.json":
        return "The evidence summary this certificate is rendered from (certdash-evidence/1)"
    if name.startswith("suite/"):
        return "Suite file as executed by the evidence runs"
    return "Evidence file"


def _cover(summary: Mapping[str, Any]) -> dict[str, Any]:
    partner = summary.get("partner") or {}
    certification = summary.get("certification")
    runs = summary.get("runs") or []
    verdict = summary.get("verdict") or {}
    result = str(verdict.get("result") or "")
    if certification:
        subject = _clean(certification.get("title")) or _clean(certification.get("scope"))
        scope = _clean(certification.get("scope"))
        kind_label = "Certification"
    else:
        first = runs[0] if runs else {}
        subject = f"Run {_clean(first.get('id'))}" if first else "Run"
        suite = f"{_clean(first.get('suite'))} v{_clean(first.get('suiteVersion'))}"
        subject = f"{subject} · suite {suite}" if first else subject
        scope = f"Run {_clean(first.get('id'))}" if first else "Run"
        kind_label = "Run bundle"
    headline = _clean(verdict.get("headline"), 120) or _fallback_headline(summary)
    reasons, more_reasons = _clip_list(verdict.get("reasons") or [])
    facts: list[tuple[str, str]] = [
        ("Partner", f"{_clean(partner.get('name'))} ({_clean(partner.get('id'))})"),
    ]
    if certification:
        facts += [
            ("Certification", subject),
            ("Scope", scope),
            ("Certification id", _clean(certification.get("id"))),
            ("Status", _status_text(certification)),
            *_scope_facts(certification),
            ("Opened", when(certification.get("openedAt"))),
            ("Signed off", when(certification.get("signedOffAt"))),
            ("Valid until", when(certification.get("validUntil"))),
            ("Validity", f"{_clean(certification.get('validityDays'))} days"),
        ]
    elif runs:
        run = runs[0]
        facts += [
            ("Run", f"{_clean(run.get('id'))} ({_clean(run.get('status'))})"),
            ("Suite", f"{_clean(run.get('suite'))} v{_clean(run.get('suiteVersion'))}"),
            ("Created", f"{when(run.get('createdAt'))} by {_clean(run.get('createdBy')) or '—'}"),
            ("Finished", when(run.get("finishedAt"))),
        ]
    environment = summary.get("environment") or {}
    env_text = " · ".join(
        _clean(environment.get(k))
        for k in ("name", "product", "productVersion")
        if environment.get(k)
    )
    facts += [
        ("Environment", env_text or "—"),
        ("Bundle", _clean(summary.get("id"))),
        ("Evidence as of", when(summary.get("generatedAt"))),
    ]
    return {
        "kind_label": kind_label,
        "subject": subject,
        "scope": scope,
        "partner_name": _clean(partner.get("name")),
        "partner_id": _clean(partner.get("id")),
        "headline": headline,
        "tone": _verdict_tone(result),
        "result": _clean(result),
        "reasons": reasons,
        "more_reasons": more_reasons,
        "facts": facts,
    }


def _status_text(certification: Mapping[str, Any]) -> str:
    status = _clean(certification.get("status"))
    reason = _clean(certification.get("statusReason"), MAX_VALUE_CHARS)
    return f"{status}: {reason}" if reason else status


def _scope_facts(certification: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the certification covers, when the summary says (suites and SLAs in scope)."""
    facts = []
    suites = certification.get("suitesInScope")
    if suites:
        listed = suites if isinstance(suites, list) else [suites]
        facts.append(("Suites in scope", ", ".join(_clean(s) for s in listed[:MAX_REASONS])))
    slas = certification.get("slasInScope")
    if slas:
        listed = slas if isinstance(slas, list) else [slas]
        facts.append(("SLAs in scope", ", ".join(_clean(s) for s in listed[:MAX_REASONS])))
    return facts


def _verdict_tone(result: str) -> str:
    if result in ("certified", "passed"):
        return "ok"
    if result in ("cancelled",):
        return "muted"
    return "bad"


def _fallback_headline(summary: Mapping[str, Any]) -> str:
    result = str((summary.get("verdict") or {}).get("result") or "")
    if summary.get("kind") == "run":
        return f"RUN {result.upper() or 'WITHOUT VERDICT'}"
    certification = summary.get("certification") or {}
    if result == "certified" and certification.get("validUntil"):
        return f"CERTIFIED until {when(certification['validUntil']).split(' ')[0]}"
    return "NOT SIGNED OFF" if not summary.get("certifiedBy") else result.upper()


def _suites(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "name": _clean(s.get("name")),
            "version": _clean(s.get("version")),
            "hash": _clean(s.get("contentHash")),
            "entry": _clean(s.get("entry")),
            "files": _count(len(s.get("files") or [])),
        }
        for s in summary.get("suites") or []
    ]


def _endpoints(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "run": _clean(e.get("run")),
            "name": _clean(e.get("name")),
            "url": _clean(e.get("baseUrl"), MAX_VALUE_CHARS),
            "auth": _clean(e.get("authKind")) or "none",
            "kind": _clean(e.get("kind")),
        }
        for e in summary.get("endpoints") or []
    ]


def _runs(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for run in summary.get("runs") or []:
        scenarios, steps = run.get("scenarios") or {}, run.get("steps") or {}
        reasons, more = _clip_list(run.get("reasons") or [])
        rows.append(
            {
                "id": _clean(run.get("id")),
                "suite": f"{_clean(run.get('suite'))} v{_clean(run.get('suiteVersion'))}",
                "status": _clean(run.get("status")),
                "tone": _tone(run.get("status")),
                "trigger": _clean(run.get("trigger")),
                "by": _clean(run.get("createdBy")) or "—",
                "created": when(run.get("createdAt")),
                "started": when(run.get("startedAt")),
                "finished": when(run.get("finishedAt")),
                "scenarios": f"{_count(scenarios.get('passed'))} of "
                f"{_count(scenarios.get('total'))} passed",
                "scenario_counts": ", ".join(
                    f"{_count(scenarios.get(k))} {k}"
                    for k in ("failed", "error", "unevaluated", "cancelled")
                    if scenarios.get(k)
                ),
                "steps": f"{_count(steps.get('passed'))} of {_count(steps.get('total'))} passed",
                "step_counts": ", ".join(
                    f"{_count(steps.get(k))} {k}"
                    for k in ("failed", "error", "unevaluated", "skipped")
                    if steps.get(k)
                ),
                "reasons": reasons,
                "more_reasons": more,
                "error": _clean(run.get("error"), MAX_VALUE_CHARS),
            }
        )
    return rows


def _waiver_note(waiver: Mapping[str, Any] | None) -> str:
    """``waived until 2026-06-30, approved by Dana: <reason>`` (the waiver table has the id)."""
    if not waiver:
        return ""
    parts = ["waived"]
    if waiver.get("endsOn"):
        parts[0] += f" until {when(waiver['endsOn'])}"
    if waiver.get("approvedBy"):
        approved = waiver["approvedBy"]
        parts.append(
            f"approved by {_person(approved) if isinstance(approved, dict) else _clean(approved)}"
        )
    text = ", ".join(parts)
    if waiver.get("reason"):
        text += f": {_clean(waiver['reason'])}"
    return text


def _measured(value: Any, unit: str) -> str:
    """``168.213 ms``, ``99.8 %``: the value as recorded (3 decimals at most) and its unit."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _clean(value)
    number = f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{number} {unit}".strip()


def _sla(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for v in summary.get("sla") or []:
        measured = v.get("measured")
        unit = _clean(v.get("unit"))
        verdict = _clean(v.get("verdict")) or "not measured"
        samples = []
        if v.get("samples"):
            samples.append(f"{_count(v['samples'])} samples")
        if v.get("requests"):
            samples.append(f"{_count(v['requests'])} requests")
        if v.get("errors"):
            samples.append(f"{_count(v['errors'])} failed")
        if v.get("over_target") is not None and v.get("kind") == "latency":
            samples.append(f"{_count(v['over_target'])} over target")
        if v.get("min_samples"):
            samples.append(f"met needs ≥ {_count(v['min_samples'])}")
        rows.append(
            {
                "run": _clean(v.get("run")),
                "label": _clean(v.get("label") or v.get("target")),
                "target": _clean(v.get("target")),
                "measured": _measured(measured, unit),
                "samples": " · ".join(samples) or "—",
                "verdict": verdict,
                "tone": "ok" if verdict == "met" else _tone(verdict),
                "reason": _clean(v.get("reason"), MAX_VALUE_CHARS),
                "rule": _clean(v.get("rule"), MAX_VALUE_CHARS),
                "waiver": _waiver_note(v.get("waiver")),
            }
        )
    return rows


def _latency(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per (run, endpoint): the percentile row and, for the first
    MAX_LATENCY_CHARTS, the two charts as ``data:`` SVG URLs."""
    targets_by: dict[tuple[str, str], list[svg_charts.LatencyTarget]] = {}
    for v in summary.get("sla") or []:
        if v.get("kind") != "latency":
            continue
        target = svg_charts.parse_latency_target(str(v.get("target") or ""))
        if target is not None:
            key = (str(v.get("run")), str(v.get("endpoint")))
            if target not in targets_by.setdefault(key, []):
                targets_by[key].append(target)
    entries = []
    for n, item in enumerate(summary.get("latency") or []):
        run, endpoint = _clean(item.get("run")), _clean(item.get("endpoint"), 80)
        targets = targets_by.get((str(item.get("run")), str(item.get("endpoint"))), [])
        histogram = item.get("histogram") or {}
        count = int(histogram.get("count") or 0)
        ratio = item.get("success_ratio")
        entry: dict[str, Any] = {
            "anchor": f"latency-{n}",
            "run": run,
            "endpoint": endpoint,
            "requests": _count(item.get("requests")),
            "ok": _count(item.get("ok")),
            "errors": _count(item.get("errors")),
            "ratio": "—"
            if ratio is None
            else f"{100 * float(ratio):.2f}".removesuffix(".00") + " %",
            # As recorded (3 decimals), like the SLA table, so the two can be compared.
            **{k: _measured(item.get(k), "ms") for k in ("p50", "p90", "p95", "p99", "max")},
            "targets": ", ".join(t.label for t in targets) or "none",
            "samples": count,
            "charted": n < MAX_LATENCY_CHARTS,
            "histogram_svg": None,
            "bars_svg": None,
            "chart_note": "",
        }
        if count and n < MAX_LATENCY_CHARTS:
            where = f"{endpoint} (run {run})"
            try:
                hist = svg_charts.latency_histogram_svg(
                    histogram,
                    title=f"Latency distribution · {where}",
                    percentiles={k: item.get(k) for k in ("p50", "p95", "p99")},
                    targets=targets,
                )
            except ValueError:  # a histogram of an unknown scheme: the table still shows it
                hist = None
                entry["chart_note"] = (
                    f"The histogram (scheme {_clean(histogram.get('scheme'), 40)!r}) cannot be "
                    "drawn; the percentiles above are as recorded."
                )
            bars = svg_charts.percentile_bars_svg(
                item, title=f"Percentiles against targets · {where}", targets=targets
            )
            entry["histogram_svg"] = _svg_data_url(hist)
            entry["bars_svg"] = _svg_data_url(bars)
            entry["histogram_alt"] = _svg_desc(hist)
            entry["bars_alt"] = _svg_desc(bars)
        entries.append(entry)
    return entries


def _svg_data_url(svg: str | None) -> str | None:
    if svg is None:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _svg_desc(svg: str | None) -> str:
    if svg is None:
        return ""
    match = re.search(r"<desc[^>]*>(.*?)</desc>", svg, re.S)
    return unescape(match.group(1)) if match else ""


def _scenario_row(s: Mapping[str, Any]) -> dict[str, Any]:
    status = _clean(s.get("status"))
    return {
        "code": _clean(s.get("code"), 60),
        "name": _clean(s.get("name")),
        "status": status,
        "tone": _tone(status),
        "steps": f"{_count(s.get('passedSteps'))}/{_count(s.get('steps'))}",
        "duration": duration(s.get("durationMs")),
        "waiver": _waiver_note(s.get("waiver")),
        "anchor": f"scenario-{_clean(s.get('run'))}-{_clean(s.get('index'))}"
        if status in BAD_STATUSES
        else "",
    }


def _kind_key(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def _kind_label(kind: Any) -> str:
    return KIND_LABELS.get(str(kind), _clean(kind))


def _scenarios(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Scenario tables grouped by run and kind; condensed above MAX_SCENARIO_ROWS."""
    scenarios = summary.get("scenarios") or []
    condensed = len(scenarios) > MAX_SCENARIO_ROWS
    suites = {
        str(r.get("id")): f"{r.get('suite')} v{r.get('suiteVersion')}"
        for r in summary.get("runs") or []
    }
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    rows_left = MAX_SCENARIO_ROWS
    for s in scenarios:
        run, kind = str(s.get("run")), str(s.get("kind") or "main")
        group = groups.setdefault(
            (run, kind),
            {
                "run": _clean(run),
                "suite": _clean(suites.get(run, "")),
                "kind_key": kind,
                "kind": _kind_label(kind),
                "rows": [],
                "counts": {},
                "unlisted": 0,
                "unlisted_passed": 0,
            },
        )
        status = str(s.get("status") or "")
        group["counts"][status] = group["counts"].get(status, 0) + 1
        listed = not condensed or status != "passed"
        if listed and rows_left > 0:
            group["rows"].append(_scenario_row(s))
            rows_left -= 1
        elif status == "passed":
            group["unlisted_passed"] += 1
        else:
            group["unlisted"] += 1
    ordered = sorted(
        groups.values(), key=lambda g: (_run_order(summary, g["run"]), _kind_key(g["kind_key"]))
    )
    for group in ordered:
        group["total"] = sum(group["counts"].values())
        group["summary"] = ", ".join(
            f"{_count(n)} {status}" for status, n in sorted(group["counts"].items())
        )
    return {"groups": ordered, "condensed": condensed, "total": len(scenarios)}


def _run_order(summary: Mapping[str, Any], run: str) -> int:
    ids = [str(r.get("id")) for r in summary.get("runs") or []]
    return ids.index(run) if run in ids else len(ids)


def _body_excerpt(capture: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not capture:
        return None
    body = capture.get("body")
    if body is None or body == "":
        return None
    if not isinstance(body, str):
        body = json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True, default=str)
    data = body.encode("utf-8", "replace")
    cut = data[:BODY_EXCERPT_BYTES].decode("utf-8", "ignore")
    lines = cut.split("\n")
    if len(lines) > BODY_EXCERPT_LINES:
        cut = "\n".join(lines[:BODY_EXCERPT_LINES])
    shown = len(cut.encode("utf-8"))
    captured = len(data)
    full = int(capture.get("body_size") or captured)
    notes = []
    if shown < captured:
        notes.append(f"truncated: the first {_size(shown)} of {_size(captured)} captured")
    if capture.get("truncated") and full > captured:
        notes.append(f"the engine captured {_size(captured)} of a {_size(full)} body")
    if capture.get("body_sha256"):
        notes.append(f"sha256 of the full body {_clean(capture['body_sha256'], 64)}")
    return {
        "text": _text_node(_clean(cut, BODY_EXCERPT_BYTES + 1)),
        "notes": notes,
        "cut": shown < captured,
    }


def _step_view(step: Mapping[str, Any]) -> dict[str, Any]:
    request = step.get("request") or {}
    response = step.get("response") or {}
    failure = step.get("failure") or {}
    assertions = step.get("assertions") or []
    problems = [a for a in assertions if not a.get("passed") or a.get("evaluated") is False]
    passed = len(assertions) - len(problems)
    shown = [
        {
            "state": "not evaluated" if a.get("evaluated") is False else "failed",
            "tone": "warn" if a.get("evaluated") is False else "bad",
            "path": _clean(a.get("path")),
            "operator": _clean(a.get("operator"), 40),
            "expected": _show(a.get("expected")),
            "actual": _show(a.get("actual")),
            "message": _clean(a.get("message"), MAX_VALUE_CHARS),
        }
        for a in problems[:MAX_ASSERTIONS_SHOWN]
    ]
    request_line = " ".join(
        p
        for p in (_clean(request.get("method"), 16), _clean(request.get("url"), MAX_VALUE_CHARS))
        if p
    )
    status = _clean(step.get("status"))
    body = _body_excerpt(response) if response else None
    body_label = "Response body"
    if body is None and not response:
        body, body_label = _body_excerpt(request), "Request body"
    return {
        "name": _clean(step.get("name")),
        "status": status,
        "tone": _tone(status),
        "iteration": step.get("iteration") or 0,
        "request_line": request_line or "—",
        "response_status": _clean(response.get("status")) if response else "no response",
        "failure": (
            f"{_clean(failure.get('kind'), 40)}: {_clean(failure.get('message'), MAX_VALUE_CHARS)}"
            if failure
            else ""
        ),
        "assertions": shown,
        "more_assertions": max(len(problems) - MAX_ASSERTIONS_SHOWN, 0),
        "passed_assertions": passed,
        "duration": duration(step.get("durationMs")),
        "body": body,
        "body_label": body_label,
    }


def _failures(source: BundleSource) -> dict[str, Any]:
    """The failing scenarios with their failing steps in full, within the caps."""
    summary = source.summary
    budget = MAX_FULL_FAILED_STEPS
    blocks = []
    omitted_steps = 0
    omitted_scenarios = 0
    for s in summary.get("scenarios") or []:
        if s.get("status") not in BAD_STATUSES:
            continue
        key = f"{s.get('run')}/{s.get('index')}"
        steps = source.failures.get(key) or []
        if budget <= 0:
            omitted_steps += len(steps)
            omitted_scenarios += 1
            continue
        take = min(len(steps), MAX_FULL_STEPS_PER_SCENARIO, budget)
        budget -= take
        blocks.append(
            {
                **_scenario_row(s),
                "run": _clean(s.get("run")),
                "index": _clean(s.get("index")),
                "kind": _kind_label(s.get("kind")),
                "steps_view": [_step_view(step) for step in steps[:take]],
                "not_shown": len(steps) - take,
                "recorded": len(steps),
            }
        )
        omitted_steps += len(steps) - take
    return {
        "blocks": blocks,
        "omitted_steps": omitted_steps,
        "omitted_scenarios": omitted_scenarios,
        "cap": MAX_FULL_FAILED_STEPS,
        "cap_per_scenario": MAX_FULL_STEPS_PER_SCENARIO,
        "excerpt": _size(BODY_EXCERPT_BYTES),
    }


def _waivers(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for w in summary.get("waivers") or []:
        in_force = bool(w.get("inForce"))
        rows.append(
            {
                "id": _clean(w.get("id")),
                "item": f"{_clean(w.get('itemKind'))}: "
                f"{_clean(w.get('itemLabel') or w.get('itemKey'))}",
                "key": _clean(w.get("itemKey")),
                "reason": _clean(w.get("reason"), MAX_VALUE_CHARS),
                "decision": _clean(w.get("decisionNote"), MAX_VALUE_CHARS),
                "requested": f"{_person(w.get('requestedBy'))}, {when(w.get('requestedAt'))}",
                "approved": f"{_person(w.get('approvedBy'))}, {when(w.get('approvedAt'))}"
                if w.get("approvedBy")
                else "not approved",
                "ends": when(w.get("endsOn")),
                "status": _clean(w.get("status")),
                # A waiver in force excuses an item; it is not a pass, so never green.
                "in_force": "in force" if in_force else "not in force",
                "tone": "warn" if in_force else "muted",
            }
        )
    return rows


_CHECK_STATES = {"met": "met", "not_applicable": "not applicable", "open": "open"}


def _checklist(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in summary.get("checklist") or []:
        state = str(item.get("state") or "open")
        label = _CHECK_STATES.get(state, _clean(state).replace("_", " "))
        scenarios = [
            f"{_clean(s.get('code'), 60)} {_clean(s.get('name'))} ({_clean(s.get('status'))})"
            for s in (item.get("scenarios") or [])[:MAX_REASONS]
        ]
        rows.append(
            {
                "label": _clean(item.get("label")),
                "state": label,
                "tone": "ok"
                if state == "met"
                else ("muted" if state == "not_applicable" else "warn"),
                "by": _person(item.get("by")),
                "at": when(item.get("at")),
                "note": _clean(item.get("note"), MAX_VALUE_CHARS),
                "waiver": _waiver_note(item.get("waiver")),
                "scenarios": scenarios,
                "more_scenarios": max(len(item.get("scenarios") or []) - MAX_REASONS, 0),
            }
        )
    return rows


def _signoff(summary: Mapping[str, Any]) -> dict[str, Any]:
    by = summary.get("certifiedBy")
    confirmation = summary.get("partnerConfirmation")
    return {
        "is_run": summary.get("kind") == "run",
        "signed": bool(by),
        "by": _person(by) if by else "",
        "role": _clean((by or {}).get("role")) or "—",
        "at": when((by or {}).get("at")),
        "note": _clean((by or {}).get("note"), MAX_VALUE_CHARS),
        "confirmed": bool(confirmation),
        "confirmed_by": _person(confirmation) if confirmation else "",
        "confirmed_at": when((confirmation or {}).get("at")),
    }


def certificate_context(source: BundleSource, *, files: list[EmbeddedFile]) -> dict[str, Any]:
    """Everything the template shows, as plain strings and lists (partner text cleaned and
    clipped, not escaped: the template escapes)."""
    summary = source.summary
    cover = _cover(summary)
    results = summary.get("results") or {}
    key = summary.get("signingKey") or {}
    header = " · ".join(
        p for p in (cover["partner_name"], cover["scope"], _clean(summary.get("id"))) if p
    )
    return {
        "title": f"Certificate · {cover['partner_name']} · {cover['scope']}",
        "header": _clean(header, 140),
        "created": _w3c(source.fixed_time),
        "fixed_time": when(source.fixed_time),
        "format": _clean(summary.get("format")),
        "cover": cover,
        "suites": _suites(summary),
        "endpoints": _endpoints(summary),
        "runs": _runs(summary),
        "sla": _sla(summary),
        "percentile_method": _clean(summary.get("percentileMethod"), MAX_VALUE_CHARS),
        "latency": _latency(summary),
        "max_charts": MAX_LATENCY_CHARTS,
        "scenarios": _scenarios(summary),
        "max_scenario_rows": MAX_SCENARIO_ROWS,
        "failures": _failures(source),
        "waivers": _waivers(summary),
        "checklist": _checklist(summary),
        "signoff": _signoff(summary),
        "attachments": _attachment_rows(files),
        "results": {
            "file": _clean(results.get("file")) or "results.jsonl",
            "records": _count(results.get("records")),
            "head": _clean(results.get("headSha256"), 128) or "—",
        },
        "key": {
            "algorithm": _clean(key.get("algorithm")) or "—",
            "fingerprint": _clean(key.get("fingerprint"), 128) or "—",
        },
        # The archive's own file names and commands, so the two can never disagree.
        "files": {"sums": archive.SUMS, "public_key": archive.KEY, "verify": archive.VERIFY},
        "commands": {
            "sums": archive.SUMS_CHECK,
            "signature": archive.SIGNATURE_CHECK,
            "fingerprint": archive.FINGERPRINT_CHECK,
        },
    }


def certificate_html(source: BundleSource, *, attachments: list[AttachmentSpec]) -> str:
    """The certificate as HTML (Django template ``evidence/certificate.html``, autoescaped)."""
    files = [read_attachment(*a) for a in attachments]
    return render_to_string(TEMPLATE, certificate_context(source, files=files))


def layout_certificate(source: BundleSource, *, attachments: list[AttachmentSpec]) -> Any:
    """The laid-out WeasyPrint ``Document`` (pages, boxes) of the certificate."""
    return _layout(certificate_html(source, attachments=attachments))


def _layout(markup: str) -> Any:
    # No base_url: a relative reference resolves to nothing, never to a file.
    return HTML(string=markup, base_url=None, url_fetcher=DataOnlyURLFetcher()).render(
        pdf_variant=PDF_VARIANT
    )


def render_certificate(
    source: BundleSource,
    *,
    attachments: list[tuple[str, Path | bytes, str]],
    out: BinaryIO,
    progress: Callable[[int, str], None] | None = None,
) -> None:
    """Write the certificate of ``source`` to ``out`` as PDF/A-3b, with ``attachments``
    ((file name, path or bytes, MIME type)) embedded as associated files.

    Deterministic (same source and attachments, same bytes), fetches nothing, and bounded in
    pages and layout memory by the scenarios and failures shown (see the module docstring).
    ``progress`` is called with (percent, stage) as the work goes on.
    """

    def report(percent: int, stage: str) -> None:
        if progress is not None:
            progress(percent, stage)

    report(0, "Reading the evidence files")
    names = [name for name, _content, _mime in attachments]
    if len(set(names)) != len(names):
        raise ValueError(f"attachment names must be unique: {names}")
    files = [read_attachment(*a) for a in attachments]
    report(10, "Preparing the certificate")
    markup = render_to_string(TEMPLATE, certificate_context(source, files=files))
    report(20, "Laying out the certificate pages")
    document = _layout(markup)
    report(75, f"Writing the PDF ({len(document.pages)} pages) and embedding the evidence files")
    document.write_pdf(out, pdf_variant=PDF_VARIANT, finisher=_embedder(files, source.fixed_time))
    report(100, "Certificate written")
