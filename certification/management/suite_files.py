"""Reading suite files for the management commands: errors become `file:line:column` lines on
stderr and a CommandError with exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.core.management.base import CommandError, OutputWrapper

from certification import suites
from certification.engine.spec import SuiteInvalid

T = TypeVar("T")


def located(file: Path, message: str) -> str:
    """Errors name files relative to the suite's folder; show them as the user typed the path."""
    folder = file.parent
    return message if str(folder) in ("", ".") else f"{folder}/{message}"


def with_suite_file(
    file: Path, stderr: OutputWrapper, use: Callable[[str, dict[str, str]], T], *, what: str = ""
) -> T:
    """Read ``file`` and its ``$ref``s and call ``use(entry, sources)``, reporting every error:
    those of reading (a file that cannot be read, is too large or is not UTF-8) as well as those
    of the suite, all as ``file:line:column: message``."""
    try:
        entry, sources = suites.suite_sources_from_file(file)
        return use(entry, sources)
    except SuiteInvalid as exc:
        for error in exc.errors:
            stderr.write(located(file, str(error)))
        raise CommandError(f"{len(exc.errors)} error(s) in {file}{what}.", returncode=2) from None


def store_suite_file(file: Path, stderr: OutputWrapper, *, by: str) -> Any:
    """Validate and store a suite file; returns ``(suite, created)``."""
    return with_suite_file(
        file,
        stderr,
        lambda entry, sources: suites.suite_store(entry=entry, sources=sources, by=by),
        what="; nothing was stored",
    )
