"""What an evidence bundle is built from: plain data, gathered once from the database by
``evidence.collect`` and read by the record writers (``evidence.records``), the certificate
(``evidence.pdf``) and the archive (``evidence.archive``).

``summary`` is exactly the ``certification.json`` document (format ``certdash-evidence/1``,
documented in docs/evidence.md). Step-level data is not held here: it is streamed from the
database by ``iter_steps`` so that memory stays flat in the number of steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FORMAT = "certdash-evidence/1"


@dataclass
class BundleSource:
    kind: str  # "certification" or "run"
    summary: dict[str, Any]
    # "suite/<suite name>-v<version>/<file name>" -> file bytes, in a fixed order
    suite_files: dict[str, bytes]
    # The evidence runs' primary keys, in the order they appear in ``summary["runs"]``.
    run_ids: list[int]
    # The one time stamped into the zip entries and the PDF's metadata, so that the same
    # certification always gives the same bytes.
    fixed_time: datetime
    # Failing, errored and unevaluated steps in full, keyed by "<run id>/<scenario index>":
    # the same dicts as ``certification.selectors`` exports for a step.
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Yields (run id, scenario index, step dict) for every step of the evidence runs, in order.
    iter_steps: Callable[[], Iterator[tuple[int, int, dict[str, Any]]]] | None = None
    # Yields every request the partner's sandbox sent to the hosted mocks and the inbox during
    # the evidence runs (run, then arrival order), as ``traffic.jsonl`` records.
    iter_traffic: Callable[[], Iterator[dict[str, Any]]] | None = None
