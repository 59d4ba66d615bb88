"""The engine is plain Python: no Django or Celery, so it can run outside the product."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "certification" / "engine"
ENGINE_PACKAGE = "certification.engine"
# Top-level packages the engine must not import at all; of the product's own packages, only
# certification.engine itself may be imported.
FORBIDDEN = ("django", "celery", "kombu", "certification", "partners", "evidence", "config")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute modules (or module attributes) an import statement names.

    A relative import is resolved against the importing module's package, as Python does;
    one that climbs above the top-level package is returned as ``"<beyond top level>"``.
    """
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        if node.level - 1 >= len(package):
            return ["<beyond top level>"]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    # "from x import y" may import the submodule x.y: check each name as one.
    return [f"{base}.{alias.name}" for alias in node.names]


def _is_forbidden(target: str) -> bool:
    if target == ENGINE_PACKAGE or target.startswith(ENGINE_PACKAGE + "."):
        return False
    return target.split(".")[0] in FORBIDDEN or target == "<beyond top level>"


def offending_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Imports in ``source`` (the code of ``module``) that reach outside the engine."""
    offenders = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            offenders += [
                f"line {node.lineno}: {target}"
                for target in _targets(node, module, is_package)
                if _is_forbidden(target)
            ]
    return offenders


def test_no_engine_module_imports_django_celery_or_the_apps() -> None:
    paths = sorted(ENGINE.rglob("*.py"))
    assert ENGINE / "masking.py" in paths and ENGINE / "transport.py" in paths  # scans something
    offenders = {
        f"{path.relative_to(ROOT)}: {offender}"
        for path in paths
        for offender in offending_imports(
            path.read_text(), _module_name(path), is_package=path.name == "__init__.py"
        )
    }
    assert not offenders


@pytest.mark.parametrize(
    "source",
    [
        "from .. import services\n",
        "from ..models import Run\n",
        "from ..engine import spec\nfrom ..selectors import latest_run\n",
        "from ... import settings\n",
        "from .... import anything\n",
        "def f():\n    from ..tasks import run_scenario\n",
    ],
)
def test_checker_flags_relative_imports_that_leave_the_engine(source: str) -> None:
    assert offending_imports(source, "certification.engine.runner")


@pytest.mark.parametrize(
    "source",
    [
        "import django\n",
        "from django.db import models\n",
        "import celery.app\n",
        "from certification import services\n",
        "from certification.models import Run\n",
        "import partners.access\n",
        "from evidence import audit\n",
    ],
)
def test_checker_flags_absolute_imports_of_django_celery_and_the_apps(source: str) -> None:
    assert offending_imports(source, "certification.engine.runner")


@pytest.mark.parametrize(
    "source",
    [
        "from . import spec\n",
        "from .masking import Masker\n",
        "from ..engine import masking\n",
        "from certification.engine.model import Failure\n",
        "from certification import engine\n",
        "import asyncio, json\nfrom collections.abc import Iterable\n",
    ],
)
def test_checker_allows_imports_within_the_engine_and_the_standard_library(source: str) -> None:
    assert offending_imports(source, "certification.engine.runner") == []


def test_checker_resolves_relative_imports_of_a_package_init_against_the_package() -> None:
    # In certification/engine/__init__.py "." is certification.engine itself.
    assert offending_imports("from . import spec\n", ENGINE_PACKAGE, is_package=True) == []
    assert offending_imports("from .. import services\n", ENGINE_PACKAGE, is_package=True)


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
