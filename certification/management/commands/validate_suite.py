from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from certification import suites
from certification.management.suite_files import located, with_suite_file


class Command(BaseCommand):
    help = (
        "Check a suite file (and the files it $refs) without storing anything. Every error is "
        "printed as file:line:column: message; the exit code is 2 if there are any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        suite = with_suite_file(
            file,
            self.stderr,
            lambda entry, sources: suites.suite_parse(entry=entry, sources=sources),
        )
        for warning in suite.warnings:
            self.stderr.write(f"warning: {located(file, warning)}")
        steps = sum(len(s.steps) for s in suite.scenarios)
        self.stdout.write(
            f"{file}: suite '{suite.name}' is valid: {len(suite.scenarios)} scenario(s), "
            f"{steps} step(s), {len(suite.mocks)} mock(s)."
        )
