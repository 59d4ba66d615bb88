"""The EDI actions: ``x12Send`` (an interchange over AS2 or SFTP, with its MDN) and
``x12Receive`` (the partner's 997 or business document, judged).

Called by the scenario runner with itself (its context, transport, variables and what the
scenario already exchanged). What a step keeps for the evidence goes in ``outcome.data``:
``sent`` and ``received`` (each interchange or file with its size and sha256, the text cut
at the capture cap), ``mdn``, and ``ackMs`` (from our send to the partner's acknowledgement,
for the ``ack<=…`` SLA).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from certification.engine import as2, x12
from certification.engine.model import (
    MISSING,
    EndpointConfig,
    StepOutcome,
    Timings,
    X12Receive,
    X12Send,
)
from certification.engine.templating import render
from certification.engine.transport import PreparedRequest

if TYPE_CHECKING:
    from certification.engine.runner import ScenarioRunner

SEPARATORS = ("*", "~", ">")


@dataclass
class Sent:
    """The scenario's last interchange: its control numbers and when it left."""

    interchange: int
    group: int
    first_set: int
    set_id: str
    started_iso: str
    monotonic: float
    message_id: str = ""
    sets: int = 1  # transaction sets in it, from first_set on


def _error(kind: str, message: str) -> Exception:
    from certification.engine.runner import StepError

    return StepError(kind, message)


def _endpoint(runner: ScenarioRunner, name: str) -> EndpointConfig:
    endpoint = runner.context.endpoints.get(name)
    if endpoint is None or endpoint.kind not in ("as2", "sftp"):
        known = sorted(n for n, e in runner.context.endpoints.items() if e.kind in ("as2", "sftp"))
        raise _error(
            "error",
            f"'{name}' is not an AS2 or SFTP endpoint of the partner (those it has: "
            f"{', '.join(known) or 'none'})",
        )
    return endpoint


def _party(value: str, fallback: str) -> tuple[str, str]:
    qualifier, colon, identifier = value.partition(":")
    if colon and qualifier and identifier:
        return qualifier.strip().upper(), identifier.strip()
    return "ZZ", (fallback or "UNKNOWN")[:15]


def envelope(endpoint: EndpointConfig, partner_id: str) -> x12.Envelope:
    config = endpoint.auth_config
    sender_q, sender = _party(config.get("isa_sender", ""), config.get("as2_from", "CERTDASH"))
    receiver_q, receiver = _party(
        config.get("isa_receiver", ""), config.get("as2_to", partner_id.upper())
    )
    return x12.Envelope(
        sender_qualifier=sender_q, sender=sender, receiver_qualifier=receiver_q,
        receiver=receiver, usage=config.get("usage", "T") or "T",
    )  # fmt: skip


def keys(endpoint: EndpointConfig) -> as2.Keys:
    return as2.Keys(
        private_key_pem=endpoint.secrets.get("as2_private_key_pem", ""),
        certificate_pem=endpoint.auth_config.get("certificate_pem", ""),
        partner_certificate_pem=endpoint.auth_config.get("partner_certificate_pem", ""),
    )


def _body(action: X12Send, scope: dict[str, Any]) -> list[list[str]]:
    if action.order is not MISSING:
        order = render(action.order, scope)
        if not isinstance(order, dict):
            raise _error("error", "'order' must render to a mapping (po, date, lines)")
        lines = order.get("lines")
        if not isinstance(lines, list) or not lines or not all(isinstance(x, dict) for x in lines):
            raise _error(
                "error",
                "'order.lines' must render to a list of order lines ({sku, quantity, price}), "
                f"not {type(lines).__name__}",
            )
        return x12.purchase_order(order)
    segments = render(action.segments, scope)
    return [[str("" if cell is None else cell) for cell in row] for row in segments]


def _check_elements(body: list[list[str]]) -> None:
    for number, segment in enumerate(body, start=1):
        for index, value in enumerate(segment[1:], start=1):
            if any(sep in value for sep in SEPARATORS):
                raise _error(
                    "error",
                    f"segment {number} ({segment[0]}), element {index}: {value!r} holds a "
                    f"separator ({' '.join(SEPARATORS)}), which would break the interchange",
                )


def _record(kind: str, name: str, data: bytes, cap: int, **extra: Any) -> dict[str, Any]:
    import hashlib

    text = data.decode("utf-8", "replace")
    record = {
        "kind": kind, "name": name, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "text": text[:cap],
        "truncated": len(data) > cap,
    }  # fmt: skip
    record.update(extra)
    return record


