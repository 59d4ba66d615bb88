from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from certification.management.suite_files import store_suite_file


class Command(BaseCommand):
    help = (
        "Validate and store a suite. Identical content is stored once; changed content becomes "
        "the next version of the suite's name. Exit code 2 on invalid input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        suite, created = store_suite_file(file, self.stderr, by="manage.py load_suite")
        verb = "Stored" if created else "Unchanged:"
        self.stdout.write(
            f"{verb} suite '{suite.name}' version {suite.version} "
            f"({suite.scenarios.count()} scenarios, sha256 {suite.content_hash[:12]})."
        )
