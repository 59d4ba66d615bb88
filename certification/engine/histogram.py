"""A mergeable latency histogram with bounded relative error.

Values (milliseconds) fall into log-spaced buckets ``floor(log(v) / log(1 + RESOLUTION))``, so
any percentile read back is within 0.1 % of a true sample value, whatever the range. Counts per
bucket add up, so histograms from many scenarios, probes and workers merge exactly; a run keeps a
few hundred integers instead of millions of samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RESOLUTION = 0.001
_LOG_BASE = math.log1p(RESOLUTION)
_FLOOR_MS = 0.001  # values below 1 µs share bucket 0's lower edge
SCHEME = "log-0.001-ms"


def _bucket(value_ms: float) -> int:
    return math.floor(math.log(max(value_ms, _FLOOR_MS) / _FLOOR_MS) / _LOG_BASE)


def _bucket_value(index: int) -> float:
    """The midpoint of a bucket, in ms."""
    low = _FLOOR_MS * math.exp(index * _LOG_BASE)
    return low * (1 + RESOLUTION / 2)


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    def record(self, value_ms: float) -> None:
        index = _bucket(value_ms)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.total += value_ms
        self.min = min(self.min, value_ms)
        self.max = max(self.max, value_ms)

    def record_many(self, values: Iterable[float]) -> None:
        for value in values:
            self.record(value)

    def merge(self, other: Histogram) -> Histogram:
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def percentile(self, pct: float) -> float:
        """The value below which ``pct`` percent of samples fall (nearest-rank), in ms."""
        if not self.count:
            return 0.0
        if pct >= 100:
            return self.max
        rank = max(1, math.ceil(self.count * pct / 100))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(max(_bucket_value(index), self.min), self.max)
        return self.max

    def _upper(self, index: int) -> float:
        """The largest value bucket ``index`` may hold (its upper edge, at most the maximum)."""
        return min(_FLOOR_MS * math.exp((index + 1) * _LOG_BASE), self.max)

    def percentile_upper(self, pct: float) -> float:
        """:meth:`percentile` read at the upper edge of its bucket: a value the true percentile
        is not above, for comparing with a target without leaning towards "met"."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * min(pct, 100) / 100))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return self._upper(index)
        return self.max

    def count_over(self, threshold_ms: float, *, inclusive: bool = False) -> int:
        """How many samples may exceed ``threshold_ms`` (or reach it, with ``inclusive``):
        a bucket counts when its upper edge does, so a sample within the resolution above the
        threshold is never missed (read the same way as :meth:`percentile_upper`)."""
        over = 0
        for index, n in self.counts.items():
            value = self._upper(index)
            if value > threshold_ms or (inclusive and value >= threshold_ms):
                over += n
        return over

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "count": self.count,
            "total": round(self.total, 6),
            "min": None if self.count == 0 else round(self.min, 6),
            "max": round(self.max, 6),
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        if data.get("scheme") != SCHEME:
            raise ValueError(f"unknown histogram scheme {data.get('scheme')!r}")
        return cls(
            counts={int(k): int(v) for k, v in data.get("counts", {}).items()},
            count=int(data.get("count", 0)),
            total=float(data.get("total", 0.0)),
            min=math.inf if data.get("min") is None else float(data["min"]),
            max=float(data.get("max", 0.0)),
        )