async def _controls(runner: ScenarioRunner, action: X12Send) -> tuple[int, int, int]:
    if action.repeat:
        previous: Sent | None = runner.last_x12
        if previous is None:
            raise _error(
                "error",
                "'repeat' sends the control numbers of this scenario's previous x12Send "
                "again, and it has sent none",
            )
        return previous.interchange, previous.group, previous.first_set
    if action.control is not None:
        c = action.control
        return c["interchange"], c["group"], c["set"]
    take = runner.context.control_numbers
    if take is None:
        raise _error(
            "error",
            "this run has no control-number counters (they live in the product's database); "
            "fix them with 'control: {interchange, group, set}'",
        )
    return await take(1)


def asserts_on(step: Any, *paths: str) -> bool:
    """The step asserts on one of ``paths`` (or below it) itself: its own verdict replaces the
    built-in check that covers exactly that field, and no other."""
    return any(
        a.path == path or a.path.startswith((path + ".", path + "["))
        for g in step.groups
        if g.match is None
        for a in g.assertions
        for path in paths
    )


# What a step asserts on to judge a PGP signature itself (see ``pgp_signature_problem``).
PGP_SIGNATURE_PATHS = ("file.pgp.signatureValid", "file.pgp.signed", "file.pgp.signer")


def pgp_signature_problem(step: Any, endpoint: EndpointConfig, sealed: dict[str, Any]) -> str:
    """Why a file's PGP signature fails the step (signed, but not by the partner's pinned key),
    or "": also "" when the step asserts on the signature itself."""
    from certification.engine import pgp

    if asserts_on(step, *PGP_SIGNATURE_PATHS):
        return ""
    return pgp.signature_problem(sealed, pinned=bool(endpoint.auth_config.get("pgp_partner_key")))


def _passed_over(what: str, reasons: dict[Any, str]) -> str:
    """`` (2 message(s) not used: …)`` for a timeout message, or "" when none were."""
    if not reasons:
        return ""
    return f" ({len(reasons)} {what} not used: {'; '.join(list(reasons.values())[:3])})"


async def send(
    runner: ScenarioRunner, action: X12Send, outcome: StepOutcome, step: Any
) -> dict[str, Any]:
    context = runner.context
    endpoint = _endpoint(runner, action.endpoint)
    scope = runner._scope()
    body = _body(action, scope)
    _check_elements(body)
    isa, gs, st = await _controls(runner, action)
    env = envelope(endpoint, str(context.partner.get("id", "")))
    text = x12.build(
        [(action.set_id, body)],
        interchange_control=isa, group_control=gs, first_set_control=st, envelope=env,
    )  # fmt: skip
    parsed = x12.parse(text)
    if parsed.errors:
        raise _error("error", "the interchange built is not valid: " + "; ".join(parsed.errors[:5]))
    payload = text.encode()
    sent = Sent(isa, gs, st, action.set_id, runner.now_iso(), time.monotonic())
    runner.last_x12 = sent
    cap = context.body_capture_bytes
    controls = {"interchange": f"{isa:09d}", "group": str(gs), "set": f"{st:04d}"}
    root: dict[str, Any] = {"interchange": parsed.to_dict()}
    how = "repeated" if action.repeat else ("fixed" if action.control else "from the counters")
    outcome.notes.append(
        f"{action.set_id} built: ISA13 {controls['interchange']}, GS06 {gs}, ST02 "
        f"{controls['set']} ({how})"
    )
    if endpoint.kind == "sftp":
        from certification.engine import pgp, sftp

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = (
            str(render(action.name, scope))
            if action.name
            else f"{context.partner.get('id', 'partner')}_{action.set_id}_{stamp}_{isa:09d}.x12"
        )
        try:
            wire = await pgp.seal_for(endpoint.auth_config, endpoint.secrets, name, payload, None)
            async with sftp.open_session(
                endpoint, policy=runner.policy, timeout_ms=context.request_timeout_ms
            ) as session:
                path = await session.upload(action.directory, wire.name, wire.data)
        except sftp.SftpError as exc:
            raise _error(exc.kind, str(exc)) from None
        except pgp.PgpError as exc:
            raise _error("pgp", str(exc)) from None
        runner.last_upload = (sent.monotonic, wire.name)
        record = _record("interchange", wire.name, payload, cap, path=path, **controls)
        if wire.info["encrypted"]:
            record["pgp"] = wire.info
        outcome.data = {"sent": [record]}
        outcome.notes.append(f"uploaded {path}" + (" (PGP)" if wire.info["encrypted"] else ""))
        root["file"] = {**sftp.describe(name, payload, path), "pgp": wire.info}
        return root
    if action.name or action.directory != "inbox":
        raise _error("error", f"'name' and 'dir' place a file on SFTP; '{endpoint.name}' is AS2")
    return await _send_as2(runner, action, outcome, step, endpoint, payload, sent, controls, root)


