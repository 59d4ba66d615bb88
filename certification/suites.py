"""Suite versions: reading suite files, parsing them (cached per content), storing versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from certification.engine import spec as engine_spec
from certification.engine.model import Suite as SuiteSpec
from certification.models import (
    Scenario,
    Suite,
)
from evidence.audit import audit_record


def suite_sources_from_file(path: Path) -> tuple[str, dict[str, str]]:
    """Read a suite file and every file it ``$ref``s, keyed by path relative to its folder.

    The engine's reader (``read_suite_sources``) does the reading, with its size cap, UTF-8 and
    regular-file checks, and parses the suite: it raises ``SuiteInvalid`` with every error. The
    parse is kept for the caller's own ``suite_parse`` of the same sources.
    """
    read = engine_spec.read_suite_sources(path)
    _remember((read.entry, engine_spec.suite_fingerprint(read.sources)), read.suite)
    return read.entry, read.sources


_PARSED: dict[tuple[str, str], SuiteSpec] = {}
_PARSED_KEEP = 16


def suite_parse(*, entry: str, sources: dict[str, str]) -> SuiteSpec:
    """Parse stored sources; raises ``SuiteInvalid`` with every error.

    Parsing is pure, so the result is kept per content hash: a worker running many scenarios of
    one suite version parses it once. Callers must not mutate the returned suite.
    """
    key = (entry, engine_spec.suite_fingerprint(sources))
    if key in _PARSED:
        return _PARSED[key]

    def loader(ref: str) -> str:
        if ref not in sources:
            raise FileNotFoundError(ref)
        return sources[ref]

    parsed = engine_spec.parse_suite(sources[entry], filename=entry, loader=loader)
    _remember(key, parsed)
    return parsed


def suite_of(suite: Suite) -> SuiteSpec:
    """The parsed form of a stored suite version, parsed once per process (stored versions
    never change); the sources are only loaded from the database on the first call."""
    key = (f"suite:{suite.pk}", suite.content_hash)
    if key not in _PARSED:
        parsed = suite_parse(entry=suite.entry, sources=suite.sources)
        _remember(key, parsed)
    return _PARSED[key]


def _remember(key: tuple[str, str], parsed: SuiteSpec) -> None:
    if len(_PARSED) >= _PARSED_KEEP:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = parsed


def _parsed_summary(parsed: SuiteSpec) -> dict[str, Any]:
    return {
        "name": parsed.name,
        "version": parsed.version,
        "description": parsed.description,
        "scenarios": [
            {"name": s.name, "code": s.code, "kind": s.kind, "steps": [st.name for st in s.steps]}
            for s in parsed.scenarios
        ],
        "mocks": [m.name for m in parsed.mocks],
    }


def suite_store(*, entry: str, sources: dict[str, str], by: Any) -> tuple[Suite, bool]:
    """Validate and store a suite version. Loading identical content again returns the stored
    version (``created`` False); changed content becomes the next version of that name."""
    parsed = suite_parse(entry=entry, sources=sources)
    content_hash = engine_spec.suite_fingerprint(sources)
    for _ in range(3):
        existing = Suite.objects.filter(name=parsed.name, content_hash=content_hash).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                latest = Suite.objects.filter(name=parsed.name).order_by("-version").first()
                suite = Suite.objects.create(
                    name=parsed.name,
                    version=(latest.version + 1) if latest else 1,
                    description=parsed.description,
                    entry=entry,
                    sources=sources,
                    parsed=_parsed_summary(parsed),
                    content_hash=content_hash,
                    warnings=parsed.warnings,
                    created_by=by if getattr(by, "is_authenticated", False) else None,
                )
                Scenario.objects.bulk_create(
                    Scenario(
                        suite=suite,
                        index=i,
                        name=s.name,
                        code=s.code,
                        kind=s.kind,
                        step_count=len(s.steps),
                    )
                    for i, s in enumerate(parsed.scenarios)
                )
                audit_record(
                    actor=by,
                    action="suite.store",
                    target=str(suite),
                    data={"hash": content_hash, "scenarios": len(parsed.scenarios)},
                )
            return suite, True
        except IntegrityError:
            continue  # another process stored a version at the same moment; look again
    raise RuntimeError(f"could not store suite {parsed.name!r}: concurrent versions")
