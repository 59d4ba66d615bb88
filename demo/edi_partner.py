"""The demo EDI partner, Initech (p_003): an AS2 server that answers 850 purchase orders.

``python -m demo.edi_partner --port 8023`` listens on ``/as2``. Every message must be signed
(and may be encrypted) with S/MIME by a trading partner whose profile it knows; it answers at
once with a signed MDN stating the MIC of what arrived, then posts to the partner's AS2 URL,
signed and encrypted: a 997 for the interchange and, for each 850 it accepted, an 855.

- An interchange whose ISA13 it has seen from that sender before is a duplicate: the MDN
  says ``processed/warning: duplicate-document`` and the 997 rejects every set (B-104); no
  855 is sent.
- An 850 line with a quantity that is not a positive number is a segment in error: the 997
  rejects that set (AK5 R 5) and no 855 is sent for it.
- Envelope errors (counts, control numbers) are answered with a 997 rejecting the group.

A trading partner is set up as a real one is onboarded: ``POST /_partner/profile`` with
``{"as2_id", "url", "certificate_pem"}``; ``GET /_partner/certificate`` hands out Initech's
certificate. ``GET /_partner/received`` lists what arrived and what was sent back (for
tests); ``GET /health``. Its key and certificate live in ``--keys`` (made on first start).
"""

from __future__ import annotations

import argparse
import email.utils
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from certification.engine import as2, x12
from demo.as2_keys import stored

AS2_ID = "INITECH"
logger = logging.getLogger("initech")


