"""Demo file partner: an SFTP server (asyncssh) whose poller processes inventory files as the
B2B playbook's batch rules say, so that a file partner (p_002 Globex) can be certified.

``make run`` starts it on port 8022 (``SFTP_PORT``) with files under ``var/sftp/``; tests start
it in-process (:class:`SftpPartner`). It does not import Django.

What the poller does with ``inbox/globex_inventory_YYYYMMDDThhmmssZ_NNN.csv``:

1. It waits for the file's manifest (``<name>.manifest.json``, dropped last). A file without one
   after ``MANIFEST_GRACE_S`` is rejected ("missing manifest").
2. If a sidecar ``<name>.sha256`` is there, the file must have that sha256.
3. The CSV must have the header ``sku,quantity`` (more columns allowed) and, on every line, a
   SKU and a whole quantity ≥ 0; the manifest's ``records`` and ``totals.quantity`` must match.
4. A sequence (``NNN``) already accepted is a duplicate (playbook B-101): ignored.

Any problem rejects the whole file: it moves to ``error/`` and ``error/<base>.errors.csv``
lists ``line,error`` (line 0 for a problem of the whole file). Otherwise it moves to
``archive/`` and ``outbox/<base>.ack`` says ``{"file", "status": "accepted", "records",
"totals": {"quantity"}, "sha256"}``. Names starting with ``.`` (uploads in progress) are never
touched: an upload that is never renamed is never processed.

With a PGP key (``make run``: Globex is ``ssh+pgp``) the partner takes only
``<name>.csv.pgp`` files encrypted to it: it publishes its public key as
``pub/globex_pgp.asc``, decrypts each file before the checks above (the sidecar covers the
uploaded bytes, the manifest and the ACK's ``sha256`` the CSV inside) and rejects a file in
clear or one it cannot decrypt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import asyncssh

USER, PASSWORD = "globex", "globex-sftp-demo-password"
DIRECTORIES = ("inbox", "outbox", "archive", "error")
NAME = re.compile(r"(?P<flow>[a-z0-9]+_[a-z0-9]+)_(?P<stamp>\d{8}T\d{6}Z)_(?P<seq>\d{3,20})\.csv")
MANIFEST_GRACE_S = 2.0
PGP_PUBLIC_KEY = "globex_pgp.asc"  # under pub/ of the SFTP root
POLL_S = 0.05


class SftpServer:
    """An SFTP server on ``host``: password login (``users``) and, if given, public keys;
    files under ``root`` (chrooted); a fixed ed25519 host key."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: dict[str, str] | None = None,
        client_key: asyncssh.SSHKey | None = None,
        host_key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.root = root
        self.host = host
        self.port = port
        self.users = users if users is not None else {USER: PASSWORD}
        self.client_key = client_key
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.logged_in = threading.Event()  # set at the first successful login (tests wait)
        self._server: Any = None

    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    @property
    def url(self) -> str:
        return f"sftp://{self.host}:{self.port}"

    async def start(self) -> None:
        for folder in DIRECTORIES:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        users, client_key, outer = self.users, self.client_key, self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                ok = users.get(username) == password
                if ok:
                    outer.logged_in.set()
                return ok

            def public_key_auth_supported(self) -> bool:
                return client_key is not None

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return (
                    username in users
                    and client_key is not None
                    and key.export_public_key() == client_key.export_public_key()
                )

        root = str(self.root).encode()
        self._server = await asyncssh.create_server(
            Server,
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            allow_scp=False,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class InventoryProcessor:
    """The partner's poller (see the module docstring); ``accepted`` holds the sequences."""

    def __init__(self, root: Path, *, pgp_key: str = "") -> None:
        self.root = root
        self.pgp_key = pgp_key  # armored private key: files must be encrypted to it
        self.accepted: set[str] = set()
        self._first_seen: dict[str, float] = {}

    def process_once(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        inbox = self.root / "inbox"
        for path in sorted([*inbox.glob("*.csv"), *inbox.glob("*.csv.pgp")]):
            if path.name.startswith("."):
                continue
            manifest = inbox / f"{path.name}.manifest.json"
            if not manifest.exists():
                first = self._first_seen.setdefault(path.name, now)
                if now - first >= MANIFEST_GRACE_S:
                    self._reject(path, [(0, "missing manifest")])
                continue
            self._first_seen.pop(path.name, None)
            self._process(path, manifest)

    def _process(self, path: Path, manifest_path: Path) -> None:
        errors: list[tuple[int, str]] = []
        uploaded = path.read_bytes()
        data = self._content(path, uploaded, errors)
        digest = hashlib.sha256(data).hexdigest()
        match = NAME.fullmatch(path.name.removesuffix(".pgp"))
        if match is None:
            errors.append((0, "file name is not <partner>_<flow>_YYYYMMDDThhmmssZ_<seq>.csv"))
        elif match.group("seq") in self.accepted:
            errors.append((0, f"duplicate sequence {match.group('seq')}: already processed"))
        sidecar = path.with_name(f"{path.name}.sha256")
        if sidecar.exists():
            expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
            if expected != hashlib.sha256(uploaded).hexdigest():
                errors.append((0, "checksum mismatch: the .sha256 sidecar does not match"))
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = None
            errors.append((0, "manifest is not JSON"))
        records, total = self._check_rows(data, errors)
        if isinstance(manifest, dict) and not errors:
            if manifest.get("records") != records:
                errors.append(
                    (0, f"manifest says {manifest.get('records')} records, the file has {records}")
                )
            stated = (manifest.get("totals") or {}).get("quantity")
            if stated != total:
                errors.append(
                    (0, f"manifest's quantity total is {stated}, the rows add up to {total}")
                )
        if errors:
            self._reject(path, errors)
            return
        assert match is not None
        self.accepted.add(match.group("seq"))
        ack = {
            "file": path.name,
            "status": "accepted",
            "records": records,
            "totals": {"quantity": total},
            "sha256": digest,
        }
        (self.root / "outbox" / f"{_base(path)}.ack").write_text(json.dumps(ack, sort_keys=True))
        self._move(path, "archive")

    def _content(self, path: Path, uploaded: bytes, errors: list[tuple[int, str]]) -> bytes:
        """The CSV a file holds: decrypted when the partner takes PGP files."""
        encrypted = path.name.endswith(".pgp")
        if not self.pgp_key:
            if encrypted:
                errors.append((0, "PGP-encrypted file, but no PGP key is agreed: send it in clear"))
            return uploaded
        if not encrypted:
            errors.append((0, "files must be PGP-encrypted to our key (<name>.csv.pgp)"))
            return uploaded
        from certification.engine import pgp

        try:
            return pgp.decrypt(uploaded, self.pgp_key).data
        except pgp.PgpError as exc:
            errors.append((0, f"cannot decrypt the file: {exc}"))
            return b""

    @staticmethod
    def _check_rows(data: bytes, errors: list[tuple[int, str]]) -> tuple[int, int]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            errors.append((0, "not UTF-8 text"))
            return 0, 0
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0][:2] != ["sku", "quantity"]:
            errors.append((1, "header must start with sku,quantity"))
            return 0, 0
        total = 0
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(rows[0]):
                errors.append((line, f"{len(row)} values, the header has {len(rows[0])}"))
                continue
            if not row[0].strip():
                errors.append((line, "sku is empty"))
            if not row[1].isdigit():
                errors.append((line, f"quantity {row[1]!r} is not a whole number"))
            else:
                total += int(row[1])
        return len(rows) - 1, total

    def _reject(self, path: Path, errors: list[tuple[int, str]]) -> None:
        base = _base(path)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["line", "error"])
        writer.writerows(errors)
        (self.root / "error" / f"{base}.errors.csv").write_text(out.getvalue())
        self._move(path, "error")

    def _move(self, path: Path, folder: str) -> None:
        for companion in (path, path.with_name(f"{path.name}.sha256"),
                          path.with_name(f"{path.name}.manifest.json")):  # fmt: skip
            if companion.exists():
                companion.replace(self.root / folder / companion.name)