async def _send_as2(
    runner: ScenarioRunner,
    action: X12Send,
    outcome: StepOutcome,
    step: Any,
    endpoint: EndpointConfig,
    payload: bytes,
    sent: Sent,
    controls: dict[str, str],
    root: dict[str, Any],
) -> dict[str, Any]:
    context = runner.context
    config = endpoint.auth_config
    signed = endpoint.auth_kind == "as2_smime"
    encrypted = signed and config.get("encrypt", "yes") == "yes"
    micalg = config.get("mic_algorithm", "sha256") or "sha256"
    endpoint_keys = keys(endpoint)
    try:
        message = as2.build_message(
            payload, keys=endpoint_keys, signed=signed, encrypted=encrypted, micalg=micalg,
            encryption=config.get("encryption", "aes256-cbc") or "aes256-cbc",
        )  # fmt: skip
    except as2.As2Error as exc:
        raise _error("error", f"AS2 endpoint '{endpoint.name}': {exc}") from None
    sent.message_id = f"<{uuid.uuid4().hex}@certdash>"
    headers = {
        "AS2-Version": "1.2",
        "AS2-From": config.get("as2_from", ""),
        "AS2-To": config.get("as2_to", ""),
        "Message-ID": sent.message_id,
        "Subject": f"X12 {action.set_id} {controls['interchange']}",
        "Date": email.utils.formatdate(usegmt=True),
        "MIME-Version": "1.0",
        "Content-Type": message.content_type,
        "Disposition-Notification-To": config.get("as2_from", "") or "certdash",
        "Disposition-Notification-Options": (
            f"signed-receipt-protocol={'required' if signed else 'optional'}, pkcs7-signature; "
            f"signed-receipt-micalg={'required' if signed else 'optional'}, {micalg}"
        ),
    }
    asynchronous = config.get("mdn", "sync") == "async"
    if asynchronous:
        if not context.as2_url:
            raise _error("error", "an asynchronous MDN needs our AS2 URL, and this run has none")
        headers["Receipt-Delivery-Option"] = context.as2_url
    cap = context.body_capture_bytes
    record = _record(
        "interchange", f"AS2 {sent.message_id}", payload, cap, messageId=sent.message_id,
        signed=signed, encrypted=encrypted, mic=message.mic, **controls,
    )  # fmt: skip
    outcome.data = {"sent": [record]}
    exchange = await runner.transport.send(
        PreparedRequest(
            method="POST", url=endpoint.base_url, headers=headers, body=message.body,
            timeout_ms=context.request_timeout_ms, follow_redirects=False, use_auth=False,
        ),
        endpoint=None,
    )  # fmt: skip
    outcome.request, outcome.response = exchange.request, exchange.response
    outcome.timings = Timings(
        **{k: None if v is None else round(v, 3) for k, v in vars(exchange.timings).items()}
    )
    if exchange.failure is not None:
        raise _error(exchange.failure.kind, exchange.failure.message)
    answered = time.monotonic()
    response_type = exchange.headers.get("content-type", "")
    root["response"] = {
        "status": exchange.status,
        "headers": exchange.headers,
        "body": exchange.body[:cap].decode("utf-8", "replace"),
    }
    status = exchange.status or 0
    if not 200 <= status < 300:
        raise _error(
            "status",
            f"the partner's AS2 server answered {status}: "
            + exchange.body[:200].decode("utf-8", "replace").strip(),
        )
    what = ("signed and encrypted" if encrypted else "signed") if signed else "unsigned"
    outcome.notes.append(f"AS2 message {sent.message_id} posted ({what}, MIC {message.mic})")
    if asynchronous:
        mdn = await _wait_for_mdn(runner, sent, action.timeout_ms, message.mic, endpoint_keys)
        answered = time.monotonic()
    else:
        try:
            mdn = as2.read_mdn(
                response_type, exchange.body, keys=endpoint_keys, expected_mic=message.mic
            )
        except as2.As2Error as exc:
            raise _error("mdn", f"the answer is not a readable MDN: {exc}") from None
    mdn["ms"] = round((answered - sent.monotonic) * 1000, 1)
    root["mdn"] = mdn
    outcome.data["mdn"] = mdn
    outcome.data["ackMs"] = mdn["ms"]
    outcome.notes.append(f"MDN: {mdn['disposition']}")
    problem = mdn_problem(mdn, signed=signed, message_id=sent.message_id, step=step)
    if problem:
        raise _error("mdn", problem)
    return root