class Initech:
    """The partner's state: its keys, its trading partners, what it has seen and sent."""

    def __init__(self, keys_dir: Path, *, reply_delay_s: float = 0.2) -> None:
        self.key_pem, self.certificate_pem = stored(keys_dir, AS2_ID)
        self.profiles: dict[str, dict[str, str]] = {}
        self.seen: set[tuple[str, str]] = set()
        self.log: list[dict[str, Any]] = []
        self.reply_delay_s = reply_delay_s
        # Failure injection, for tests: "wrong_mic" (the MDN states another MIC),
        # "foreign_signature" (the MDN is signed with a key that is not Initech's), "silent"
        # (no 997 or 855 is sent).
        self.faults: set[str] = set()
        self._controls = itertools.count(int(time.time()) % 100_000 * 1000 + 1)
        self._lock = threading.Lock()
        self._answering: list[threading.Thread] = []

    def wait_idle(self, timeout_s: float = 15.0) -> None:
        """Until every 997 and 855 being sent has been answered (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads, self._answering = self._answering, []
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def keys_for(self, sender: str) -> as2.Keys:
        profile = self.profiles.get(sender, {})
        return as2.Keys(self.key_pem, self.certificate_pem, profile.get("certificate_pem", ""))

    def next_control(self) -> int:
        with self._lock:
            return next(self._controls) % 999_999_999 or 1

    # ------------------------------------------------------------------ receiving

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        sender = headers.get("as2-from", "").strip('"')
        message_id = headers.get("message-id", "")
        if sender not in self.profiles:
            return 403, {"Content-Type": "text/plain"}, f"unknown AS2 partner {sender!r}".encode()
        keys = self.keys_for(sender)
        micalg = "sha256"
        options = headers.get("disposition-notification-options", "").lower()
        if "sha1" in options or "sha-1" in options:
            micalg = "sha1"
        entry: dict[str, Any] = {"from": sender, "messageId": message_id, "sent": []}
        try:
            inbound = as2.open_message(headers.get("content-type", ""), body, keys)
        except as2.As2Error as exc:
            entry["error"] = str(exc)
            self.log.append(entry)
            return self._mdn(headers, keys, "processed/error: decryption-failed", "", micalg)
        received_mic = inbound.mic(micalg)
        if not inbound.signed or inbound.signature_reason:
            entry["error"] = inbound.signature_reason or "unsigned"
            self.log.append(entry)
            return self._mdn(
                headers, keys, "processed/error: authentication-failed", received_mic, micalg
            )
        text = inbound.payload.decode("utf-8", "replace")
        try:
            interchange = x12.parse(text)
        except x12.X12Error as exc:
            entry["error"] = str(exc)
            self.log.append(entry)
            return self._mdn(
                headers, keys, "processed/error: unexpected-processing-error", received_mic, micalg
            )
        entry.update(control=interchange.control, valid=interchange.valid)
        key = (sender, interchange.control)
        duplicate = key in self.seen
        self.seen.add(key)
        entry["duplicate"] = duplicate
        self.log.append(entry)
        disposition = "processed/warning: duplicate-document" if duplicate else as2.PROCESSED
        answering = threading.Thread(
            target=self._answer, args=(sender, interchange, duplicate, entry), daemon=True
        )
        with self._lock:
            self._answering = [t for t in self._answering if t.is_alive()] + [answering]
        answering.start()
        return self._mdn(headers, keys, disposition, received_mic, micalg)

    def _mdn(
        self, headers: dict[str, str], keys: as2.Keys, disposition: str, mic: str, micalg: str
    ) -> tuple[int, dict[str, str], bytes]:
        sign = "signed-receipt-protocol" in headers.get("disposition-notification-options", "")
        if "wrong_mic" in self.faults and mic:
            mic = as2.mic(b"not what arrived", micalg)
        if "foreign_signature" in self.faults:
            from demo.as2_keys import self_signed

            keys = as2.Keys(*self_signed(AS2_ID), keys.partner_certificate_pem)
        mdn_headers, mdn_body = as2.build_mdn(
            original_message_id=headers.get("message-id", ""),
            sender=headers.get("as2-from", "").strip('"'),
            receiver=AS2_ID,
            disposition=disposition,
            received_mic=mic,
            sign_with=keys if sign else None,
            micalg=micalg,
        )
        return 200, mdn_headers, mdn_body

    # ------------------------------------------------------------------ answering

    def _rejections(self, interchange: x12.Interchange, duplicate: bool) -> dict[str, str]:
        rejected: dict[str, str] = {}
        for group in interchange.groups:
            for ts in group.sets:
                if duplicate or not interchange.valid:
                    rejected[ts.control] = ""
                    continue
                for segment in ts.segments:
                    quantity = segment[2] if segment[0] == "PO1" and len(segment) > 2 else "1"
                    try:
                        bad = float(quantity) <= 0
                    except ValueError:
                        bad = True
                    if bad:
                        rejected[ts.control] = "5"
        return rejected

    def _answer(
        self, sender: str, interchange: x12.Interchange, duplicate: bool, entry: dict[str, Any]
    ) -> None:
        time.sleep(self.reply_delay_s)
        if "silent" in self.faults:
            return
        env = x12.Envelope(
            sender=AS2_ID, receiver=interchange.sender, usage=interchange.usage or "T"
        )
        rejected = self._rejections(interchange, duplicate)
        control = self.next_control()
        ack = x12.functional_ack(
            interchange, rejected=rejected, interchange_control=control, envelope=env
        )
        self._post(sender, ack, "997", entry)
        if duplicate:
            return
        for group in interchange.groups:
            for ts in group.sets:
                if ts.set_id != "850" or ts.control in rejected:
                    continue
                body = _acknowledgement(ts)
                control = self.next_control()
                text = x12.build(
                    [("855", body)],
                    interchange_control=control, group_control=control, first_set_control=1,
                    envelope=env,
                )  # fmt: skip
                self._post(sender, text, "855", entry)

    def _post(self, sender: str, text: str, set_id: str, entry: dict[str, Any]) -> None:
        profile = self.profiles.get(sender, {})
        url = profile.get("url", "")
        record: dict[str, Any] = {"set": set_id, "to": url}
        entry["sent"].append(record)
        if not url:
            record["status"] = "no URL in the profile"
            return
        keys = self.keys_for(sender)
        message = as2.build_message(text.encode(), keys=keys, signed=True, encrypted=True)
        headers = {
            "AS2-Version": "1.2", "AS2-From": AS2_ID, "AS2-To": sender,
            "Message-ID": f"<{uuid.uuid4().hex}@initech.example>", "MIME-Version": "1.0",
            "Date": email.utils.formatdate(usegmt=True), "Content-Type": message.content_type,
            "Subject": f"X12 {set_id}", "Disposition-Notification-To": AS2_ID,
            "Disposition-Notification-Options": (
                "signed-receipt-protocol=optional, pkcs7-signature; "
                "signed-receipt-micalg=optional, sha256"
            ),
        }  # fmt: skip
        request = urllib.request.Request(url, data=message.body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (demo)
                answer = response.read()
                record["status"] = response.status
                try:
                    mdn = as2.read_mdn(response.headers.get("Content-Type", ""), answer, keys=keys)
                    record["mdn"] = mdn.get("disposition", "")
                except as2.As2Error as exc:
                    record["mdn"] = f"unreadable: {exc}"
        except (urllib.error.URLError, OSError) as exc:
            record["status"] = f"failed: {exc}"
        logger.info("sent %s to %s: %s", set_id, url, record.get("status"))


def _acknowledgement(order: x12.TransactionSet) -> list[list[str]]:
    """An 855 accepting every line of ``order`` as ordered."""
    po = next((s[3] for s in order.segments if s[0] == "BEG" and len(s) > 3), "")
    today = datetime.now(UTC).strftime("%Y%m%d")
    body: list[list[str]] = [["BAK", "00", "AC", po, today]]
    lines = 0
    for segment in order.segments:
        if segment[0] != "PO1":
            continue
        lines += 1
        body.append(segment[:])
        quantity = segment[2] if len(segment) > 2 else ""
        unit = segment[3] if len(segment) > 3 else "EA"
        body.append(["ACK", "IA", quantity, unit])
    body.append(["CTT", str(lines)])
    return body


def handler_for(partner: Initech) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "InitechAS2/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(length, 16 * 1024 * 1024))

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/health":
                self._json(200, {"status": "ok", "as2Id": AS2_ID})
            elif self.path == "/_partner/certificate":
                self._send(200, {"Content-Type": "application/x-pem-file"},
                           partner.certificate_pem.encode())  # fmt: skip
            elif self.path == "/_partner/received":
                self._json(200, partner.log)
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            if self.path == "/_partner/profile":
                try:
                    profile = json.loads(body)
                    as2_id = str(profile["as2_id"])
                    as2.load_certificate(str(profile["certificate_pem"]), "certificate_pem")
                except (ValueError, KeyError, TypeError, as2.As2Error) as exc:
                    self._json(
                        400, {"error": f"a profile needs as2_id, url, certificate_pem: {exc}"}
                    )
                    return
                partner.profiles[as2_id] = {
                    "url": str(profile.get("url", "")),
                    "certificate_pem": str(profile["certificate_pem"]),
                }
                self._json(200, {"as2Id": as2_id, "profiles": sorted(partner.profiles)})
            elif self.path.rstrip("/") in ("/as2", "/as2/receive"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*partner.receive(headers, body))
            else:
                self._json(404, {"error": "not found"})

    return Handler


class EdiPartnerServer:
    """Initech on a background thread, for tests: ``with EdiPartnerServer(dir) as server``."""

    def __init__(self, keys_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.partner = Initech(keys_dir)
        self.httpd = ThreadingHTTPServer((host, port), handler_for(self.partner))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EdiPartnerServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # What Initech still posts to Certdash lands before the test's database is emptied.
        self.partner.wait_idle()
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8023)
    parser.add_argument("--keys", type=Path, default=Path("var/as2"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s initech %(message)s")
    partner = Initech(args.keys)
    httpd = ThreadingHTTPServer((args.host, args.port), handler_for(partner))
    logger.info("Initech AS2 on http://%s:%s/as2 (AS2 ID %s)", args.host, args.port, AS2_ID)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
