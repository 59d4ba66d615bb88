"""The partners app depends on no certification app code: only on the pure engine library
(``certification.engine``), which imports nothing of Django. Certification builds on partners,
never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

PARTNERS = Path(__file__).resolve().parents[2] / "partners"


def _certification_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")
            if top[0] == "certification" and top[:2] != ["certification", "engine"]:
                found.append(name)
    return found


def test_the_checker_flags_an_app_import() -> None:
    assert _certification_imports("from certification.models import Run") == [
        "certification.models"
    ]
    assert _certification_imports("import certification.services") == ["certification.services"]
    assert _certification_imports("from certification.engine.masking import MASK") == []


def test_partners_imports_no_certification_app_code() -> None:
    offenders = {
        str(path.relative_to(PARTNERS)): found
        for path in PARTNERS.rglob("*.py")
        if "migrations" not in path.parts
        and (found := _certification_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
