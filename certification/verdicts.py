"""Latency roll-ups and SLA verdicts of a run, per SLA and endpoint.

The rule, documented in docs/runs.md:

- A latency sample is a successful exchange of a latency probe (status in ``expectStatus``);
  failures and unexpected statuses are errors. Samples are merged per endpoint, never across
  endpoints, so a fast endpoint cannot hide a slow one.
- An SLA with a scope applies to that endpoint, or to the probes of a named flow
  (``on flow:checkout``, probes with ``flow: checkout``); one without applies to each HTTP
  endpoint of the run separately (and to any other origin a probe measured).
- Each (SLA, endpoint) gets one of ``met``, ``missed``, ``insufficient samples`` or
  ``not measured``:

  * latency (``p95<=300ms``): ``missed`` when the endpoint was probed and nothing succeeded,
    or when the measured percentile is over the target. ``met`` only when the samples show,
    with 95 % confidence, that the percentile is within the target: with ``k`` of ``n``
    samples over the target, ``P(Binomial(n, 1 - p) <= k) <= 0.05``. With no sample over the
    target that needs ``n >= ln(0.05) / ln(p)`` samples: 59 for p95, 299 for p99, 2,995 for
    p99.9. Otherwise ``insufficient samples``.
  * availability (``uptime 99.9%``): the success ratio of the endpoint's probe requests.
    ``missed`` when it is below the target; ``met`` when ``P(Binomial(n, 1 - target) <= f)
    <= 0.05`` for ``f`` failures of ``n`` requests (with none failed, 2,995 requests for
    99.9 %, about 3 / (1 - target)); otherwise ``insufficient samples``.
  * anything the run cannot measure (file windows, ack deadlines, replay retention), and an
    SLA whose endpoint no probe reached: ``not measured``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from certification.engine.histogram import Histogram
from partners.sla import ACK, FILE_WINDOW, FLOW_PREFIX, LATENCY, UPTIME, SLATarget, describe

MET, MISSED, INSUFFICIENT, NOT_MEASURED = "met", "missed", "insufficient samples", "not measured"
FAILING_VERDICTS = frozenset({MISSED, INSUFFICIENT})
CONFIDENCE = 0.95
PERCENTILE_METHOD = "nearest rank over a log histogram (0.1 % relative resolution)"

_UNMEASURABLE = {
    "replay": "replay retention is not measured by runs",
}
FILE_WINDOW_DEFAULT_MIN = 60  # file@02:00Z: the file is due within the hour from 02:00


@dataclass
class EndpointRollup:
    """Every probe of one endpoint (or flow) in a run, merged."""

    requests: int = 0
    ok: int = 0
    errors_by_kind: dict[str, int] | None = None
    histogram: Histogram | None = None
    # Timed-out requests by the timeout they had (ms): no latency sample, but a lower bound.
    timeouts: dict[int, int] | None = None
    # The busiest client among the probes merged here (CPU as a share of one core), and whether
    # any probe's client was saturated: its latencies include the client's own queueing.
    client_cpu_percent: float | None = None
    client_wait_percent: float | None = None  # the longest wait for a core (Linux), likewise
    client_saturated: bool = False

    def add(self, latency: Mapping[str, Any]) -> None:
        self.requests += int(latency.get("requests", 0))
        self.ok += int(latency.get("ok", 0))
        kinds = self.errors_by_kind if self.errors_by_kind is not None else {}
        for kind, n in (latency.get("errors_by_kind") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + int(n)
        self.errors_by_kind = kinds
        timed_out = int((latency.get("errors_by_kind") or {}).get("timeout", 0))
        if timed_out and latency.get("timeout_ms"):
            timeouts = self.timeouts if self.timeouts is not None else {}
            limit = int(latency["timeout_ms"])
            timeouts[limit] = timeouts.get(limit, 0) + timed_out
            self.timeouts = timeouts
        cpu = latency.get("client_cpu_percent")
        if cpu is not None:
            self.client_cpu_percent = max(self.client_cpu_percent or 0.0, float(cpu))
        wait = latency.get("client_wait_percent")
        if wait is not None:
            self.client_wait_percent = max(self.client_wait_percent or 0.0, float(wait))
        self.client_saturated = self.client_saturated or bool(latency.get("client_saturated"))
        if latency.get("histogram"):
            merged = self.histogram or Histogram()
            self.histogram = merged.merge(Histogram.from_dict(latency["histogram"]))

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    def to_dict(self) -> dict[str, Any]:
        h = self.histogram if self.histogram is not None and self.histogram.count else None

        def pct(value: float) -> float | None:
            return round(h.percentile(value), 3) if h else None

        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "errors_by_kind": dict(sorted((self.errors_by_kind or {}).items())),
            "success_ratio": round(self.ok / self.requests, 6) if self.requests else None,
            "p50": pct(50),
            "p90": pct(90),
            "p95": pct(95),
            "p99": pct(99),
            "max": round(h.max, 3) if h else None,
            "histogram": (h or Histogram()).to_dict(),
        }


def rollup_by_endpoint(latencies: Iterable[Mapping[str, Any]]) -> dict[str, EndpointRollup]:
    """Merge probe summaries (``LatencySummary`` as stored) per endpoint, and per named flow
    under ``flow:<name>`` keys."""
    rollups: dict[str, EndpointRollup] = {}
    for latency in latencies:
        if not latency or "endpoint" not in latency:
            continue  # not a probe summary of this format
        rollups.setdefault(str(latency["endpoint"]), EndpointRollup()).add(latency)
        if latency.get("flow"):
            rollups.setdefault(FLOW_PREFIX + latency["flow"], EndpointRollup()).add(latency)
    return rollups


def is_flow(scope: str) -> bool:
    return scope.startswith(FLOW_PREFIX)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n may be large)."""
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q
        )  # fmt: skip
        total += math.exp(log_term)
    return min(total, 1.0)


