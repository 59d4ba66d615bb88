"""Latency roll-ups and SLA verdicts of a run."""

from __future__ import annotations

from typing import Any

from certification.engine.histogram import Histogram
from certification.models import (
    Run,
    StepResult,
)


def _latency_rollup(run: Run) -> dict[str, Any]:
    merged = Histogram()
    for latency in StepResult.objects.filter(
        scenario_run__run=run, latency__isnull=False
    ).values_list("latency", flat=True):
        if latency and latency.get("histogram"):
            merged.merge(Histogram.from_dict(latency["histogram"]))
    if not merged.count:
        return {}
    return {
        "requests": merged.count,
        "p50": round(merged.percentile(50), 3),
        "p90": round(merged.percentile(90), 3),
        "p95": round(merged.percentile(95), 3),
        "p99": round(merged.percentile(99), 3),
        "max": round(merged.max, 3),
        "histogram": merged.to_dict(),
    }


def _sla_verdicts(run: Run, merged: Histogram | None) -> list[dict[str, Any]]:
    verdicts = []
    for sla in run.partner.slas.filter(kind="latency"):
        if merged is None or not merged.count:
            verdicts.append(
                {
                    "sla": sla.name,
                    "target": sla.summary,
                    "target_ms": sla.threshold_ms,
                    "measured_ms": None,
                    "samples": 0,
                    "verdict": "no data",
                }
            )
            continue
        measured = round(merged.percentile(float(sla.percentile)), 3)
        met = measured < sla.threshold_ms if sla.strict else measured <= sla.threshold_ms
        verdicts.append(
            {
                "sla": sla.name,
                "target_ms": sla.threshold_ms,
                "measured_ms": measured,
                "samples": merged.count,
                "target": sla.summary,
                "verdict": "met" if met else "missed",
            }
        )
    return verdicts
