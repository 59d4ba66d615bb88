"""Runs scenarios: templating, URL resolution, the actions, assertions, extraction.

``run_suite`` runs a parsed suite against a context and returns one ``ScenarioOutcome`` per
scenario. It is pure asyncio: the Django side calls it from a management command or a Celery
task and persists what comes back. One ``Transport`` (one connection pool) serves a whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from certification.engine import assertions as ops
from certification.engine import traffic
from certification.engine import webhooks as outbound
from certification.engine.masking import MASK, Masker, is_sensitive_header
from certification.engine.model import (
    MISSING,
    UNSAFE_METHODS,
    AssertionGroup,
    AssertionResult,
    DbQuery,
    EndpointConfig,
    Failure,
    HttpRequest,
    LatencyProbe,
    LatencySummary,
    RunContext,
    Scenario,
    ScenarioOutcome,
    SftpList,
    SftpUpload,
    Step,
    StepOutcome,
    StepStatus,
    Suite,
    Timings,
    Wait,
    WaitForFile,
    WaitForRequest,
    WebhookSend,
    WebhookSigner,
    X12Receive,
    X12Send,
)
from certification.engine.netpolicy import AddressPolicy
from certification.engine.paths import resolve
from certification.engine.probe import (
    ProbeProcessError,
    child_job,
    drive,
    drive_in_processes,
    split,
)
from certification.engine.spec import _is_failure_path, parse_path, path_conversion
from certification.engine.templating import TemplateFunctionError, UndefinedVariable, render
from certification.engine.transport import Exchange, PreparedRequest, Transport

# Failures that say the definition or configuration is wrong rather than the partner's sandbox.
ERROR_KINDS = {
    "undefined_variable", "template", "bad_url", "blocked_address", "error", "db_config",
    "probe_process",
}  # fmt: skip

NO_RECORDER = (
    "captured traffic is recorded by the web process that serves the hosted mocks and the "
    "inbox, and this run has no recorder"
)

ScenarioCallback = Callable[[int, ScenarioOutcome], Awaitable[None] | None]


def read_path(root: dict[str, Any], path: str) -> tuple[Any, str]:
    """The value at ``path`` in a step's result, converted as the path says
    (``number(response.headers.x-total-count)``), and what went wrong converting it ("" when
    nothing did). A missing value stays missing."""
    conversion, _ = path_conversion(path)
    value = resolve(root, parse_path(path))
    if conversion is None or value is MISSING:
        return value, ""
    if conversion == "string":
        return render("{{ string(v) }}", {"v": value}), ""
    try:
        return render("{{ number(v) }}", {"v": value}), ""
    except TemplateFunctionError as exc:
        return value, str(exc)


def _expects_failure(step: Step) -> bool:
    """A step that asserts on ``failure.*`` expects its exchange to fail: a failure of the
    exchange is then its result, and a response leaves ``failure`` missing, which fails. A
    failure of the definition or configuration (``ERROR_KINDS``) stays an error."""
    return any(
        _is_failure_path(a.path) for g in step.groups if g.match is None for a in g.assertions
    )


class StepError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(kind, message)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_url(url: str, context: RunContext) -> tuple[str, EndpointConfig | None]:
    """Absolute URL as is; ``/path`` on the default endpoint; ``name/path`` on endpoint ``name``.

    Returns the URL and the endpoint whose auth applies (for an absolute URL, the endpoint whose
    base URL it starts with, if any).
    """
    if url.startswith(("http://", "https://")):
        for endpoint in context.endpoints.values():
            if url.startswith(endpoint.base_url.rstrip("/") + "/") or url == endpoint.base_url:
                return url, endpoint
        return url, None
    if url.startswith("/"):
        if not context.default_endpoint or context.default_endpoint not in context.endpoints:
            raise StepError(
                "bad_url", f"'{url}' is relative to the default endpoint, but there is none"
            )
        endpoint = context.endpoints[context.default_endpoint]
        return endpoint.base_url.rstrip("/") + url, endpoint
    name, _, rest = url.partition("/")
    if name in context.endpoints:
        endpoint = context.endpoints[name]
        return f"{endpoint.base_url.rstrip('/')}/{rest}", endpoint
    known = ", ".join(sorted(context.endpoints)) or "none"
    raise StepError(
        "bad_url",
        f"'{url}' names endpoint '{name}', which this partner does not have (endpoints: {known})",
    )


def endpoints_needed(suite: Suite) -> tuple[set[str], bool]:
    """The endpoint names a suite's steps address (``name/path`` URLs, ``dbQuery`` databases)
    and whether some URL is relative to the default endpoint (``/path``): read the way
    :func:`resolve_url` reads them. A name made by a template (``{{...}}``) is not known before
    the run and is not listed."""
    names: set[str] = set()
    needs_default = False
    for scenario in suite.scenarios:
        for step in scenario.steps:
            action = step.action
            if isinstance(action, DbQuery):
                if "{{" not in action.database:
                    names.add(action.database)
                continue
            request = action.request if isinstance(action, LatencyProbe) else action
            if not isinstance(request, HttpRequest):
                continue
            url = request.url
            if url.startswith(("http://", "https://")) or url.startswith("{{"):
                continue
            if url.startswith("/"):
                needs_default = True
                continue
            name = url.partition("/")[0]
            if name and "{{" not in name:
                names.add(name)
    return names, needs_default


def _with_query(url: str, query: Mapping[str, Any]) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in query.items()]
    extra = urlencode(pairs, doseq=False)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _encode_body(request: HttpRequest, body: Any, headers: dict[str, str]) -> bytes | None:
    if body is MISSING:
        return None
    lower = {k.lower() for k in headers}
    if request.body_kind == "raw":
        return str(body).encode()
    if request.body_kind == "form":
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode({k: "" if v is None else v for k, v in body.items()}).encode()
    if "content-type" not in lower:
        headers["Content-Type"] = "application/json"
    return json.dumps(body, separators=(",", ":")).encode()


def _body_value(exchange: Exchange) -> Any:
    parsed = exchange.json()
    if parsed is not MISSING:
        return parsed
    return exchange.body.decode("utf-8", errors="replace")


def _request_body_value(body: bytes | None) -> Any:
    if body is None:
        return MISSING
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


class ScenarioRunner:
    """Runs one scenario's steps in order with its own variables."""

    def __init__(
        self,
        *,
        suite: Suite,
        context: RunContext,
        transport: Transport,
        masker: Masker,
        policy: AddressPolicy,
        scenario_index: int,
    ) -> None:
        self.suite = suite
        self.context = context
        self.transport = transport
        self.masker = masker
        self.policy = policy
        self.scenario_index = scenario_index
        self.variables: dict[str, Any] = {}
        # When the previous step started: a waitForRequest looks for requests from then on
        # (the call it waits for is usually caused by the step before it).
        self.previous_started = _now_iso()
        self.last_webhook: tuple[str, bytes] | None = None  # (event id, body), for replay
        # Requests already taken by a waitForRequest of this scenario: the next one waits for
        # another ("wait for the delivery, then for its retry").
        self.taken: set[Any] = set()
        self.files_taken: set[str] = set()  # likewise for waitForFile
        # When this scenario's last upload completed (monotonic), and its name: a waitForFile
        # after it measures the partner's acknowledgement time (the ``ack`` SLA).
        self.last_upload: tuple[float, str] | None = None
        self.file_sequences: dict[str, int] = {}  # flow -> the last sequence uploaded
        self.last_x12: Any = None  # edi.Sent: the last interchange this scenario sent

    @staticmethod
    def now_iso() -> str:
        return _now_iso()

    def _base_variables(self) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        for name, value in self.suite.variables.items():
            variables[name] = render(value, {**variables, **self._namespaces()})
        variables.update(self.context.variables)
        return variables

    def _namespaces(self) -> dict[str, Any]:
        return {
            "partner": self.context.partner,
            "sla": self.context.sla,
            "secret": self.context.secrets,
        }

    def _scope(self) -> dict[str, Any]:
        return {**self.variables, **self._namespaces()}

    async def run(self, scenario: Scenario) -> ScenarioOutcome:
        started = time.perf_counter()
        outcomes: list[StepOutcome] = []
        try:
            self.variables = self._base_variables()
            setup_failure = None
        except UndefinedVariable as exc:
            setup_failure = Failure("undefined_variable", f"suite variables: {exc}")
        except TemplateFunctionError as exc:
            setup_failure = Failure("template", f"suite variables: {exc}")
        stopped = False
        for index, step in enumerate(scenario.steps):
            name = step.name or f"step {index + 1}"
            if stopped:
                outcomes.append(StepOutcome(index=index, name=name, status="skipped"))
                continue
            if setup_failure is not None:
                outcome = StepOutcome(index=index, name=name, status="error", failure=setup_failure)
            else:
                outcome = await self.run_step(index, step)
            outcomes.append(outcome)
            if outcome.status in ("failed", "error") and not step.continue_on_failure:
                stopped = True
        status = worst_status(o.status for o in outcomes)
        return ScenarioOutcome(
            name=scenario.name,
            code=scenario.code,
            kind=scenario.kind,
            status=status,
            steps=outcomes,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def run_step(self, index: int, step: Step) -> StepOutcome:
        name = step.name or f"step {index + 1}"
        outcome = StepOutcome(index=index, name=name, status="passed", started_at=_now_iso())
        started = time.perf_counter()
        since, self.previous_started = self.previous_started, outcome.started_at
        try:
            root = await self._act(index, step, outcome, since)
            self._check(step, root, outcome)
            await self._check_traffic(step, outcome)
            self._extract(step, root, outcome)
        except StepError as exc:
            outcome.failure = exc.failure
        except UndefinedVariable as exc:
            message = str(exc)
            for name in self.context.withheld:
                if f"secret.{name}." in message:
                    message += (
                        f" (endpoint '{name}' points at another origin for this run, so its "
                        "stored credentials were not loaded; --keep-auth sends them)"
                    )
            outcome.failure = Failure("undefined_variable", message)
        except TemplateFunctionError as exc:
            outcome.failure = Failure("template", str(exc))
        except Exception as exc:  # the runner must report, never crash
            outcome.failure = Failure("error", f"{type(exc).__name__}: {exc}")
        if outcome.failure is not None:
            outcome.status = "error" if outcome.failure.kind in ERROR_KINDS else "failed"
        elif any(not a.passed and a.evaluated for a in outcome.assertions):
            outcome.status = "failed"
        elif any(not a.evaluated for a in outcome.assertions):
            outcome.status = "unevaluated"
        outcome.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self._mask(step, outcome)
        return outcome

    async def _act(
        self, index: int, step: Step, outcome: StepOutcome, since: str
    ) -> dict[str, Any]:
        action = step.action
        if isinstance(action, HttpRequest):
            if step.until is not None:
                return await self._poll(index, step, action, outcome)
            return await self._http(index, action, outcome, expects_failure=_expects_failure(step))
        if isinstance(action, LatencyProbe):
            return await self._probe(action, outcome)
        if isinstance(action, Wait):
            await asyncio.sleep(action.ms / 1000)
            return {}
        if isinstance(action, DbQuery):
            return await self._db(action, outcome)
        if isinstance(action, WaitForRequest):
            return await self._wait_for_request(action, outcome, since)
        if isinstance(action, WebhookSend):
            return await self._webhook(action, outcome)
        if isinstance(action, SftpUpload | WaitForFile | SftpList):
            return await self._file(action, outcome, step)
        if isinstance(action, X12Send):
            from certification.engine import edi  # X12/AS2 only: not imported by HTTP suites

            return await edi.send(self, action, outcome, step)
        if isinstance(action, X12Receive):
            from certification.engine import edi

            return await edi.receive(self, action, outcome, step, since)
        raise StepError("error", f"unsupported action {type(action).__name__}")

    async def _file(
        self, action: SftpUpload | WaitForFile | SftpList, outcome: StepOutcome, step: Step
    ) -> dict[str, Any]:
        from certification.engine import edi, pgp, sftp

        endpoint = self.context.endpoints.get(action.endpoint)
        if endpoint is None or endpoint.kind != "sftp":
            known = [n for n, e in self.context.endpoints.items() if e.kind == "sftp"]
            raise StepError(
                "error",
                f"'{action.endpoint}' is not an SFTP endpoint of the partner (SFTP endpoints: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
        scope = self._scope()
        try:
            async with sftp.open_session(
                endpoint, policy=self.policy, timeout_ms=self.context.request_timeout_ms
            ) as session:
                if isinstance(action, SftpList):
                    pattern = str(render(action.pattern, scope))
                    files = [
                        f
                        for f in await session.listdir(action.directory)
                        if fnmatch.fnmatchcase(f.name, pattern)
                    ]
                    outcome.notes.append(
                        f"{len(files)} file(s) in {sftp.directory(endpoint, action.directory)}"
                    )
                    return {
                        "files": [{"name": f.name, "size": f.size} for f in files],
                        "count": len(files),
                    }
                if isinstance(action, WaitForFile):
                    pattern = str(render(action.pattern, scope))
                    upload = self.last_upload
                    outcome.data = {"waitedFor": pattern, "after": upload[1] if upload else None}
                    try:
                        found = await session.wait_for(
                            action.directory,
                            pattern,
                            timeout_ms=action.timeout_ms,
                            interval_ms=action.interval_ms,
                            ignore=self.files_taken,
                        )
                    except sftp.SftpError as exc:
                        if exc.kind == "timeout" and upload is not None:
                            outcome.data["noAckWithinMs"] = round(
                                (time.monotonic() - upload[0]) * 1000, 1
                            )
                        raise
                    seen = time.monotonic()
                    self.files_taken.add(found.name)
                    data = await session.read(action.directory, found.name)
                    path = f"{sftp.directory(endpoint, action.directory)}/{found.name}"
                    cap = self.context.body_capture_bytes
                    received = _file_record(found.name, path, data, cap)
                    outcome.data["received"] = received
                    try:
                        name, content, sealed = await pgp.open_from(
                            endpoint.auth_config, endpoint.secrets, found.name, data
                        )
                    except pgp.PgpError as exc:
                        raise StepError("pgp", f"{path}: {exc}") from None
                    described = sftp.describe(name, content, path)
                    described["pgp"] = sealed
                    if sealed.get("decrypted"):
                        received["decrypted"] = _file_record(name, path, content, cap)
                        outcome.notes.append(f"decrypted {path} (PGP)")
                    elif sealed["encrypted"]:
                        unread = (
                            f"{path} is PGP-encrypted; the endpoint has no PGP private key to "
                            "decrypt it"
                        )
                        outcome.notes.append(unread)
                        if not edi.asserts_on(step, "file.pgp.decrypted", "file.pgp.encrypted"):
                            raise StepError("pgp", unread)
                    outcome.data["receivedAt"] = (
                        datetime.fromtimestamp(found.mtime, UTC).isoformat().replace("+00:00", "Z")
                    )
                    if upload is not None:
                        # Seen at this poll: an upper bound, by at most the poll interval.
                        outcome.data["ackMs"] = round((seen - upload[0]) * 1000, 1)
                    outcome.notes.append(f"{path} appeared ({found.size} bytes)")
                    problem = edi.pgp_signature_problem(step, endpoint, sealed)
                    if problem:
                        raise StepError("pgp", f"{path}: {problem}")
                    return {"file": described}
                return await self._upload(session, endpoint, action, scope, outcome)
        except sftp.SftpError as exc:
            raise StepError(exc.kind, str(exc)) from None
        except pgp.PgpError as exc:
            raise StepError("pgp", str(exc)) from None

    async def _upload(
        self,
        session: Any,
        endpoint: EndpointConfig,
        action: SftpUpload,
        scope: dict[str, Any],
        outcome: StepOutcome,
    ) -> dict[str, Any]:
        from certification.engine import pgp, sftp

        sequence = await self._file_sequence(action) if not action.name else None
        name = str(render(action.name, scope)) if action.name else self._file_name(action, sequence)
        manifest: dict[str, Any] | None = None
        if action.csv is not None:
            header = action.csv["header"]
            rows = render(action.csv["rows"], scope)
            data = sftp.build_csv(header, rows)
            if action.manifest is not False:
                manifest = {
                    "file": name,
                    "records": len(rows),
                    "bytes": len(data),
                    "sha256": sftp.sha256_hex(data),
                    "totals": sftp.column_sums(header, rows),
                }
                if isinstance(action.manifest, dict):
                    manifest.update(render(action.manifest, scope))
        else:
            data = str(render(action.content, scope)).encode()
        # On the wire: encrypted to the partner's PGP key when the endpoint has one; the
        # sidecar and the manifest are named after, and the sidecar hashes, what is uploaded.
        wire = await pgp.seal_for(endpoint.auth_config, endpoint.secrets, name, data, action.pgp)
        if manifest is not None:
            manifest["file"] = wire.name
            if wire.info["encrypted"]:
                manifest["encryption"] = "pgp"
        path = await session.upload(action.directory, wire.name, wire.data, rename=action.rename)
        sent = [path]
        if action.sha256:
            digest = action.sha256 if isinstance(action.sha256, str) else sftp.sha256_hex(wire.data)
            sidecar = f"{digest}  {wire.name}\n".encode()
            sent.append(await session.upload(action.directory, f"{wire.name}.sha256", sidecar))
        if manifest is not None:
            body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
            sent.append(await session.upload(action.directory, f"{wire.name}.manifest.json", body))
        how = "temporary name, then renamed" if action.rename else "left under its temporary name"
        if wire.info["encrypted"]:
            how += "; PGP-encrypted" + (" and signed" if wire.info["signed"] else "")
        outcome.notes.append(f"uploaded ({how}): " + ", ".join(sent))
        self.last_upload = (time.monotonic(), wire.name)
        cap = self.context.body_capture_bytes
        record = _file_record(wire.name, path, wire.data, cap)
        described = sftp.describe(name, data, path)
        described["pgp"] = wire.info
        if sequence is not None:
            described["sequence"] = f"{sequence:06d}"  # as in the name, for patterns
        if wire.info["encrypted"]:
            record["decrypted"] = _file_record(name, path, data, cap)
        outcome.data = {"sent": [record]}
        root: dict[str, Any] = {"file": described}
        if manifest is not None:
            root["manifest"] = manifest
        return root

    async def _file_sequence(self, action: SftpUpload) -> int:
        """The sequence of a generated file name: given, the scenario's previous one of the
        flow (``repeat``: a duplicate), or the next of the partner's counter."""
        flow = str(action.flow)
        if action.sequence is not None:
            sequence = action.sequence
        elif action.repeat:
            if flow not in self.file_sequences:
                raise StepError(
                    "error",
                    f"'repeat' uploads with the sequence of this scenario's previous '{flow}' "
                    "file, and it has uploaded none",
                )
            sequence = self.file_sequences[flow]
        elif self.context.file_sequence is None:
            raise StepError(
                "error",
                "this run has no file-sequence counters (they live in the product's database); "
                "fix the sequence with 'sequence: N'",
            )
        else:
            sequence = await self.context.file_sequence(flow)
        self.file_sequences[flow] = sequence
        return sequence

    def _file_name(self, action: SftpUpload, sequence: int | None) -> str:
        """``<prefix>_<flow>_<YYYYMMDDThhmmssZ>_<sequence>.<ext>``, the playbook's file names."""
        partner = str(self.context.partner.get("name") or self.context.partner.get("id") or "")
        prefix = action.prefix or re.sub(r"[^a-z0-9]", "", partner.lower()) or "partner"
        ext = action.ext or ("csv" if action.csv is not None else "txt")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{prefix}_{action.flow}_{stamp}_{sequence:06d}.{ext}"

    def _signer(self, action: WebhookSend) -> WebhookSigner:
        signers = self.context.webhooks
        if action.secret is not None:
            if action.secret not in signers:
                known = ", ".join(sorted(signers)) or "none"
                raise StepError(
                    "error",
                    f"webhook secret '{action.secret}' is not the partner's (its webhook "
                    f"secrets: {known})",
                )
            return signers[action.secret]
        if len(signers) == 1:
            return next(iter(signers.values()))
        if not signers:
            raise StepError("error", "the partner has no webhook secret to sign with")
        raise StepError(
            "error",
            "the partner has several webhook secrets; say which signs with 'secret: <name>' ("
            + ", ".join(sorted(signers))
            + ")",
        )

    async def _webhook(self, action: WebhookSend, outcome: StepOutcome) -> dict[str, Any]:
        signer = self._signer(action)
        scope = self._scope()
        if action.replay:
            if self.last_webhook is None:
                raise StepError("error", "replay: no earlier webhook step in this scenario")
            event_id, body = self.last_webhook
        else:
            value = render(action.body, scope)
            body = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            body = body.encode()
            given = render(action.event_id, scope) if action.event_id is not None else None
            if given is None and isinstance(value, dict) and isinstance(value.get("id"), str | int):
                given = value["id"]
            event_id = str(given) if given not in (None, "") else str(uuid.uuid4())
            self.last_webhook = (event_id, body)
        sent_body = outbound.tampered(body) if action.tamper else body
        stale_by = signer.window_s + 60 if action.stale else 0
        url, endpoint = resolve_url(render(action.url, scope), self.context)
        extra = {
            str(k): "" if v is None else str(v) for k, v in render(action.headers, scope).items()
        }
        policy = self.context.retry_rules.get("webhook.delivery")
        rule = outbound.RetryRule(*policy) if policy else outbound.RetryRule()
        if action.max_attempts is not None:
            rule = outbound.RetryRule(action.max_attempts, rule.cap_ms, rule.jitter, rule.base_ms)
        timeout = action.timeout_ms or self.context.request_timeout_ms
        last: list[Exchange] = []

        async def send(headers: dict[str, str]) -> tuple[int | None, str, dict[str, str]]:
            prepared = PreparedRequest(
                method="POST",
                url=url,
                headers={**headers, **extra},
                body=sent_body,
                timeout_ms=timeout,
                follow_redirects=False,
                use_auth=False,  # the signature is the webhook's credential
            )
            exchange = await self.transport.send(prepared, endpoint=endpoint)
            last[:] = [exchange]
            if exchange.failure is not None:
                if exchange.failure.kind in ERROR_KINDS:
                    raise StepError(exchange.failure.kind, exchange.failure.message)
                return None, exchange.failure.kind, {}
            return exchange.status, "", exchange.headers

        delivery = await outbound.deliver(
            send,
            lambda: outbound.sign_event(
                signer.profile, signer.secret, body, event_id, stale_by_s=stale_by
            ),
            rule,
        )
        exchange = last[0]
        outcome.request = exchange.request
        outcome.response = exchange.response
        outcome.timings = Timings(
            **{k: None if v is None else round(v, 3) for k, v in vars(exchange.timings).items()}
        )
        attempts = [a.to_dict() for a in delivery.attempts]
        shown = ", ".join(str(a.status) if a.status else a.failure for a in delivery.attempts)
        what = "replayed" if action.replay else "delivered"
        outcome.notes.append(
            f"event {event_id} {what} ({signer.profile} signature"
            + (", body tampered after signing" if action.tamper else "")
            + (f", timestamp {stale_by} s old" if action.stale else "")
            + f"): {len(attempts)} attempt{'s' if len(attempts) != 1 else ''} ({shown})"
            + (f"; {delivery.gave_up}" if delivery.gave_up else "")
        )
        if exchange.failure is not None:
            raise StepError(
                exchange.failure.kind,
                f"{exchange.failure.message} (after {len(attempts)} attempts)",
            )
        sent = exchange.sent
        return {
            "response": {
                "status": exchange.status,
                "headers": exchange.headers,
                "body": _body_value(exchange),
                "timeMs": exchange.timings.total_ms,
                "redirects": [],
            },
            "request": {
                "method": "POST",
                "url": sent.url if sent else url,
                "headers": sent.headers if sent else {},
                "body": _request_body_value(sent_body),
            },
            "attempts": attempts,
        }

    async def _wait_for_request(
        self, action: WaitForRequest, outcome: StepOutcome, since: str
    ) -> dict[str, Any]:
        source = self.context.traffic
        if source is None:
            raise StepError("error", NO_RECORDER)
        match = _match_values(render(action.match, self._scope()))
        started = time.perf_counter()
        deadline = started + action.timeout_ms / 1000
        while True:
            records, _ = await source(since, _now_iso())
            found = [r for r in traffic.select(match, records) if r.get("id") not in self.taken]
            if found:
                self.taken.add(found[0].get("id"))
                waited = (time.perf_counter() - started) * 1000
                outcome.traffic.append(
                    {"group": 0, "match": match, "requests": [traffic.summary(found[0])]}
                )
                outcome.notes.append(
                    f"{traffic.describe(match)} arrived (looked for {waited:.0f} ms)"
                )
                return found[0]
            if time.perf_counter() >= deadline:
                raise StepError(
                    "timeout",
                    f"no request {traffic.describe(match)} arrived within {action.timeout_ms} ms",
                )
            pause = min(action.interval_ms / 1000, max(0.0, deadline - time.perf_counter()))
            await asyncio.sleep(pause)

    def _prepare(
        self, index: int, request: HttpRequest
    ) -> tuple[PreparedRequest, EndpointConfig | None]:
        scope = self._scope()
        url, endpoint = resolve_url(render(request.url, scope), self.context)
        url = _with_query(url, render(request.query, scope))
        headers = {
            str(k): "" if v is None else str(v) for k, v in render(request.headers, scope).items()
        }
        body = _encode_body(request, render(request.body, scope), headers)
        method = request.method.upper()
        if (
            method in UNSAFE_METHODS
            and self.context.run_id
            and not any(k.lower() == "idempotency-key" for k in headers)
        ):
            # Derived from run, scenario and step: a step re-run after a worker crash sends the
            # same key, so the partner's sandbox can treat it as the same operation.
            seed = f"{self.context.run_id}:{self.scenario_index}:{index}"
            headers["Idempotency-Key"] = hashlib.sha256(seed.encode()).hexdigest()[:32]
        timeout = request.timeout_ms or self.context.request_timeout_ms
        prepared = PreparedRequest(
            method=method,
            url=url,
            headers=headers,
            body=body,
            timeout_ms=timeout,
            follow_redirects=request.follow_redirects,
            use_auth=request.use_auth,
        )
        return prepared, endpoint

    async def _http(
        self,
        index: int,
        request: HttpRequest,
        outcome: StepOutcome,
        *,
        expects_failure: bool = False,
    ) -> dict[str, Any]:
        prepared, endpoint = self._prepare(index, request)
        exchange = await self.transport.send(prepared, endpoint=endpoint)
        outcome.request = exchange.request
        outcome.response = exchange.response
        outcome.timings = Timings(
            **{k: None if v is None else round(v, 3) for k, v in vars(exchange.timings).items()}
        )
        if exchange.failure is not None:
            if not expects_failure or exchange.failure.kind in ERROR_KINDS:
                raise StepError(exchange.failure.kind, exchange.failure.message)
            # The step asserts on ``failure``: the failure is its result, for them to judge.
            outcome.notes.append(
                f"the request failed ({exchange.failure.kind}: {exchange.failure.message}); "
                "the step's assertions on failure judge it"
            )
            return {"failure": {"kind": exchange.failure.kind, "message": exchange.failure.message}}
        # What went on the wire (final hop, auth included), not what the step asked for.
        sent = exchange.sent
        return {
            "response": {
                "status": exchange.status,
                "headers": exchange.headers,
                "body": _body_value(exchange),
                "timeMs": exchange.timings.total_ms,
                "redirects": [{"status": h.status, "url": h.url} for h in exchange.hops],
            },
            "request": {
                "method": sent.method if sent else prepared.method,
                "url": sent.url if sent else prepared.url,
                "headers": sent.headers if sent else prepared.headers,
                "body": _request_body_value(sent.body if sent else prepared.body),
            },
        }

    async def _poll(
        self, index: int, step: Step, request: HttpRequest, outcome: StepOutcome
    ) -> dict[str, Any]:
        until = step.until
        assert until is not None
        expected = render(until.value, self._scope())
        deadline = time.perf_counter() + until.timeout_ms / 1000
        polls = 0
        while True:
            root = await self._http(index, request, outcome)
            polls += 1
            actual, problem = read_path(root, until.path)
            done = not problem and ops.evaluate(until.operator, actual, expected)[0]
            if done:
                outcome.iteration = polls - 1
                outcome.notes.append(f"until condition met after {polls} request(s)")
                return root
            if time.perf_counter() + until.interval_ms / 1000 > deadline:
                outcome.iteration = polls - 1
                last = problem or f"last value {ops.show(actual)}"
                raise StepError(
                    "timeout",
                    f"until {until.path} {until.operator} {ops.show(expected)} not met within "
                    f"{until.timeout_ms} ms ({polls} requests); {last}",
                )
            await asyncio.sleep(until.interval_ms / 1000)

    async def _probe(self, probe: LatencyProbe, outcome: StepOutcome) -> dict[str, Any]:
        prepared, endpoint = self._prepare(-1, probe.request)
        prepared.headers.pop("Idempotency-Key", None)
        expect = set(probe.expect_status)
        processes = min(probe.processes, self.context.probe_max_processes)
        shares = split(probe.requests, processes, concurrency=probe.concurrency, rate=probe.rate)
        if processes < probe.processes:
            outcome.notes.append(
                f"sent from {len(shares)} process{'es' if len(shares) > 1 else ''}, not the "
                f"{probe.processes} the step asks for: this installation allows at most "
                f"{self.context.probe_max_processes} (PROBE_MAX_PROCESSES)"
            )
        if len(shares) == 1:
            # A token fetch or the TLS store load is no measure of the partner's latency.
            await self.transport.warm_up(prepared, endpoint)
            tally = await drive(self.transport.send, prepared, endpoint, shares[0], expect)
        else:
            pinned = await self.transport.pinned_addresses(prepared.url)
            networks = [str(network) for network in self.policy.allowed_networks]
            jobs = [
                child_job(prepared, endpoint, share, expect, context=self.context,
                          allowed_networks=networks, pinned=pinned)
                for share in shares
            ]  # fmt: skip
            try:
                tally = await drive_in_processes(jobs)
            except ProbeProcessError as exc:
                raise StepError("probe_process", str(exc)) from None
        histogram, statuses = tally.histogram, tally.statuses
        wall_ms, cpu_percent, lag_ms = tally.wall_ms, tally.cpu_percent, tally.lag_max_ms
        # Busy is running or waiting to run: a client starved of a core by other processes
        # queues its requests as surely as one that uses its core up.
        busy = tally.busy_percent
        if probe.rate and tally.lag_p95_ms > max(1000 / probe.rate, 5.0):
            outcome.notes.append(
                f"the client fell behind its schedule of {probe.rate:g} requests/s (95% of "
                f"requests started within {tally.lag_p95_ms:.1f} ms of their time, the latest "
                f"{lag_ms:.1f} ms late): the rate actually sent was lower"
            )
        ok = histogram.count
        errors = probe.requests - ok

        def pct(value: float) -> float | None:
            return round(histogram.percentile(value), 3) if ok else None

        summary = LatencySummary(
            endpoint=endpoint.name if endpoint is not None else _origin(prepared.url),
            requests=probe.requests,
            ok=ok,
            errors=errors,
            success_ratio=round(ok / probe.requests, 6) if probe.requests else None,
            p50=pct(50),
            p90=pct(90),
            p95=pct(95),
            p99=pct(99),
            max=round(histogram.max, 3) if ok else None,
            wall_ms=round(wall_ms, 3),
            errors_by_kind=dict(sorted(tally.errors_by_kind.items())),
            status=statuses,
            histogram=histogram.to_dict(),
            flow=probe.flow,
            timeout_ms=int(prepared.timeout_ms or self.context.request_timeout_ms),
            client_lag_ms=round(lag_ms, 3),
            client_cpu_percent=cpu_percent,
            client_wait_percent=tally.wait_percent,
            client_saturated=busy >= self.context.probe_cpu_limit_percent,
            client_processes=tally.processes,
        )
        outcome.latency = summary
        if summary.client_saturated:
            sender = (
                "the event loop that sent the probe"
                if tally.processes == 1
                else f"the busiest of the {tally.processes} processes that sent the probe"
            )
            waited = (
                f" and waited for a core {tally.wait_percent:g} % of the time"
                if tally.wait_percent
                else ""
            )
            outcome.notes.append(
                f"the client was {cpu_percent:g} % busy{waited} (CPU of {sender}, as a share "
                f"of one core) during the probe, together at or above "
                f"{self.context.probe_cpu_limit_percent:g} %: its own queueing adds to the "
                "measured latency, so these percentiles are an upper bound and a target they "
                "miss is not a measured miss (fewer concurrent requests, 'processes' on a "
                "machine with idle cores, or a less loaded machine measure the partner rather "
                "than the client)"
            )
        if errors:
            outcome.notes.append(
                f"{errors} of {probe.requests} requests failed and are not latency samples: "
                + ", ".join(f"{k} x{v}" for k, v in summary.errors_by_kind.items())
            )
        if probe.requests and not ok:
            raise StepError(
                "no_success",
                f"no successful response: all {probe.requests} requests failed ("
                + ", ".join(f"{k} x{v}" for k, v in summary.errors_by_kind.items())
                + ")",
            )
        return {
            "latency": {
                "p50": summary.p50,
                "p90": summary.p90,
                "p95": summary.p95,
                "p99": summary.p99,
                "max": summary.max,
                "requests": probe.requests,
                "ok": ok,
                "successRatio": summary.success_ratio,
            },
            "errors": {
                "rate": errors / probe.requests if probe.requests else 0.0,
                "count": errors,
                "byKind": summary.errors_by_kind,
            },
            "status": statuses,
        }

    async def _db(self, query: DbQuery, outcome: StepOutcome) -> dict[str, Any]:
        from certification.engine.db import DbQueryError, run_query

        endpoint = self.context.endpoints.get(query.database)
        if endpoint is None or endpoint.kind != "postgresql":
            known = [n for n, e in self.context.endpoints.items() if e.kind == "postgresql"]
            raise StepError(
                "db_config",
                f"dbQuery names database '{query.database}', but the partner has no PostgreSQL "
                f"endpoint of that name (PostgreSQL endpoints: {', '.join(known) or 'none'})",
            )
        sql = render(query.query, self._scope())
        params = render(query.params, self._scope())
        try:
            rows = await run_query(
                endpoint,
                sql,
                params,
                policy=self.policy,
                timeout_ms=self.context.request_timeout_ms,
            )
        except DbQueryError as exc:
            raise StepError("db_error", str(exc)) from None
        outcome.data = rows
        return {"data": rows}

    def _check(self, step: Step, root: dict[str, Any], outcome: StepOutcome) -> None:
        scope = self._scope()
        for group in step.groups:
            if group.match is not None:
                continue  # captured traffic: _check_traffic
            for assertion in group.assertions:
                outcome.assertions.append(_judge(assertion, root, scope))

    async def _check_traffic(self, step: Step, outcome: StepOutcome) -> None:
        """Evaluate the step's ``match`` groups on the requests captured from the start of the
        step until ``settleMs`` after its action."""
        groups = [(n, g) for n, g in enumerate(step.groups, start=1) if g.match is not None]
        if not groups:
            return
        source = self.context.traffic
        if source is None:
            for _, group in groups:
                self._not_evaluated(group, outcome, "not evaluated: " + NO_RECORDER)
            return
        settle = self.context.traffic_settle_ms if step.settle_ms is None else step.settle_ms
        if settle:
            await asyncio.sleep(settle / 1000)
        records, total = await source(outcome.started_at, _now_iso())
        scope = self._scope()
        for number, group in groups:
            match = _match_values(render(group.match or {}, scope))
            found = traffic.select(match, records)
            outcome.traffic.append(
                {"group": number, "match": match, "requests": [traffic.summary(r) for r in found]}
            )
            self._traffic_group(group, match, found, total, outcome)

    def _traffic_group(
        self,
        group: AssertionGroup,
        match: dict[str, Any],
        found: list[dict[str, Any]],
        total: int,
        outcome: StepOutcome,
    ) -> None:
        what = traffic.describe(match)
        n = len(found)
        counted = f"{n} request{'s' if n != 1 else ''} {what}"
        count_passed = True
        if group.count is not None:
            count_passed, message = ops.evaluate(group.count.operator, n, group.count.value)
            evaluated = True
            if count_passed and n == 0 and total == 0:
                # Nothing reached the mocks or the inbox in the whole run: "none was sent"
                # cannot be told from "the sandbox is not pointed at the hosted mocks".
                evaluated, count_passed = False, False
                message = (
                    "not evaluated: no request from the partner's sandbox reached the hosted "
                    "mocks or the inbox during this run, so 'none was sent' cannot be told from "
                    "'the sandbox does not call the mocks' (check its third-party base URLs)"
                )
            else:
                message = counted if count_passed else f"{message}: {counted}"
            outcome.assertions.append(
                AssertionResult(
                    path="count",
                    operator=group.count.operator,
                    expected=group.count.value,
                    actual=n,
                    passed=count_passed,
                    message=message,
                    evaluated=evaluated,
                )
            )
        elif not found:
            count_passed = False
            outcome.assertions.append(
                AssertionResult(
                    path="match",
                    operator="exists",
                    expected=None,
                    actual=0,
                    passed=False,
                    message=f"no request {what} was captured in the step's window"
                    + (
                        " (nothing reached the hosted mocks or the inbox during this run: is "
                        "the sandbox configured with the partner's mock base URL?)"
                        if total == 0
                        else ""
                    ),
                )
            )
        if not found:
            if group.assertions:
                self._not_evaluated(
                    group,
                    outcome,
                    f"not evaluated: no request {what}, so nothing to check",
                    with_count=False,
                )
            return
        scope = self._scope()
        for position, record in enumerate(found, start=1):
            where = f"request {position} of {n} ({record.get('method')} {record.get('url')})"
            for assertion in group.assertions:
                outcome.assertions.append(
                    _judge(assertion, record, scope, recorded=True, where=where)
                )

    @staticmethod
    def _not_evaluated(
        group: AssertionGroup, outcome: StepOutcome, reason: str, *, with_count: bool = True
    ) -> None:
        """Each check of a ``match`` group that could not be evaluated is reported as such, so
        the step cannot pass."""
        checks = [(a.path, a.operator, a.value) for a in group.assertions]
        if group.count is not None and with_count:
            checks.append(("count", group.count.operator, group.count.value))
        for path, operator, value in checks or [("match", "", None)]:
            outcome.assertions.append(
                AssertionResult(
                    path=path,
                    operator=operator,
                    expected=None if value is MISSING else value,
                    actual=None,
                    passed=False,
                    message=reason,
                    evaluated=False,
                )
            )

    def _extract(self, step: Step, root: dict[str, Any], outcome: StepOutcome) -> None:
        for name, path in step.extract.items():
            value, problem = read_path(root, path)
            if problem:
                raise StepError("extract", f"extract {name}: {path}: {problem}")
            if value is MISSING:
                raise StepError("extract", f"extract {name}: {path} does not exist in the result")
            self.variables[name] = value
            outcome.extracted[name] = value

    def _mask(self, step: Step, outcome: StepOutcome) -> None:
        mask = self.masker.mask_obj
        for result in outcome.assertions:
            if _credential_path(result.path):
                # A signature, cookie or token is masked whole, as in the stored headers: it
                # may be derived from a secret (an HMAC) and still be replayable.
                result.expected = None if result.expected is None else MASK
                result.actual = None if result.actual is None else MASK
                if result.message and result.evaluated:
                    result.message = "the values of credential headers are not recorded"
                continue
            result.expected = mask(result.expected)
            result.actual = mask(result.actual)
            result.message = _mask_message(self.masker, result.message)
        for name, path in step.extract.items():
            if name in outcome.extracted and _credential_path(path):
                outcome.extracted[name] = MASK
        outcome.extracted = mask(outcome.extracted)
        outcome.data = mask(outcome.data)
        outcome.traffic = mask(outcome.traffic)
        outcome.notes = [self.masker.mask(note) for note in outcome.notes]
        if outcome.failure is not None:
            outcome.failure.message = mask(outcome.failure.message)


_SEVERITY = {"error": 4, "failed": 3, "unevaluated": 2, "passed": 1, "skipped": 0}


def worst_status(statuses: Iterable[str]) -> StepStatus:
    """A scenario's status from its steps': error, then failed, then unevaluated; passed only
    when every step passed (skipped steps follow a failure, so they never stand alone)."""
    worst = max(statuses, key=lambda s: _SEVERITY.get(s, 4), default="passed")
    return "passed" if worst == "skipped" else worst  # type: ignore[return-value]


def _credential_path(path: str) -> bool:
    """A path to a credential header (``request.headers.X-Signature``, ``response.headers.
    Set-Cookie``, an echo's ``response.body.headers.Authorization``): never recorded."""
    try:
        segments = parse_path(path)
    except ValueError:
        return False
    return (
        len(segments) >= 2
        and isinstance(segments[-1], str)
        and isinstance(segments[-2], str)
        and segments[-2].lower() == "headers"
        and is_sensitive_header(segments[-1])
    )


def _mask_message(masker: Masker, message: str) -> str:
    """Assertion messages quote values cut to 200 characters and ending in "...": the part
    before each cut is masked as truncated, so a secret cut in two leaves no readable start."""
    parts = message.split("...")
    return "...".join(
        [*(masker.mask_truncated(part) for part in parts[:-1]), masker.mask(parts[-1])]
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # never the userinfo
    return f"{parts.scheme}://{host}" if host else url


def _judge(
    assertion: Any,
    root: dict[str, Any],
    scope: dict[str, Any],
    *,
    recorded: bool = False,
    where: str = "",
) -> AssertionResult:
    """One assertion on a step's result (or, ``recorded``, on a captured request, whose masked
    values cannot be compared); ``where`` prefixes the message."""
    actual, problem = read_path(root, assertion.path)
    expected = render(assertion.value, scope)
    evaluated = True
    if recorded and assertion.operator not in ("exists", "notExists") and _holds_mask(actual):
        # Recorded masked (it held one of our secrets): the value is not there to compare,
        # whichever way the check goes.
        evaluated, passed = False, False
        message = "not evaluated: the recorded value is masked (it held a secret)"
    elif problem:
        passed, message = False, problem
    else:
        passed, message = ops.evaluate(assertion.operator, actual, expected)
    if where:
        message = f"{where}: {message}" if message else where
    return AssertionResult(
        path=assertion.path,
        operator=assertion.operator,
        expected=None if expected is MISSING else expected,
        actual=None if actual is MISSING else actual,
        passed=passed,
        message=message,
        evaluated=evaluated,
    )


def _file_record(name: str, path: str, data: bytes, cap: int) -> dict[str, Any]:
    """A file sent or received as its step keeps it: name, path, size, sha256 and, for UTF-8
    text, the content cut at ``cap`` (the evidence of what was exchanged). Built from the bytes,
    not from ``sftp.describe``: a CSV is parsed once, for the step's result."""
    record: dict[str, Any] = {"name": name, "path": path, "size": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return record
    record["text"] = text[:cap]
    record["truncated"] = len(data) > cap
    return record


def _match_values(match: dict[str, Any]) -> dict[str, str]:
    """A ``match`` after templating: each value text, none empty (an empty origin would select
    every request that names none)."""
    out: dict[str, str] = {}
    for key, value in match.items():
        text = "" if value is None else str(value)
        if not text.strip():
            raise StepError("error", f"match.{key} is empty after templating")
        out[key] = text
    return out


def _holds_mask(value: Any) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, dict):
        return any(_holds_mask(k) or _holds_mask(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_mask(v) for v in value)
    return False


def uses_traffic(scenario: Scenario) -> bool:
    """Whether a scenario checks captured traffic (a ``match`` group, ``waitForRequest``, or
    an EDI exchange: the partner's AS2 answers arrive as traffic). Traffic is attributed to a
    step by time, so such scenarios of one run take turns."""
    return any(
        isinstance(step.action, WaitForRequest | X12Send | X12Receive)
        or any(g.match is not None for g in step.groups)
        for step in scenario.steps
    )


def context_secrets(context: RunContext) -> list[str]:
    values = list(context.secrets.values())
    for endpoint in context.endpoints.values():
        values.extend(endpoint.secrets.values())
    return [v for v in values if isinstance(v, str) and v]


async def run_suite(
    suite: Suite,
    context: RunContext,
    *,
    policy: AddressPolicy,
    scenarios: Sequence[int] | None = None,
    parallel: int = 1,
    on_scenario: ScenarioCallback | None = None,
) -> list[ScenarioOutcome]:
    """Run the suite's scenarios (all, or the given indexes), ``parallel`` at a time.

    ``on_scenario(index, outcome)`` is called as each scenario finishes, e.g. to persist it.
    """
    indexes = list(range(len(suite.scenarios))) if scenarios is None else list(scenarios)
    masker = Masker(context_secrets(context))
    results: dict[int, ScenarioOutcome] = {}
    gate = asyncio.Semaphore(max(1, parallel))
    # Captured traffic is attributed to a step by the time it arrived: scenarios that check it
    # run one at a time, so two of them cannot count each other's requests (a scenario that
    # checks none still runs beside them: docs/scenario-format.md#captured-traffic).
    traffic_turn = asyncio.Lock()
    async with Transport(policy=policy, context=context, masker=masker) as transport:

        async def one(index: int) -> None:
            scenario = suite.scenarios[index]
            # A scenario waiting for its traffic turn holds no parallel slot meanwhile.
            async with traffic_turn if uses_traffic(scenario) else contextlib.nullcontext(), gate:
                runner = ScenarioRunner(
                    suite=suite,
                    context=context,
                    transport=transport,
                    masker=masker,
                    policy=policy,
                    scenario_index=index,
                )
                outcome = await runner.run(scenario)
                results[index] = outcome
                if on_scenario is not None:
                    maybe = on_scenario(index, outcome)
                    if asyncio.iscoroutine(maybe):
                        await maybe

        await asyncio.gather(*(one(i) for i in indexes))
    return [results[i] for i in indexes]