def min_samples(allowed_fraction: float) -> int | None:
    """Fewest samples, none of them over the target, that show a rate of misses below
    ``allowed_fraction`` with 95 % confidence: the smallest ``n`` with (1 - a)^n <= 0.05.
    ``None`` when no number can (a target of 100 %: one bad sample could always come)."""
    if allowed_fraction <= 0.0:
        return None
    if allowed_fraction >= 1.0:
        return 1
    return math.ceil(math.log(1 - CONFIDENCE) / math.log1p(-allowed_fraction) - 1e-9)


_SEARCH_CAP = 10_000_000


def samples_needed(bad: int, n: int, allowed_fraction: float) -> int | None:
    """How many samples would show the target if the share of bad ones stayed ``bad / n``;
    ``None`` when it never could (that share is not below the allowed one, or past 10^7)."""
    if allowed_fraction <= 0.0 or n <= 0:
        return None
    share = bad / n
    if share >= allowed_fraction:
        return None

    def proven_at(size: int) -> bool:
        return binomial_cdf(math.floor(share * size), size, allowed_fraction) <= 1 - CONFIDENCE

    low, high = n, max(n, 1)
    while not proven_at(high):
        low, high = high, high * 2
        if high > _SEARCH_CAP:
            return None
    while low < high:  # the smallest size that is proven, between the last two tried
        middle = (low + high) // 2
        if proven_at(middle):
            high = middle
        else:
            low = middle + 1
    return high


def _proven(bad: int, n: int, allowed_fraction: float) -> bool:
    return (
        n > 0 and allowed_fraction > 0 and binomial_cdf(bad, n, allowed_fraction) <= 1 - CONFIDENCE
    )


def _advice(bad: int, n: int, allowed: float, what: str) -> str:
    more = samples_needed(bad, n, allowed)
    if allowed <= 0:
        return "a 100% target can never be shown by sampling: one more request could fail"
    if more is None:
        return f"at this share of bad {what} no number of {what} would show it"
    return f"with the same share of bad {what}, at least {more:,} {what} would show it"


@dataclass
class Verdict:
    sla: str
    kind: str
    endpoint: str
    target: str
    verdict: str
    measured: float | None = None
    unit: str = ""
    samples: int = 0
    requests: int = 0
    errors: int = 0
    over_target: int | None = None
    min_samples: int | None = None
    rule: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _this(scope: str) -> str:
    return "this flow" if is_flow(scope) else "this endpoint"


def _unprobed(scope: str) -> str:
    if is_flow(scope):
        return f"no latency probe of flow '{scope.removeprefix(FLOW_PREFIX)}' ran in this run"
    return "no latency probe reached this endpoint in this run"


def _errors_text(rollup: EndpointRollup) -> str:
    kinds = rollup.errors_by_kind or {}
    return ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())) or "none"


