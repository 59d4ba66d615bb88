"""The engine's data: a parsed suite going in, results coming out.

Plain dataclasses, no Django: ``spec.parse_suite`` builds the input side, ``runner`` produces the
output side, and the Django app persists both. Everything here is JSON-friendly through
``to_dict`` so results can be stored, exported and compared.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


class _Missing:
    """A sentinel for "no value here" (distinct from an explicit null). Copies are itself, so
    ``value is MISSING`` survives ``dataclasses.asdict`` and ``copy.deepcopy``."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Missing:
        return self

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

OPERATORS = (
    "eq", "neq", "gt", "gte", "lt", "lte", "contains", "notContains", "exists", "notExists",
    "matches", "in", "length", "type", "jsonSchema",
)  # fmt: skip
SCENARIO_KINDS = ("main", "alt", "exception", "cross")
ACTION_TYPES = (
    "httpRequest", "dbQuery", "wait", "latencyProbe", "waitForRequest", "webhook",
    "sftpUpload", "waitForFile", "sftpList", "x12Send", "x12Receive",
)  # fmt: skip
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BodyKind = Literal["json", "form", "raw"]
# "unevaluated": a check the engine could not evaluate (e.g. a ``match`` group before captured
# traffic exists). Never counted as passed; shown amber.
StepStatus = Literal["passed", "failed", "skipped", "error", "unevaluated"]


@dataclass(frozen=True)
class Pos:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ----------------------------------------------------------------------------- input side


@dataclass
class Assertion:
    path: str
    operator: str
    value: Any = MISSING
    pos: Pos | None = None


@dataclass
class CountCheck:
    operator: str
    value: Any
    pos: Pos | None = None


@dataclass
class AssertionGroup:
    """``assertions`` without ``match`` apply to the step's own response; with ``match`` they
    apply to captured traffic (hosted mocks) and are evaluated once that exists."""

    assertions: list[Assertion] = field(default_factory=list)
    match: dict[str, Any] | None = None
    count: CountCheck | None = None
    pos: Pos | None = None


@dataclass
class HttpRequest:
    method: str
    url: str
    headers: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = MISSING
    body_kind: BodyKind = "json"
    timeout_ms: int | None = None
    follow_redirects: bool = True
    use_auth: bool = True  # ``auth: none`` sends it without the endpoint's credentials


@dataclass
class DbQuery:
    database: str
    query: str
    params: list[Any] = field(default_factory=list)


@dataclass
class Wait:
    ms: int


@dataclass
class LatencyProbe:
    request: HttpRequest
    requests: int
    concurrency: int | None = None  # closed model: N workers back to back
    rate: float | None = None  # open model: requests per second on a fixed schedule
    expect_status: list[int] = field(default_factory=lambda: [200])
    flow: str = ""  # a named flow SLAs can apply to, besides the endpoint
    processes: int = 1  # client processes the requests are spread over


@dataclass
class WaitForRequest:
    """Wait until the partner's sandbox sends a request that ``match`` selects (to a hosted
    mock or the webhook inbox), or ``timeout_ms`` passes."""

    match: dict[str, Any]
    timeout_ms: int = 30_000
    interval_ms: int = 250


@dataclass
class WebhookSend:
    """Sign an event with the partner's webhook profile and deliver it to ``url``, retrying per
    the ``webhook.delivery`` retry policy. ``replay`` sends the scenario's previous webhook
    event again (same id and body); ``tamper`` changes the body after signing; ``stale`` signs
    with a timestamp older than the secret's window (negative tests)."""

    url: str
    body: Any = MISSING
    event_id: str | None = None
    secret: str | None = None  # which webhook secret (its inbox name) signs; default: the only one
    headers: dict[str, Any] = field(default_factory=dict)
    replay: bool = False
    tamper: bool = False
    stale: bool = False
    max_attempts: int | None = None
    timeout_ms: int | None = None


@dataclass
class SftpUpload:
    """Upload a file to an SFTP endpoint's directory, atomically (a temporary name, then
    renamed): ``content`` as given, or a CSV built from ``csv`` (``header`` + ``rows``); with
    ``sha256`` a sidecar ``<name>.sha256``, with ``manifest`` a ``<name>.manifest.json``
    holding the record count and the sums of the numeric columns (the control totals)."""

    endpoint: str
    name: str = ""  # empty: made from ``flow`` (below)
    directory: str = "inbox"
    content: Any = MISSING
    csv: dict[str, Any] | None = None
    sha256: bool | str = False  # a string: that digest in the sidecar (a negative test)
    manifest: bool | dict[str, Any] = False
    rename: bool = True  # False: left under its temporary name (a truncated upload)
    pgp: bool | None = None  # None: encrypted when the endpoint has the partner's PGP key
    # Without ``name``: <prefix>_<flow>_<YYYYMMDDThhmmssZ>_<sequence>.<ext>, the sequence from
    # the partner's counter for ``flow``, fixed by ``sequence`` or reused with ``repeat``.
    flow: str | None = None
    prefix: str | None = None  # default: the partner's name, lower case, letters and digits
    ext: str | None = None  # default: csv for a csv upload, else txt
    sequence: int | None = None
    repeat: bool = False