def mdn_problem(mdn: dict[str, Any], *, signed: bool, message_id: str = "",
                step: Any = None) -> str:  # fmt: skip
    """Why an MDN does not confirm what we sent, or "" when it does. Each check stands aside
    only where the step asserts on the very field it judges (``mdn.signed`` or
    ``mdn.signature``, ``mdn.originalMessageId``, ``mdn.micMatches`` or ``mdn.mic``,
    ``mdn.processed`` or ``mdn.disposition``)."""

    def judged(*fields: str) -> bool:
        return step is None or not asserts_on(step, *(f"mdn.{f}" for f in fields))

    if judged("signed", "signature"):
        if signed and not mdn.get("signed"):
            return "the partner's MDN is not signed, and this endpoint requires signed receipts"
        signature = mdn.get("signature") or {}
        if mdn.get("signed") and not signature.get("valid"):
            return f"the MDN's signature is not valid: {signature.get('reason')}"
    original = str(mdn.get("originalMessageId") or "")
    if judged("originalMessageId") and message_id and original and original != message_id:
        return f"the MDN answers message {original}, not ours ({message_id})"
    if judged("micMatches", "mic") and mdn.get("micMatches") is False:
        return (
            f"the MDN states MIC {mdn.get('mic') or '(none)'}, which is not the MIC of what we "
            "sent: the partner did not receive our message intact"
        )
    if judged("processed", "disposition") and not mdn.get("processed"):
        detail = f" ({mdn['text'][:300]})" if mdn.get("text") else ""
        return f"the partner did not process the message: {mdn.get('disposition')}{detail}"
    return ""


async def _traffic_until(
    runner: ScenarioRunner, since: str, timeout_ms: int, interval_ms: int, pick: Any
) -> tuple[dict[str, Any], Any] | None:
    source = runner.context.traffic
    if source is None:
        from certification.engine.runner import NO_RECORDER

        raise _error("error", NO_RECORDER)
    deadline = time.perf_counter() + timeout_ms / 1000
    while True:
        records, _ = await source(since, runner.now_iso())
        for record in records:
            if record.get("id") in runner.taken:
                continue
            chosen = pick(record)
            if chosen is not None:
                runner.taken.add(record.get("id"))
                return record, chosen
        if time.perf_counter() >= deadline:
            return None
        await asyncio.sleep(min(interval_ms / 1000, max(0.0, deadline - time.perf_counter())))


async def _wait_for_mdn(
    runner: ScenarioRunner, sent: Sent, timeout_ms: int, expected_mic: str, endpoint_keys: Any
) -> dict[str, Any]:
    def pick(record: dict[str, Any]) -> dict[str, Any] | None:
        body = record.get("request", {}).get("body")
        if record.get("source") != "as2" or record.get("name") != "mdn":
            return None
        if not isinstance(body, dict) or body.get("originalMessageId") != sent.message_id:
            return None
        mdn = dict(body)
        mdn["micMatches"] = as2.same_mic(str(mdn.get("mic", "")), expected_mic)
        return mdn

    found = await _traffic_until(runner, sent.started_iso, timeout_ms, 250, pick)
    if found is None:
        raise _error("timeout", f"no asynchronous MDN for {sent.message_id} within {timeout_ms} ms")
    return found[1]


def _wanted(set_id: str, sent: Sent | None, parsed: x12.Interchange) -> bool:
    """The interchange holds a ``set_id``; for a 997, one that acknowledges what we last sent:
    its AK1 names our group (functional ID and GS06) and each AK2 one of our sets (ST01 and
    ST02), so a 997 for another document or an older group is never taken."""
    for group in parsed.groups:
        for ts in group.sets:
            if ts.set_id != set_id:
                continue
            if set_id != "997" or sent is None:
                return True
            if _acknowledges(ts.segments, sent):
                return True
    return False


