"""Parse the registry's SLA text (``"p95<=300ms, uptime 99.9%"``) into structured targets.

Grammar, one target per comma-separated fragment (case-insensitive, spaces optional):

- latency     ``p95<=300ms``, ``p99 < 0.8s``, ``p99.9<=1200ms``
- uptime      ``uptime 99.9%``, ``uptime>=99.95%``
- file window ``file@02:00Z daily``, ``file@02:00-03:00Z weekdays`` (UTC)
- ack         ``ack<=15m``, ``ack<=90s``, ``ack<=2h``
- replay      ``replay 30d``

A latency or uptime target may name the endpoint it applies to: ``p95<=300ms on orders``
(its name is then ``p95@orders``), or a named flow of latency probes: ``p95<=800ms on
flow:checkout``. Without one it applies to each endpoint separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import time
from decimal import Decimal

LATENCY, UPTIME, FILE_WINDOW, ACK, REPLAY = "latency", "uptime", "file_window", "ack", "replay"
SCHEDULES = ("hourly", "daily", "weekdays", "weekly")

_LATENCY = re.compile(
    r"^p(?P<pct>\d{1,2}(?:\.\d{1,2})?)\s*(?P<op><=|<|≤)\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)$"
)
_UPTIME = re.compile(r"^uptime\s*(?:>=|≥)?\s*(?P<num>\d{1,3}(?:\.\d{1,4})?)\s*%$")
_FILE = re.compile(
    r"^file\s*@\s*(?P<start>\d{2}:\d{2})(?:\s*-\s*(?P<end>\d{2}:\d{2}))?\s*z\s+(?P<sched>[a-z]+)$"
)
_ACK = re.compile(r"^ack\s*(?P<op><=|<|≤)\s*(?P<num>\d+)\s*(?P<unit>ms|s|m|h)$")
_REPLAY = re.compile(r"^replay\s*(?P<num>\d+)\s*d$")
_SCOPE = re.compile(r"^(?P<target>.*?)\s+on\s+(?P<endpoint>(?:flow:)?[a-z0-9][a-z0-9_\-]{0,39})$")
FLOW_PREFIX = "flow:"
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


class SLAParseError(ValueError):
    def __init__(self, fragment: str, message: str) -> None:
        super().__init__(f'cannot parse SLA "{fragment}": {message}')
        self.fragment = fragment


@dataclass(frozen=True)
class SLATarget:
    kind: str
    name: str
    text: str
    percentile: Decimal | None = None
    threshold_ms: int | None = None
    uptime_percent: Decimal | None = None
    window_start: time | None = None
    window_end: time | None = None
    schedule: str = ""
    retention_days: int | None = None
    strict: bool = False  # "<" rather than "<=": the target itself is a miss
    endpoint: str = ""  # the endpoint (or "flow:<name>") it applies to; "" for each endpoint

    @property
    def base_name(self) -> str:
        """``p95`` for ``p95@orders``."""
        return self.name.partition("@")[0]


def _clock(fragment: str, value: str) -> time:
    hours, minutes = (int(part) for part in value.split(":"))
    if hours > 23 or minutes > 59:
        raise SLAParseError(fragment, f"{value} is not a time of day (00:00 to 23:59)")
    return time(hours, minutes)


def _parse_scoped(fragment: str) -> SLATarget:
    text = fragment.strip()
    scoped = _SCOPE.match(text.lower())
    if scoped is None:
        return _parse_one(text)
    target = _parse_one(text[: len(scoped["target"])])
    if target.kind not in (LATENCY, UPTIME):
        raise SLAParseError(text, "only latency and uptime targets apply to one endpoint")
    endpoint = scoped["endpoint"]
    return replace(target, name=f"{target.name}@{endpoint}", endpoint=endpoint, text=text)


def _parse_one(fragment: str) -> SLATarget:
    text = fragment.strip()
    lowered = text.lower()
    if m := _LATENCY.match(lowered):
        pct = Decimal(m["pct"])
        if not 0 < pct < 100:
            raise SLAParseError(text, "the percentile must be between 0 and 100")
        threshold = Decimal(m["num"]) * _UNIT_MS[m["unit"]]
        if threshold != threshold.to_integral_value() or threshold <= 0:
            raise SLAParseError(text, "the latency target must be a positive whole number of ms")
        name = f"p{pct.normalize():f}"
        return SLATarget(
            LATENCY, name, text, percentile=pct, threshold_ms=int(threshold), strict=m["op"] == "<"
        )
    if m := _UPTIME.match(lowered):
        pct = Decimal(m["num"])
        if not 0 < pct <= 100:
            raise SLAParseError(text, "uptime must be a percentage above 0 and at most 100")
        return SLATarget(UPTIME, "uptime", text, uptime_percent=pct)
    if m := _FILE.match(lowered):
        if m["sched"] not in SCHEDULES:
            raise SLAParseError(text, f"schedule must be one of {', '.join(SCHEDULES)}")
        start = _clock(text, m["start"])
        end = _clock(text, m["end"]) if m["end"] else None
        return SLATarget(
            FILE_WINDOW, "file", text, window_start=start, window_end=end, schedule=m["sched"]
        )
    if m := _ACK.match(lowered):
        threshold = int(m["num"]) * _UNIT_MS[m["unit"]]
        if threshold <= 0:
            raise SLAParseError(text, "the acknowledgement deadline must be positive")
        return SLATarget(ACK, "ack", text, threshold_ms=threshold, strict=m["op"] == "<")
    if m := _REPLAY.match(lowered):
        days = int(m["num"])
        if days <= 0:
            raise SLAParseError(text, "the replay retention must be at least 1 day")
        return SLATarget(REPLAY, "replay", text, retention_days=days)
    raise SLAParseError(
        text,
        "expected a latency target (p95<=300ms), uptime (uptime 99.9%), a file window "
        "(file@02:00Z daily), an ack deadline (ack<=15m) or replay retention (replay 30d)",
    )


def parse_sla_text(text: str) -> list[SLATarget]:
    """Parse a whole registry cell; raises SLAParseError naming the first bad fragment."""
    targets: list[SLATarget] = []
    seen: set[str] = set()
    for fragment in text.split(","):
        if not fragment.strip():
            continue
        target = _parse_scoped(fragment)
        if target.name in seen:
            raise SLAParseError(fragment.strip(), f"a second '{target.name}' target in one row")
        seen.add(target.name)
        targets.append(target)
    return targets


def describe(target: SLATarget) -> str:
    """A human summary, e.g. ``p95 ≤ 300 ms`` or ``file daily 02:00–03:00 UTC``."""
    below = "<" if target.strict else "≤"
    scope = f" on {target.endpoint.replace(FLOW_PREFIX, 'flow ')}" if target.endpoint else ""
    if target.kind == LATENCY:
        return f"{target.base_name} {below} {target.threshold_ms} ms{scope}"
    if target.kind == UPTIME:
        return f"uptime ≥ {target.uptime_percent.normalize():f}%{scope}"
    if target.kind == FILE_WINDOW:
        window = f"{target.window_start:%H:%M}"
        if target.window_end:
            window += f"–{target.window_end:%H:%M}"
        return f"file {target.schedule} {window} UTC"
    if target.kind == ACK:
        return f"ack {below} {_human_ms(target.threshold_ms or 0)}"
    return f"replay {target.retention_days} d"


def _human_ms(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"
