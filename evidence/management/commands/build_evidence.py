"""``manage.py build_evidence --run ID | --certification ID --out FILE.zip``: build an evidence
bundle in this process (no worker needed), the same bytes the download gives."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certification.models import Run
from evidence import bundles, collect
from evidence.audit import audit_record
from evidence.models import Certification


class Command(BaseCommand):
    help = (
        "Build the evidence bundle of a finished run or of a certification into FILE.zip: "
        "certificate.pdf, results.jsonl, exchanges.har, the suites, certification.json, "
        "SHA256SUMS signed with the evidence key, and VERIFY.txt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subject = parser.add_mutually_exclusive_group(required=True)
        subject.add_argument("--run", type=int, metavar="ID", help="A finished run's id.")
        subject.add_argument("--certification", metavar="ID", help="A certification's id.")
        parser.add_argument("--out", required=True, metavar="FILE.zip", type=Path)

    def handle(self, *args: Any, run: int | None, certification: str | None, out: Path,
               **options: Any) -> None:  # fmt: skip
        if run is not None:
            found = Run.objects.select_related("partner", "suite").filter(pk=run).first()
            if found is None:
                raise CommandError(f"--run: no run with id {run}")
            if not found.is_finished:
                raise CommandError(f"--run: run {run} has not finished ({found.status})")
            source, partner, target = collect.source_for_run(found), found.partner, f"run {run}"
        else:
            try:
                pk = uuid.UUID(str(certification))
            except ValueError:
                raise CommandError(f"--certification: {certification!r} is not an id") from None
            found_cert = Certification.objects.select_related("partner").filter(pk=pk).first()
            if found_cert is None:
                raise CommandError(f"--certification: no certification with id {certification}")
            source = collect.source_for_certification(found_cert)
            partner = found_cert.partner
            target = f"{partner.external_id}/{found_cert.scope}"
        if out.parent and not out.parent.exists():
            raise CommandError(f"--out: folder {out.parent} does not exist")
        partial = out.with_name(out.name + ".partial")
        try:
            with partial.open("wb") as handle:
                sha256 = bundles.write_bundle(source, handle)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        from django.utils import timezone

        from evidence import signing

        signing.signing_key_record(now=timezone.now())  # listed on /about/signing-keys/
        audit_record(
            actor="manage.py build_evidence",
            action="bundle.export",
            partner=partner,
            target=target,
            data={"sha256": sha256, "file": out.name},
        )
        self.stdout.write(f"{out}: {out.stat().st_size:,} bytes, sha256 {sha256}")
        self.stdout.write(f"Verify it with: python manage.py verify_bundle {out}")