def _acknowledges(segments: list[list[str]], sent: Sent) -> bool:
    ak1 = next((s for s in segments if s and s[0] == "AK1"), None)
    if ak1 is None or len(ak1) < 3 or ak1[2].lstrip("0") != str(sent.group):
        return False
    if ak1[1] != x12.FUNCTIONAL_IDS.get(sent.set_id, ak1[1]):
        return False
    ours = {f"{n:04d}" for n in range(sent.first_set, sent.first_set + sent.sets)}
    for ak2 in (s for s in segments if s and s[0] == "AK2"):
        if len(ak2) < 3 or ak2[1] != sent.set_id or ak2[2].zfill(4) not in ours:
            return False
    return True


async def receive(
    runner: ScenarioRunner, action: X12Receive, outcome: StepOutcome, step: Any, since: str
) -> dict[str, Any]:
    context = runner.context
    endpoint = _endpoint(runner, action.endpoint)
    sent: Sent | None = runner.last_x12
    cap = context.body_capture_bytes
    waited_for = f"a {action.set_id}" + (
        f" answering our group {sent.group}" if sent and action.set_id == "997" else ""
    )
    outcome.data = {"waitedFor": waited_for}
    root: dict[str, Any] = {}
    if endpoint.kind == "as2":
        if action.pattern != "*" or action.directory != "outbox":
            raise _error(
                "error", f"'pattern' and 'dir' find a file on SFTP; '{endpoint.name}' is AS2"
            )
        partner_as2 = endpoint.auth_config.get("as2_to", "")
        must_verify = endpoint.auth_kind == "as2_smime"
        passed_over: dict[Any, str] = {}

        def pick(record: dict[str, Any]) -> x12.Interchange | None:
            if record.get("source") != "as2" or record.get("name") != "document":
                return None
            sender = _header(record, "as2-from")
            if partner_as2 and sender.strip('"') != partner_as2:
                return None
            signature = record.get("signature") or {}
            message = record.get("eventId") or record.get("id")
            if record.get("replayed"):
                passed_over[record.get("id")] = f"{message}: a replayed Message-ID"
                return None
            if must_verify and signature.get("valid") is not True:
                why = signature.get("reason") or "not signed"
                passed_over[record.get("id")] = f"{message}: {why}"
                return None
            body = record.get("request", {}).get("body")
            try:
                parsed = x12.parse(body if isinstance(body, str) else "")
            except x12.X12Error:
                return None
            return parsed if _wanted(action.set_id, sent, parsed) else None

        start = sent.started_iso if sent else since
        found = await _traffic_until(runner, start, action.timeout_ms, action.interval_ms, pick)
        if found is None:
            _no_ack(outcome, sent, action)
            raise _error(
                "timeout",
                f"{waited_for} did not arrive over AS2 within {action.timeout_ms} ms"
                + _passed_over("message(s)", passed_over),
            )
        record, parsed = found
        seen = time.monotonic()
        text = record["request"]["body"]
        root["as2"] = {
            "messageId": record.get("eventId", ""),
            "from": _header(record, "as2-from"),
            "signature": record.get("signature", {}),
            "receivedAt": record.get("receivedAt", ""),
        }
        received = _record(
            "interchange", f"AS2 {record.get('eventId', '')}", text.encode(), cap,
            messageId=record.get("eventId", ""), receivedAt=record.get("receivedAt", ""),
        )  # fmt: skip
        received["sha256"] = record.get("request", {}).get("bodySha256") or received["sha256"]
    else:
        parsed, received, seen = await _receive_file(
            runner, outcome, action, step, endpoint, sent, root, cap
        )
    outcome.data["received"] = received
    outcome.data["receivedAt"] = received.get("receivedAt") or runner.now_iso()
    root["interchange"] = parsed.to_dict()
    if sent is not None and action.set_id == "997":
        outcome.data["ackMs"] = round((seen - sent.monotonic) * 1000, 1)
    outcome.notes.append(
        f"{action.set_id} received: ISA13 {parsed.control} from {parsed.sender}"
        + (f" ({len(parsed.errors)} envelope error(s))" if parsed.errors else "")
    )
    if parsed.errors and not asserts_on(step, "interchange.valid", "interchange.errors"):
        raise _error(
            "invalid", "the partner's interchange is not valid: " + "; ".join(parsed.errors[:5])
        )
    if action.set_id == "997":
        ack = x12.read_functional_ack(parsed)
        reason = x12.rejection_reason(ack)
        ack["accepted"] = not reason
        ack["reason"] = reason
        root["ack"] = ack
        outcome.data["ack"] = {"accepted": not reason, "reason": reason}
        if action.expect == "accepted" and reason:
            raise _error("rejected", f"the partner's 997 rejects what we sent: {reason}")
        if action.expect == "rejected" and not reason:
            raise _error(
                "accepted", "the partner's 997 accepts what we sent, and a rejection was expected"
            )
        outcome.notes.append("997: " + (f"rejected ({reason})" if reason else "accepted"))
    return root