@dataclass
class WaitForFile:
    """Wait until a file whose name matches ``pattern`` (a glob) appears in a directory."""

    endpoint: str
    pattern: str
    directory: str = "outbox"
    timeout_ms: int = 60_000
    interval_ms: int = 500


@dataclass
class SftpList:
    endpoint: str
    directory: str = "inbox"
    pattern: str = "*"  # a glob the names must match


@dataclass
class X12Send:
    """Send an X12 interchange to an AS2 endpoint (S/MIME as the endpoint says, MDN
    requested) or drop it on an SFTP one. The set's body is ``order`` (an 850 built from
    ``{po, date, lines}``) or ``segments``; the envelopes' control numbers come from the
    partner's counters, unless ``control`` fixes them or ``repeat`` reuses the previous send's
    (a duplicate-interchange test)."""

    endpoint: str
    set_id: str = "850"
    order: Any = MISSING
    segments: Any = MISSING
    control: dict[str, int] | None = None  # {interchange, group, set}
    repeat: bool = False
    directory: str = "inbox"  # SFTP only
    name: str | None = None  # SFTP only; default <partner>_<set>_<time>_<ISA13>.x12
    timeout_ms: int = 60_000  # an asynchronous MDN's wait


@dataclass
class X12Receive:
    """Wait for the partner's interchange holding transaction set ``set_id``: posted to our
    AS2 URL (an AS2 endpoint) or dropped in a directory (SFTP). A 997 must accept what this
    scenario last sent unless ``expect`` says ``rejected`` (or ``any``)."""

    endpoint: str
    set_id: str = "997"
    expect: str = "accepted"  # accepted | rejected | any (997s only)
    timeout_ms: int = 60_000
    interval_ms: int = 500
    directory: str = "outbox"  # SFTP only
    pattern: str = "*"  # SFTP only


Action = (
    HttpRequest | DbQuery | Wait | LatencyProbe | WaitForRequest | WebhookSend | SftpUpload
    | WaitForFile | SftpList | X12Send | X12Receive
)  # fmt: skip


@dataclass
class Until:
    path: str
    operator: str
    value: Any = MISSING
    timeout_ms: int = 30_000
    interval_ms: int = 1_000


@dataclass
class Step:
    action: Action
    name: str = ""
    groups: list[AssertionGroup] = field(default_factory=list)
    extract: dict[str, str] = field(default_factory=dict)
    until: Until | None = None
    continue_on_failure: bool = False
    settle_ms: int | None = None  # how long after the action captured traffic may still arrive
    pos: Pos | None = None


@dataclass
class Scenario:
    name: str
    steps: list[Step]
    code: str = ""
    kind: str = "main"
    pos: Pos | None = None


@dataclass
class Mock:
    name: str
    target: str
    path: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = MISSING
    delay_ms: int = 0
    body_contains: str | None = None
    body_matches: str | None = None
    pos: Pos | None = None