def _unmeasured(
    target: SLATarget, endpoint: str, *, unit: str, needed: int | None, rule: str
) -> Verdict:
    """The verdict before any sample is looked at: ``not measured``, no probe reached it."""
    return Verdict(
        sla=target.base_name,
        kind=target.kind,
        endpoint=endpoint,
        target=describe(target),
        verdict=NOT_MEASURED,
        unit=unit,
        min_samples=needed,
        rule=rule,
        reason=_unprobed(endpoint),
    )


def _cpu_text(rollup: EndpointRollup) -> str:
    cpu, wait = rollup.client_cpu_percent, rollup.client_wait_percent
    if cpu is None:
        return ""
    waited = f", waiting for a core {wait:g} % of the time" if wait else ""
    return f" (CPU {cpu:g} % of a core{waited})"


def latency_verdict(target: SLATarget, endpoint: str, rollup: EndpointRollup | None) -> Verdict:
    assert target.percentile is not None and target.threshold_ms is not None
    pct = float(target.percentile)
    threshold = target.threshold_ms
    allowed = 1 - pct / 100
    needed = min_samples(allowed)
    below = "<" if target.strict else "<="
    name = target.base_name
    rule = (
        f"{name} of the successful probe samples of {_this(endpoint)} {below} "
        f"{threshold} ms (a timeout at or above the target counts as a sample over it); "
        f"met needs 95% confidence (at least {needed} samples when none is over the target)"
    )
    verdict = _unmeasured(target, endpoint, unit="ms", needed=needed, rule=rule)
    if rollup is None or rollup.requests == 0:
        return verdict
    verdict.reason = ""
    verdict.requests, verdict.errors = rollup.requests, rollup.errors
    # A timeout is no latency sample, but it proves the latency was above its limit: one set
    # at or above the target is a sample over the target (recorded just above the limit).
    censored = sum(n for limit, n in (rollup.timeouts or {}).items() if limit >= threshold)
    samples = Histogram()
    if rollup.histogram is not None:
        samples.merge(rollup.histogram)
    for limit, count in (rollup.timeouts or {}).items():
        if limit >= threshold:
            for _ in range(count):
                samples.record(limit * 1.002 + 0.001)
    n = samples.count
    verdict.samples = n
    if n == 0:
        verdict.verdict = MISSED
        verdict.reason = (
            f"no successful response: all {rollup.requests} requests failed "
            f"({_errors_text(rollup)})"
        )
        return verdict
    measured = samples.percentile_upper(pct)
    over = samples.count_over(threshold, inclusive=target.strict)
    verdict.measured, verdict.over_target = round(measured, 3), over
    late = measured >= threshold if target.strict else measured > threshold
    timed = f"; {censored} timed out, counted over the target" if censored else ""
    if late and rollup.client_saturated and not censored:
        # Measured latency is an upper bound when the client was saturated: a miss is not
        # shown (a met still is). Timeouts set at or above the target prove a miss anyway.
        verdict.verdict = INSUFFICIENT
        verdict.reason = (
            f"{name} {verdict.measured} ms over {n} samples is above {threshold} ms, but the "
            f"client was saturated during the probe{_cpu_text(rollup)}: the latencies include "
            "its own queueing, so this is not a measured miss; probe with fewer concurrent "
            "requests"
        )
    elif late:
        verdict.verdict = MISSED
        verdict.reason = (
            f"{name} {verdict.measured} ms over {n} samples is above {threshold} ms{timed}"
        )
    elif _proven(over, n, allowed):
        verdict.verdict = MET
    else:
        verdict.verdict = INSUFFICIENT
        verdict.reason = (
            f"{n} samples ({over} over the target{timed}) cannot show {name} {below} "
            f"{threshold} ms with 95% confidence; {_advice(over, n, allowed, 'samples')}"
        )
    others = rollup.errors - censored
    if others and verdict.verdict == MET:
        verdict.reason = f"{others} failed requests are not samples ({_errors_text(rollup)})"
    return verdict