def _header(record: dict[str, Any], name: str) -> str:
    for key, value in (record.get("request", {}).get("headers") or {}).items():
        if key.lower() == name:
            return str(value).strip().strip('"')
    return ""


def _no_ack(outcome: StepOutcome, sent: Sent | None, action: X12Receive) -> None:
    """A 997 that did not come: how long we waited, for the ack SLA (other sets are answers,
    not acknowledgements, and say nothing about it)."""
    if sent is not None and action.set_id == "997":
        outcome.data["noAckWithinMs"] = round((time.monotonic() - sent.monotonic) * 1000, 1)


async def _receive_file(
    runner: ScenarioRunner,
    outcome: StepOutcome,
    action: X12Receive,
    step: Any,
    endpoint: EndpointConfig,
    sent: Sent | None,
    root: dict[str, Any],
    cap: int,
) -> tuple[x12.Interchange, dict[str, Any], float]:
    import fnmatch

    from certification.engine import pgp, sftp

    pattern = str(render(action.pattern, runner._scope()))
    deadline = time.perf_counter() + action.timeout_ms / 1000
    folder = sftp.directory(endpoint, action.directory)
    passed_over: dict[str, str] = {}  # file -> why it is not the one (for the timeout message)
    examined: set[tuple[str, int, float]] = set()
    try:
        async with sftp.open_session(
            endpoint, policy=runner.policy, timeout_ms=runner.context.request_timeout_ms
        ) as session:
            while True:
                for remote in await session.listdir(action.directory):
                    name = remote.name
                    seen_as = (name, remote.size, remote.mtime)
                    if name in runner.files_taken or seen_as in examined:
                        continue
                    if not fnmatch.fnmatchcase(name, pattern):
                        continue
                    examined.add(seen_as)
                    data = await session.read(action.directory, name)
                    path = f"{folder}/{name}"
                    try:
                        plain, text, sealed = await pgp.open_from(
                            endpoint.auth_config, endpoint.secrets, name, data
                        )
                    except pgp.PgpError as exc:
                        passed_over[name] = f"{name}: {exc}"
                        continue
                    if sealed["encrypted"] and not sealed.get("decrypted"):
                        passed_over[name] = (
                            f"{name}: PGP-encrypted, and the endpoint has no PGP private key"
                        )
                        continue
                    try:
                        parsed = x12.parse(text.decode("utf-8", "replace"))
                    except x12.X12Error:
                        passed_over[name] = f"{name}: not an X12 interchange"
                        continue
                    if not _wanted(action.set_id, sent, parsed):
                        continue
                    problem = pgp_signature_problem(step, endpoint, sealed)
                    if problem:
                        raise _error("pgp", f"{path}: {problem}")
                    runner.files_taken.add(name)
                    root["file"] = {**sftp.describe(plain, text, path), "pgp": sealed}
                    when = datetime.fromtimestamp(remote.mtime, UTC).isoformat()
                    record = _record(
                        "interchange", name, text, cap, path=path,
                        receivedAt=when.replace("+00:00", "Z"),
                    )  # fmt: skip
                    if sealed["encrypted"]:
                        record["pgp"] = sealed
                    return parsed, record, time.monotonic()
                if time.perf_counter() >= deadline:
                    break
                await asyncio.sleep(action.interval_ms / 1000)
    except sftp.SftpError as exc:
        raise _error(exc.kind, str(exc)) from None
    _no_ack(outcome, sent, action)
    raise _error(
        "timeout",
        f"no {action.set_id} matching '{pattern}' appeared in {folder} within "
        f"{action.timeout_ms} ms" + _passed_over("matching file(s)", passed_over),
    )