@dataclass
class Suite:
    name: str
    scenarios: list[Scenario]
    description: str = ""
    version: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    mocks: list[Mock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- context


@dataclass
class EndpointConfig:
    """A partner endpoint as the transport needs it. ``secrets`` are plain text here and must
    never be written anywhere; the masker replaces them in everything recorded."""

    name: str
    base_url: str
    auth_kind: str = "none"
    auth_config: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    kind: str = "http"  # http | postgresql | sftp | as2
    writable: bool = False


@dataclass(frozen=True)
class WebhookSigner:
    """A webhook secret of the partner as the engine signs with it; ``secret`` never stored."""

    name: str
    profile: str
    secret: str
    window_s: int = 600


TrafficSource = Callable[[str, str], Awaitable[tuple[list[dict[str, Any]], int]]]


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, which containers and ``taskset``
    narrow, where the platform has one; else the machine's CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class RunContext:
    endpoints: dict[str, EndpointConfig]
    default_endpoint: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    partner: dict[str, Any] = field(default_factory=dict)  # {{partner.id}}, {{partner.name}}
    sla: dict[str, Any] = field(default_factory=dict)  # {{sla.p95}} -> 300
    secrets: dict[str, str] = field(default_factory=dict)  # {{secret.<name>}}
    run_id: str = ""  # seeds Idempotency-Key headers
    body_capture_bytes: int = 64 * 1024
    max_body_bytes: int = 10 * 1024 * 1024
    request_timeout_ms: int = 30_000
    # A latency probe whose client process was busier than this share of a core says that its
    # percentiles include the client's own queueing (PROBE_CLIENT_CPU_LIMIT_PERCENT).
    probe_cpu_limit_percent: float = 80.0
    # The most processes one latency probe may be sent from (PROBE_MAX_PROCESSES).
    probe_max_processes: int = field(default_factory=lambda: usable_cores())
    max_redirects: int = 5
    # Endpoints whose stored credentials were not loaded (pointed at another origin for this
    # run): their {{secret.<name>.*}} are undefined, and the error says why.
    withheld: list[str] = field(default_factory=list)
    # Captured traffic of this run: ``traffic(since, until)`` (ISO 8601 UTC) returns the
    # records received in that window and how many the run has received in all. None: no
    # recorder (``match`` groups are then not evaluated).
    traffic: TrafficSource | None = None
    traffic_settle_ms: int = 500
    webhooks: dict[str, WebhookSigner] = field(default_factory=dict)  # by inbox name
    # The retry-policy registry by flow (``webhook.delivery``): (max attempts, cap ms, jitter).
    retry_rules: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # ``control_numbers(sets)``: ISA13, GS06 and the first ST02 of a new interchange, from the
    # partner's counters (never repeated). None: only fixed control numbers can be sent.
    control_numbers: Callable[[int], Awaitable[tuple[int, int, int]]] | None = None
    # ``file_sequence(flow)``: the next sequence of the partner's batch files of ``flow``, from
    # the product's database like the control numbers.
    file_sequence: Callable[[str], Awaitable[int]] | None = None
    # Where the partner posts AS2 messages and asynchronous MDNs to us (Receipt-Delivery-Option).
    as2_url: str = ""


# ----------------------------------------------------------------------------- output side


@dataclass
class Timings:
    """Milliseconds, from a monotonic clock. ``None`` when the phase did not happen (no TLS on
    http, a reused connection has no connect)."""

    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None


@dataclass
class Capture:
    """One side of an exchange as recorded: body truncated to the capture cap, with the full
    body's size and sha256; secrets already masked."""

    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    body_size: int = 0
    body_sha256: str = ""
    truncated: bool = False


@dataclass
class RequestRecord(Capture):
    """The request as it went on the wire: the final hop's method, URL and headers (the
    endpoint's auth included), after redirects."""

    method: str = ""
    url: str = ""


@dataclass
class RedirectHop:
    """One redirect followed: the URL that was requested and the status it answered with."""

    status: int
    url: str


@dataclass
class ResponseRecord(Capture):
    status: int | None = None
    redirects: list[RedirectHop] = field(default_factory=list)


@dataclass
class Failure:
    """Why a step could not complete. ``kind`` is one of: timeout, too_large, connection_reset,
    tls_error, refused, dns, blocked_address, redirect_limit, bad_url, undefined_variable, template,
    invalid_response, db_error, no_success (a latency probe none of whose requests succeeded),
    error."""

    kind: str
    message: str


@dataclass
class AssertionResult:
    path: str
    operator: str
    expected: Any
    actual: Any
    passed: bool
    message: str = ""
    evaluated: bool = True  # False: could not be checked; then ``passed`` is False too


@dataclass
class LatencySummary:
    """What a latency probe measured. Only successful exchanges (a response whose status is
    in ``expectStatus``) are latency samples; everything else is an error, counted by kind
    (``refused``, ``timeout``, ``status 404`` ...) and never part of the percentiles, which
    are ``None`` when no request succeeded."""

    endpoint: str  # the endpoint name, or the URL's origin when no endpoint matched
    requests: int
    ok: int
    errors: int
    success_ratio: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    wall_ms: float
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # every status received, ok or not
    histogram: dict[str, Any] = field(default_factory=dict)  # successful samples only
    flow: str = ""
    timeout_ms: int = 0  # each request's deadline: a timed-out one took longer than this
    client_lag_ms: float = 0.0  # open model: how far behind its schedule the client fell
    # CPU time of the event loop that sent the probe, over its wall time, as a share of one
    # core: near 100 %, the client's own queueing adds to every measured latency.
    client_cpu_percent: float | None = None
    # Linux: the share of the wall time that event loop was ready to run but waited for a core.
    client_wait_percent: float | None = None
    # client_cpu_percent + client_wait_percent reached RunContext.probe_cpu_limit_percent
    client_saturated: bool = False
    client_processes: int = 1  # processes the probe was sent from (client_cpu_percent: the busiest)


@dataclass
class StepOutcome:
    index: int
    name: str
    status: StepStatus
    iteration: int = 0  # polls of an `until` step
    request: RequestRecord | None = None
    response: ResponseRecord | None = None
    timings: Timings | None = None
    assertions: list[AssertionResult] = field(default_factory=list)
    failure: Failure | None = None
    extracted: dict[str, Any] = field(default_factory=dict)
    data: Any = None  # dbQuery rows
    latency: LatencySummary | None = None
    notes: list[str] = field(default_factory=list)
    # Per ``match`` group: {"group": n, "match": {...}, "requests": [summary, ...]}.
    traffic: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""  # ISO 8601 UTC
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioOutcome:
    name: str
    code: str
    kind: str
    status: StepStatus
    steps: list[StepOutcome]
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
