"""Building, storing and handing out evidence bundles.

``bundle_request`` records a wanted bundle and queues ``evidence.tasks.build_bundle``;
``bundle_build`` (the task's body) claims it with a conditional update, gathers the source,
writes ``results.jsonl``, ``exchanges.har``, ``certification.json`` and ``certificate.pdf`` into a
temporary folder, zips and signs them (``evidence.archive``), and stores the zip in the
``evidence`` storage. Progress is written to the row as it goes, for the page to show.

A bundle is a function of the stored records (see ``evidence.collect``), so building the same
certification twice gives the same bytes; a signed certification's bundle is built once and its
hash recorded on the certification.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from certification.models import Run
from evidence import collect
from evidence.audit import audit_record
from evidence.bundle_source import BundleSource
from evidence.models import Certification, EvidenceBundle

logger = logging.getLogger(__name__)

STALE_AFTER = dt.timedelta(minutes=30)
PROGRESS_EVERY_S = 0.5


def storage() -> Any:
    return storages["evidence"]


def _subject(bundle: EvidenceBundle) -> str:
    if bundle.certification_id:
        return f"{bundle.certification.partner.external_id}/{bundle.certification.scope}"
    return f"run {bundle.run_id}"


@transaction.atomic
def bundle_request(
    *, by: Any, certification: Certification | None = None, run: Run | None = None
) -> EvidenceBundle:
    """The bundle for a certification or a run: an existing one when it is still current, else
    a new one, queued.

    Current means: for a finished run, any bundle of it; for a signed certification, a bundle
    requested after the sign-off (a draft built before it never stands for the signed
    certification); for an open certification, one still being built. A build stuck for
    ``STALE_AFTER`` is not waited for."""
    if (certification is None) == (run is None):
        raise ValueError("a bundle is of a certification or of a run")
    if run is not None and not run.is_finished:
        from django.core.exceptions import ValidationError

        raise ValidationError("The run has not finished; its evidence can be built when it has.")
    now = timezone.now()
    if certification is not None:
        existing = EvidenceBundle.objects.filter(certification=certification)
        if certification.is_signed:
            existing = existing.filter(requested_at__gte=certification.signed_off_at)
        reusable = [EvidenceBundle.Status.QUEUED, EvidenceBundle.Status.BUILDING]
        if certification.is_signed:
            reusable.append(EvidenceBundle.Status.READY)
    else:
        existing = EvidenceBundle.objects.filter(run=run)
        reusable = [
            EvidenceBundle.Status.QUEUED,
            EvidenceBundle.Status.BUILDING,
            EvidenceBundle.Status.READY,
        ]
    for bundle in existing.filter(status__in=reusable).order_by("-requested_at")[:5]:
        if bundle.status == EvidenceBundle.Status.READY or now - bundle.requested_at < STALE_AFTER:
            return bundle
    partner = certification.partner if certification else run.partner
    bundle = EvidenceBundle.objects.create(
        partner=partner,
        certification=certification,
        run=run,
        requested_by=by if getattr(by, "is_authenticated", False) else None,
        requested_at=now,
        stage="waiting for a worker",
    )
    audit_record(
        actor=by,
        action="bundle.request",
        partner=partner,
        target=_subject(bundle),
        data={
            "bundle": str(bundle.pk),
            "draft": bool(certification and not certification.is_signed),
        },
    )
    from evidence.tasks import build_bundle

    transaction.on_commit(lambda: build_bundle.delay(str(bundle.pk)))
    return bundle


def _progress(bundle_id: Any, percent: int, stage: str) -> None:
    EvidenceBundle.objects.filter(pk=bundle_id, status=EvidenceBundle.Status.BUILDING).update(
        progress=max(0, min(99, percent)), stage=stage[:200]
    )


def _counting(
    steps: Callable[[], Iterator[tuple[int, int, dict[str, Any]]]],
    bundle_id: Any,
    total: int,
    low: int,
    high: int,
) -> Callable[[], Iterator[tuple[int, int, dict[str, Any]]]]:
    """``steps``, reporting progress from ``low`` to ``high`` percent as they stream."""

    def counted() -> Iterator[tuple[int, int, dict[str, Any]]]:
        last = time.monotonic()
        for n, item in enumerate(steps(), 1):
            yield item
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                stage = f"records: {n:,} of {total:,} steps"
                _progress(bundle_id, low + (high - low) * n // max(total, 1), stage)

    return counted


def build_files(
    source: BundleSource, folder: Path, *, bundle_id: Any = None
) -> list[tuple[str, Path | bytes]]:
    """Write the bundle's files into ``folder``; return them as (name in the zip, content)."""
    from evidence import records, signing

    total = sum(run["steps"]["total"] for run in source.summary["runs"])
    steps = source.iter_steps
    assert steps is not None
    if bundle_id is not None:
        source.iter_steps = _counting(steps, bundle_id, total, 5, 55)
    results_path = folder / "results.jsonl"
    with results_path.open("wb") as out:
        head = records.write_results(source, out)
    if bundle_id is not None:
        source.iter_steps = _counting(steps, bundle_id, total, 55, 75)
    har_path = folder / "exchanges.har"
    with har_path.open("wb") as out:
        records.write_har(source, out)
    traffic_path = folder / "traffic.jsonl"
    with traffic_path.open("wb") as out:
        traffic_count = records.write_traffic(source, out)
    source.iter_steps = steps
    files_path = folder / "files.jsonl"
    with files_path.open("wb") as out:
        file_counts = records.write_files(source, out)
    key_pem = signing.public_key_pem()
    source.summary["results"] = {
        "file": "results.jsonl",
        "records": head.records,
        "headSha256": head.head_sha256,
    }
    source.summary["traffic"] = {"file": "traffic.jsonl", "records": traffic_count}
    source.summary["files"] = {"file": "files.jsonl", **file_counts}
    source.summary["signingKey"] = {
        "algorithm": "Ed25519",
        "fingerprint": signing.fingerprint(key_pem),
    }
    summary_bytes = (
        json.dumps(source.summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()
    if bundle_id is not None:
        _progress(bundle_id, 78, "certificate.pdf")
    from evidence import pdf

    pdf_path = folder / "certificate.pdf"
    attachments: list[tuple[str, Path | bytes, str]] = [
        ("certification.json", summary_bytes, "application/json"),
        ("results.jsonl", results_path, "application/x-ndjson"),
        ("traffic.jsonl", traffic_path, "application/x-ndjson"),
        ("files.jsonl", files_path, "application/x-ndjson"),
        *((name, data, "application/yaml") for name, data in source.suite_files.items()),
    ]

    def pdf_progress(percent: int, stage: str) -> None:
        if bundle_id is not None:
            _progress(bundle_id, 78 + 14 * percent // 100, f"certificate.pdf: {stage}")

    with pdf_path.open("wb") as out:
        pdf.render_certificate(source, attachments=attachments, out=out, progress=pdf_progress)
    return [
        ("certificate.pdf", pdf_path),
        ("certification.json", summary_bytes),
        ("results.jsonl", results_path),
        ("exchanges.har", har_path),
        ("traffic.jsonl", traffic_path),
        ("files.jsonl", files_path),
        *source.suite_files.items(),
    ]


def write_bundle(source: BundleSource, out: Any, *, bundle_id: Any = None) -> str:
    """Build the whole zip for ``source`` into ``out``; returns its sha256."""
    from evidence import archive

    with tempfile.TemporaryDirectory(prefix="certdash-evidence-") as tmp:
        files = build_files(source, Path(tmp), bundle_id=bundle_id)
        if bundle_id is not None:
            _progress(bundle_id, 92, "signing and zipping")
        return archive.write_bundle_zip(out=out, files=files, fixed_time=source.fixed_time)


def source_of(bundle: EvidenceBundle) -> BundleSource:
    if bundle.certification_id:
        return collect.source_for_certification(bundle.certification)
    return collect.source_for_run(bundle.run)


def bundle_build(*, bundle_id: Any) -> EvidenceBundle | None:
    """Build a queued bundle. Returns None when another worker has it (or it is done)."""
    claimed = EvidenceBundle.objects.filter(
        pk=bundle_id, status=EvidenceBundle.Status.QUEUED
    ).update(status=EvidenceBundle.Status.BUILDING, stage="collecting", progress=1)
    if not claimed:
        return None
    bundle = EvidenceBundle.objects.select_related("certification__partner", "run").get(
        pk=bundle_id
    )
    try:
        source = source_of(bundle)
        with tempfile.NamedTemporaryFile(prefix="certdash-bundle-", suffix=".zip") as tmp:
            sha256 = write_bundle(source, tmp, bundle_id=bundle.pk)
            size = tmp.tell()
            tmp.seek(0)
            name = storage().save(f"bundles/{bundle.pk}.zip", File(tmp))
    except Exception:
        logger.exception("evidence bundle %s failed", bundle_id)
        EvidenceBundle.objects.filter(pk=bundle_id).update(
            status=EvidenceBundle.Status.FAILED,
            stage="failed",
            error="Building the bundle failed; the error is in the worker's log. Try again, "
            "or ask an administrator.",
            finished_at=timezone.now(),
        )
        return EvidenceBundle.objects.get(pk=bundle_id)
    from evidence import signing

    # Only a build whose source showed the certification signed off stands for it.
    signed_off = bool(bundle.certification_id and source.summary.get("certifiedBy"))
    with transaction.atomic():
        key = signing.signing_key_record(now=timezone.now())
        EvidenceBundle.objects.filter(pk=bundle_id).update(
            signed_off=signed_off,
            status=EvidenceBundle.Status.READY,
            progress=100,
            stage="ready",
            file_name=name,
            sha256=sha256,
            size=size,
            signing_key=key,
            finished_at=timezone.now(),
        )
        if signed_off:
            Certification.objects.filter(
                pk=bundle.certification_id, signed_off_at__isnull=False, bundle_sha256=""
            ).update(bundle_sha256=sha256)
        audit_record(
            actor="worker: build evidence",
            action="bundle.build",
            partner=bundle.partner,
            target=_subject(bundle),
            data={"bundle": str(bundle.pk), "sha256": sha256, "size": size},
        )
    return EvidenceBundle.objects.get(pk=bundle_id)


def bundle_open(bundle: EvidenceBundle, *, by: Any) -> Any:
    """The stored zip, opened for reading, and an audit event for the download."""
    if bundle.status != EvidenceBundle.Status.READY:
        raise FileNotFoundError("the bundle is not ready")
    audit_record(
        actor=by,
        action="bundle.download",
        partner=bundle.partner,
        target=_subject(bundle),
        data={"bundle": str(bundle.pk), "sha256": bundle.sha256},
    )
    return storage().open(bundle.file_name, "rb")
