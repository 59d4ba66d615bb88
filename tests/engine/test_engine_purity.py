"""The engine is plain Python: no Django or Celery, so it can run outside the product."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "certification" / "engine"
FORBIDDEN = ("django", "celery", "kombu", "certification.models", "partners", "evidence")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_engine_module_imports_django_celery_or_the_apps() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in ENGINE.glob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in {f.split(".")[0] for f in FORBIDDEN if "." not in f}
        or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not offenders


def test_engine_runs_a_suite_in_a_process_without_django() -> None:
    code = (
        "import asyncio, sys\n"
        "from certification.engine.spec import parse_suite\n"
        "from certification.engine.runner import run_suite\n"
        "from certification.engine.model import RunContext\n"
        "from certification.engine.netpolicy import AddressPolicy\n"
        "s = parse_suite('name: x\\ntests:\\n  - name: a\\n    steps:\\n"
        "      - action: {type: wait, ms: 1}\\n', filename='x.yaml')\n"
        "(o,) = asyncio.run(run_suite(s, RunContext(endpoints={}), policy=AddressPolicy()))\n"
        "assert o.status == 'passed', o\n"
        "assert not any(m.split('.')[0] in ('django', 'celery') for m in sys.modules), 'loaded'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ENGINE.parents[1], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