def _base(path: Path) -> str:
    """The name without ``.csv`` or ``.csv.pgp``: what the ACK and error files are called."""
    return path.name.removesuffix(".pgp").removesuffix(".csv")


class SftpPartner:
    """The demo file partner in-process (tests, ``make run``): the server and its poller on a
    thread of their own."""

    def __init__(
        self, root: Path, *, host: str = "127.0.0.1", port: int = 0, pgp_key: str = ""
    ) -> None:
        self.server = SftpServer(root, host=host, port=port)
        self.processor = InventoryProcessor(root, pgp_key=pgp_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> SftpPartner:
        self._thread = threading.Thread(target=self._run, daemon=True, name="sftp-partner")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the demo SFTP partner did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self.server.start()
        self._ready.set()
        while not self._stopping.is_set():
            self.processor.process_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_S)
        await self.server.stop()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)


def stored_pgp_key(root: Path) -> str:
    """Globex's PGP private key, kept beside the SFTP root (made on first use, so restarts keep
    what Certdash was given); its public key is published as ``<root>/pub/globex_pgp.asc``."""
    from certification.engine import pgp

    key_file = root.parent / "sftp_pgp_key.asc"
    public_file = root / "pub" / PGP_PUBLIC_KEY
    if key_file.exists():
        private = key_file.read_text()
    else:
        private, _ = pgp.generate("Globex files", "files@globex.example")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(private)
        key_file.chmod(0o600)
    if not public_file.exists():
        public_file.parent.mkdir(parents=True, exist_ok=True)
        public_file.write_text(pgp.public_key(private))
    return private


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8022)
    parser.add_argument("--root", type=Path, default=Path("var/sftp"))
    parser.add_argument(
        "--pgp", action="store_true", help="take PGP-encrypted files only (Globex is ssh+pgp)"
    )
    args = parser.parse_args(argv)
    key_file = args.root.parent / "sftp_host_key"
    if key_file.exists():
        host_key = asyncssh.import_private_key(key_file.read_text())
    else:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(host_key.export_private_key().decode())
    pgp_key = stored_pgp_key(args.root) if args.pgp else ""
    partner = SftpPartner(args.root, host=args.host, port=args.port, pgp_key=pgp_key)
    partner.server.host_key = host_key
    with partner:
        print(f"Demo SFTP partner listening on {partner.url} (files in {args.root})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
