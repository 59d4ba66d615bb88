from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certification import services
from certification.engine.spec import SuiteInvalid
from certification.management.commands.validate_suite import _located


class Command(BaseCommand):
    help = (
        "Validate and store a suite. Identical content is stored once; changed content becomes "
        "the next version of the suite's name. Exit code 2 on invalid input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            entry, sources = services.suite_sources_from_file(file)
            suite, created = services.suite_store(
                entry=entry, sources=sources, by="manage.py load_suite"
            )
        except services.SuiteSourceError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except SuiteInvalid as exc:
            for error in exc.errors:
                self.stderr.write(_located(file, str(error)))
            raise CommandError(
                f"{len(exc.errors)} error(s) in {file}; nothing was stored.", returncode=2
            ) from None
        verb = "Stored" if created else "Unchanged:"
        self.stdout.write(
            f"{verb} suite '{suite.name}' version {suite.version} "
            f"({suite.scenarios.count()} scenarios, sha256 {suite.content_hash[:12]})."
        )