def uptime_verdict(target: SLATarget, endpoint: str, rollup: EndpointRollup | None) -> Verdict:
    assert target.uptime_percent is not None
    goal = float(target.uptime_percent)
    allowed = 1 - goal / 100
    needed = min_samples(allowed)
    rule = (
        f"successful share of the probe requests of {_this(endpoint)} >= {goal:g}%; met needs "
        "95% confidence ("
        + (f"at least {needed} requests when none failed" if needed else "never, at 100%")
        + ")"
    )
    verdict = _unmeasured(target, endpoint, unit="%", needed=needed, rule=rule)
    if rollup is None or rollup.requests == 0:
        return verdict
    verdict.reason = ""
    n, failures = rollup.requests, rollup.errors
    verdict.requests = verdict.samples = n
    verdict.errors = verdict.over_target = failures
    verdict.measured = round(100 * rollup.ok / n, 4)
    if rollup.ok / n < goal / 100:
        verdict.verdict = MISSED
        verdict.reason = (
            f"{failures} of {n} requests failed ({_errors_text(rollup)}): "
            f"{verdict.measured}% < {goal:g}%"
        )
    elif _proven(failures, n, allowed):
        verdict.verdict = MET
    else:
        verdict.verdict = INSUFFICIENT
        verdict.reason = (
            f"{n} requests with {failures} failed cannot show {goal:g}% with 95% confidence; "
            f"{_advice(failures, n, allowed, 'requests')}"
        )
    return verdict


def ack_verdict(target: SLATarget, files: list[Mapping[str, Any]]) -> Verdict:
    """``ack<=15m``: from each upload to the acknowledgement a later ``waitForFile`` of its
    scenario found. Met when every one is within the target; missed when one is over it or a
    wait for one ended, with none, after the target had passed."""
    limit = target.threshold_ms or 0

    def over(ms: float) -> bool:
        return ms >= limit if target.strict else ms > limit

    verdict = Verdict(
        sla=target.base_name, kind=target.kind, endpoint="", target=describe(target),
        verdict=NOT_MEASURED, unit="ms",
        rule="every acknowledgement within the target, from the upload to the poll that saw it "
        "(an upper bound, by at most the poll interval); the slowest is shown",
    )  # fmt: skip
    acks = [float(f["ackMs"]) for f in files if "ackMs" in f]
    waits = [float(f["noAckWithinMs"]) for f in files if "noAckWithinMs" in f]
    verdict.samples = len(acks)
    late = [w for w in waits if over(w)]
    if late:
        verdict.verdict, verdict.measured = MISSED, max(late)
        verdict.reason = f"no acknowledgement within {max(late):.0f} ms of an upload"
    elif acks and any(over(a) for a in acks):
        verdict.verdict, verdict.measured = MISSED, max(acks)
    elif acks and waits:
        # Some acknowledgements came in time, but for others the wait ended, with none, before
        # the target: whether those came in time is unknown, so the target is not shown met.
        verdict.verdict, verdict.measured = INSUFFICIENT, max(acks)
        verdict.reason = (
            f"{len(waits)} of {len(acks) + len(waits)} waits for an acknowledgement ended with "
            f"none after {max(waits):.0f} ms, before the target of {limit} ms: give the wait a "
            "timeoutMs beyond it"
        )
    elif acks:
        verdict.verdict, verdict.measured = MET, max(acks)
    elif waits:
        verdict.reason = (
            f"the waits for an acknowledgement ended after {max(waits):.0f} ms, before the "
            f"target of {limit} ms: give waitForFile a timeoutMs beyond it"
        )
    else:
        verdict.reason = "no waitForFile followed an upload in this run"
    return verdict


def file_window_verdict(target: SLATarget, files: list[Mapping[str, Any]]) -> Verdict:
    """``file@02:00Z daily``: the files the suite waited for from the partner (a waitForFile
    with no upload before it in its scenario) were written inside the window (UTC, by their
    modification time; 60 minutes from its start when it gives no end)."""
    from datetime import datetime, timedelta

    start = target.window_start
    assert start is not None
    begin = start.hour * 60 + start.minute
    end_time = target.window_end
    end = end_time.hour * 60 + end_time.minute if end_time else begin + FILE_WINDOW_DEFAULT_MIN
    verdict = Verdict(
        sla=target.base_name, kind=target.kind, endpoint="", target=describe(target),
        verdict=NOT_MEASURED, unit="min",
        rule=f"each delivery written within the window ({describe(target)}); shown: the latest, "
        "in minutes after the window opened",
    )  # fmt: skip
    arrivals = [
        datetime.fromisoformat(f["receivedAt"])
        for f in files
        if f.get("receivedAt") and not f.get("after")
    ]
    verdict.samples = len(arrivals)
    if not arrivals:
        verdict.reason = "no step waited for a delivery from the partner in this run"
        return verdict
    outside: list[str] = []
    latest = 0.0
    for when in arrivals:
        minute = when.hour * 60 + when.minute + when.second / 60
        if target.schedule == "hourly":
            minute = when.minute + when.second / 60
            offset = (minute - begin % 60) % 60
            inside = offset < (end - begin)
        else:
            offset = (minute - begin) % (24 * 60)
            inside = offset < (end - begin) % (24 * 60 or 1)
            if target.schedule == "weekdays":
                day = when - timedelta(minutes=offset)
                inside = inside and day.weekday() < 5
        latest = max(latest, offset)
        if not inside:
            outside.append(when.isoformat().replace("+00:00", "Z"))
    verdict.measured = round(latest, 1)
    if outside:
        verdict.verdict = MISSED
        verdict.reason = "written outside the window: " + ", ".join(outside)
    else:
        verdict.verdict = MET
    return verdict


