from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certification import services
from certification.engine.spec import SuiteInvalid


class Command(BaseCommand):
    help = (
        "Check a suite file (and the files it $refs) without storing anything. Every error is "
        "printed as file:line:column: message; the exit code is 2 if there are any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            entry, sources = services.suite_sources_from_file(file)
            suite = services.suite_parse(entry=entry, sources=sources)
        except services.SuiteSourceError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except SuiteInvalid as exc:
            for error in exc.errors:
                self.stderr.write(_located(file, str(error)))
            raise CommandError(f"{len(exc.errors)} error(s) in {file}.", returncode=2) from None
        for warning in suite.warnings:
            self.stderr.write(f"warning: {_located(file, warning)}")
        steps = sum(len(s.steps) for s in suite.scenarios)
        self.stdout.write(
            f"{file}: suite '{suite.name}' is valid: {len(suite.scenarios)} scenario(s), "
            f"{steps} step(s), {len(suite.mocks)} mock(s)."
        )


def _located(file: Path, message: str) -> str:
    """Errors name files relative to the suite's folder; show them as the user typed the path."""
    folder = file.parent
    return message if str(folder) in ("", ".") else f"{folder}/{message}"
