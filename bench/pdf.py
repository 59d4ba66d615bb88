"""Certificate benchmark: prints figures, asserts nothing.

Renders ``certificate.pdf`` (``evidence.pdf.render_certificate``) for synthetic bundles
(``tests/evidence/pdf_fixtures.py``) of 100, 1,000 and 10,000 steps (10 / 100 / 500 scenarios,
a few failing, step dicts with ~1.2 KB bodies, results.jsonl written to a temporary file and
attached from its path), and a worst case where every step of 500 scenarios failed. Each size
runs in a fresh process, so that its peak RSS is its own; the figures are the render time
(charts, template, layout, PDF with attachments; not the Python and Django start-up), peak RSS
of the process, peak Python heap during the render (tracemalloc, second run), page count and
PDF size.

Targets: 1,000 steps <= 3 s and 10,000 steps <= 10 s on one core; memory flat in steps.

Run: .venv/bin/python bench/pdf.py
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {
    "100 steps": {"scenarios": 10, "steps_per_scenario": 10, "failing_scenarios": 2},
    "1,000 steps": {"scenarios": 100, "steps_per_scenario": 10, "failing_scenarios": 4},
    "10,000 steps": {"scenarios": 500, "steps_per_scenario": 20, "failing_scenarios": 6},
    "10,000 steps, 100 scenarios": {
        "scenarios": 100,
        "steps_per_scenario": 100,
        "failing_scenarios": 4,
    },
    "10,000 steps, all failing": {
        "scenarios": 500,
        "steps_per_scenario": 20,
        "failing_scenarios": 500,
        "failing_steps_per_scenario": 20,
    },
}


def _one(case: str) -> dict[str, object]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("weasyprint").setLevel(logging.WARNING)

    from evidence.pdf import render_certificate
    from tests.evidence.pdf_fixtures import Shape, attachments_for, build_source, write_results

    source = build_source(Shape(**CASES[case]))  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        results = write_results(source, Path(tmp) / "results.jsonl")
        attachments = attachments_for(source, results)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = io.BytesIO()
        started = time.perf_counter()
        cpu = time.process_time()
        render_certificate(source, attachments=attachments, out=out)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        render_certificate(source, attachments=attachments, out=io.BytesIO())
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        import pikepdf

        with pikepdf.open(io.BytesIO(out.getvalue())) as pdf:
            pages = len(pdf.pages)
        return {
            "case": case,
            "steps": sum(s["steps"] for s in source.summary["scenarios"]),
            "scenarios": len(source.summary["scenarios"]),
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "rss_before_mb": round(before / 1024, 1),
            "peak_rss_mb": round(peak_rss / 1024, 1),
            "heap_peak_mb": round(heap_peak / 2**20, 1),
            "pages": pages,
            "pdf_kb": round(len(out.getvalue()) / 1024),
            "results_kb": round(results.stat().st_size / 1024),
        }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(_one(sys.argv[2])))
        return
    print(
        f"{'case':<28}{'steps':>7}{'scen.':>6}{'time s':>8}{'cpu s':>7}{'peak RSS MB':>13}"
        f"{'heap MB':>9}{'pages':>7}{'PDF KB':>8}{'results KB':>12}"
    )
    for case in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", case],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{r['case']:<28}{r['steps']:>7,}{r['scenarios']:>6}{r['seconds']:>8}"
            f"{r['cpu_seconds']:>7}{r['peak_rss_mb']:>13}{r['heap_peak_mb']:>9}{r['pages']:>7}"
            f"{r['pdf_kb']:>8,}{r['results_kb']:>12,}"
        )


if __name__ == "__main__":
    main()