def sla_verdicts(
    slas: Iterable[tuple[SLATarget, str]],
    *,
    endpoints: Iterable[str],
    rollups: Mapping[str, EndpointRollup],
    files: list[Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    """One verdict per (SLA, endpoint). ``slas`` pairs a target with its scope (an endpoint
    name, or "" for every endpoint); ``endpoints`` are the run's HTTP endpoints; ``files`` the
    file steps' records (``waitForFile``: ``ackMs``, ``noAckWithinMs``, ``receivedAt``)."""
    every = list(dict.fromkeys([*endpoints, *(k for k in rollups if not is_flow(k))]))
    verdicts: list[Verdict] = []
    for target, scope in slas:
        if target.kind == ACK:
            verdicts.append(ack_verdict(target, files or []))
            continue
        if target.kind == FILE_WINDOW:
            verdicts.append(file_window_verdict(target, files or []))
            continue
        if target.kind not in (LATENCY, UPTIME):
            verdicts.append(
                Verdict(
                    sla=target.base_name,
                    kind=target.kind,
                    endpoint=scope,
                    target=describe(target),
                    verdict=NOT_MEASURED,
                    reason=_UNMEASURABLE.get(target.kind, "not measured by runs"),
                )
            )
            continue
        judge = latency_verdict if target.kind == LATENCY else uptime_verdict
        names = [scope] if scope else every
        if not names:
            verdicts.append(judge(target, "", None))
            verdicts[-1].reason = "the partner has no HTTP endpoint in this run"
            continue
        for name in names:
            verdicts.append(judge(target, name, rollups.get(name)))
            if scope and not is_flow(scope) and scope not in every:
                verdicts[-1].reason = (
                    f"this run has no endpoint named '{scope}' (endpoints: "
                    f"{', '.join(every) or 'none'})"
                )
    return verdicts


def sla_label(verdict: Mapping[str, Any]) -> str:
    """``p95 ≤ 300 ms on api``: the target and where it was judged, the scope said once."""
    target = verdict["target"]
    if not verdict.get("endpoint"):
        return target  # judged for the partner as a whole (file windows, ack deadlines)
    where = f" on {verdict['endpoint'].replace(FLOW_PREFIX, 'flow ')}"
    return target if target.endswith(where) else target + where


def failing_reasons(verdicts: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why these verdicts fail a run (``missed`` and ``insufficient samples``)."""
    return [
        f"SLA {sla_label(v)}: {v['verdict']}" + (f" ({v['reason']})" if v.get("reason") else "")
        for v in verdicts
        if v["verdict"] in FAILING_VERDICTS
    ]


def run_evaluate(run: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's per-endpoint latency roll-up and its SLA verdicts, from its stored probes."""
    from certification.models import StepResult

    latencies = StepResult.objects.filter(scenario_run__run=run, latency__isnull=False).values_list(
        "latency", flat=True
    )
    rollups = rollup_by_endpoint(latencies)
    http = [name for name, e in run.endpoints.items() if e.get("kind", "http") == "http"]
    slas = [(sla.target, sla.endpoint) for sla in run.partner.slas.all()]
    files = [
        data
        for data in StepResult.objects.filter(
            scenario_run__run=run, data__has_any_keys=["ackMs", "noAckWithinMs", "receivedAt"]
        ).values_list("data", flat=True)
        if isinstance(data, dict)
    ]
    verdicts = sla_verdicts(slas, endpoints=http, rollups=rollups, files=files)
    latency = {name: rollup.to_dict() for name, rollup in rollups.items()}
    return latency, [v.to_dict() for v in verdicts]
