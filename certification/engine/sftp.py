"""SFTP for file partners: connect through the address policy with a pinned host key, upload
atomically (temporary name, then rename), list, read, and wait for a file to appear.

Pure asyncio on ``asyncssh`` (maintained, async like the rest of the engine, and it also serves
SFTP in tests), no Django. An endpoint is ``sftp://host[:port][/root]`` with auth kind
``ssh_password`` (``username`` + secret ``password``) or ``ssh_key`` (``username`` + secret
``private_key_pem``); its ``host_key`` setting (an OpenSSH public key line) is required and
every connection is refused unless the server presents exactly that key. Directories
(``inbox_dir``, ``outbox_dir``, ``archive_dir``, ``error_dir``) are relative to the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import posixpath
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from certification.engine.model import EndpointConfig
from certification.engine.netpolicy import AddressPolicy, UrlRefused

DEFAULT_DIRS = {"inbox": "inbox", "outbox": "outbox", "archive": "archive", "error": "error"}
MAX_READ_BYTES = 10 * 1024 * 1024


class SftpError(Exception):
    """Why an SFTP action could not complete: ``kind`` is a failure kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: float


def _target(endpoint: EndpointConfig) -> tuple[str, int, str]:
    parts = urlsplit(endpoint.base_url)
    if parts.scheme != "sftp" or not parts.hostname:
        raise SftpError("bad_url", f"endpoint '{endpoint.name}' is not an sftp:// URL")
    if parts.username or parts.password:
        raise SftpError(
            "bad_url", f"endpoint '{endpoint.name}': put the user in its settings, not the URL"
        )
    return parts.hostname, parts.port or 22, parts.path.rstrip("/") or "."


def directory(endpoint: EndpointConfig, which: str) -> str:
    """The remote path of ``which`` (inbox, outbox, archive, error, or a relative path)."""
    _, _, root = _target(endpoint)
    name = endpoint.auth_config.get(f"{which}_dir") or DEFAULT_DIRS.get(which, which)
    path = posixpath.normpath(posixpath.join(root, name))
    if path.startswith("..") or "/../" in f"/{path}/":
        raise SftpError("bad_url", f"directory '{which}' leaves the endpoint's root")
    return path


class Session:
    """One SFTP session to an endpoint; use ``async with open_session(...)``."""

    def __init__(self, conn: Any, sftp: Any, endpoint: EndpointConfig) -> None:
        self._conn = conn
        self.sftp = sftp
        self.endpoint = endpoint

    async def upload(self, which: str, name: str, data: bytes, *, rename: bool = True) -> str:
        """Write ``data`` as ``<dir>/.<name>.part`` and rename it to ``<dir>/<name>`` (the
        playbook's atomic upload: a poller never sees half a file). Returns the final path;
        without ``rename`` the temporary one (an upload that never completed)."""
        if "/" in name or name.startswith(".") or not name:
            raise SftpError(
                "bad_url", f"file name '{name}' must not contain '/' nor start with '.'"
            )
        folder = directory(self.endpoint, which)
        final = posixpath.join(folder, name)
        temporary = posixpath.join(folder, f".{name}.part")
        try:
            async with self.sftp.open(temporary, "wb") as remote:
                await remote.write(data)
            if not rename:
                return temporary
            await self.sftp.posix_rename(temporary, final)
        except Exception as exc:  # asyncssh.SFTPError and OSError alike
            raise SftpError("sftp_error", f"upload of {final} failed: {_reason(exc)}") from None
        return final

    async def listdir(self, which: str) -> list[RemoteFile]:
        folder = directory(self.endpoint, which)
        try:
            entries = await self.sftp.readdir(folder)
        except Exception as exc:
            raise SftpError("sftp_error", f"cannot list {folder}: {_reason(exc)}") from None
        files = [
            RemoteFile(e.filename, int(e.attrs.size or 0), float(e.attrs.mtime or 0))
            for e in entries
            if e.filename not in (".", "..") and not e.filename.startswith(".")
        ]
        return sorted(files, key=lambda f: f.name)

    async def read(self, which: str, name: str) -> bytes:
        path = posixpath.join(directory(self.endpoint, which), name)
        try:
            async with self.sftp.open(path, "rb") as remote:
                data = await remote.read(MAX_READ_BYTES + 1)
        except Exception as exc:
            raise SftpError("sftp_error", f"cannot read {path}: {_reason(exc)}") from None
        if len(data) > MAX_READ_BYTES:
            raise SftpError("too_large", f"{path} is over {MAX_READ_BYTES} bytes")
        return data

    async def wait_for(
        self, which: str, pattern: str, *, timeout_ms: int, interval_ms: int, ignore: set[str]
    ) -> RemoteFile:
        """The first file (by name) matching the glob ``pattern`` not in ``ignore``."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            for found in await self.listdir(which):
                if fnmatch.fnmatchcase(found.name, pattern) and found.name not in ignore:
                    return found
            if time.monotonic() >= deadline:
                raise SftpError(
                    "timeout",
                    f"no file matching '{pattern}' appeared in {directory(self.endpoint, which)}"
                    f" within {timeout_ms} ms",
                )
            await asyncio.sleep(min(interval_ms / 1000, max(0.0, deadline - time.monotonic())))


class open_session:  # noqa: N801 - used as ``async with open_session(...)``
    def __init__(self, endpoint: EndpointConfig, *, policy: AddressPolicy, timeout_ms: int) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.timeout_ms = timeout_ms
        self._conn: Any = None
        self._sftp: Any = None

    async def __aenter__(self) -> Session:
        import asyncssh

        endpoint = self.endpoint
        host, port, _ = _target(endpoint)
        try:
            target = await self.policy.check_url_async(f"http://{host}:{port}/")
        except UrlRefused as exc:
            raise SftpError("blocked_address", str(exc)) from None
        pinned = endpoint.auth_config.get("host_key", "").strip()
        if not pinned:
            raise SftpError("error", f"endpoint '{endpoint.name}' has no pinned host key")
        try:
            trusted = asyncssh.import_public_key(pinned)
        except (asyncssh.KeyImportError, ValueError):
            raise SftpError("error", f"endpoint '{endpoint.name}': host_key is not a key") from None
        options: dict[str, Any] = {
            "username": endpoint.auth_config.get("username", ""),
            "known_hosts": ([trusted], [], []),
            "connect_timeout": max(1.0, self.timeout_ms / 1000),
            "login_timeout": max(1.0, self.timeout_ms / 1000),
        }
        if endpoint.auth_kind == "ssh_key":
            try:
                key = asyncssh.import_private_key(endpoint.secrets.get("private_key_pem", ""))
            except (asyncssh.KeyImportError, ValueError):
                raise SftpError("error", f"endpoint '{endpoint.name}': bad private key") from None
            options.update(client_keys=[key], password=None)
        else:
            options.update(client_keys=None, password=endpoint.secrets.get("password", ""))
        try:
            self._conn = await asyncssh.connect(str(target.addresses[0]), port, **options)
            self._sftp = await self._conn.start_sftp_client()
        except asyncssh.HostKeyNotVerifiable:
            raise SftpError(
                "tls_error", f"{host}:{port} presented a host key other than the pinned one"
            ) from None
        except asyncssh.PermissionDenied:
            raise SftpError("auth", f"{host}:{port} refused the credentials") from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "refused"
            raise SftpError(kind, f"cannot connect to {host}:{port}: {_reason(exc)}") from None
        return Session(self._conn, self._sftp, endpoint)

    async def __aexit__(self, *exc: object) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:200]


def _number(text: str) -> int | float | None:
    import re

    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[+-]?[0-9]+\.[0-9]+", text):
        return float(text)
    return None


def column_sums(header: list[str], rows: list[list[Any]]) -> dict[str, int | float]:
    """The sum of each column whose every value is a number (a numeric string counts): the
    control totals of a manifest."""
    sums: dict[str, int | float] = {}
    for index, column in enumerate(header):
        values = []
        for row in rows:
            value = row[index] if index < len(row) else None
            if isinstance(value, bool) or value is None:
                break
            number = value if isinstance(value, int | float) else _number(str(value).strip())
            if number is None:
                break
            values.append(number)
        else:
            if rows:
                total = sum(values)
                sums[column] = round(total, 6) if isinstance(total, float) else total
    return sums


def build_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode()


def describe(name: str, data: bytes, path: str = "") -> dict[str, Any]:
    """A file as assertions see it: ``name``, ``path``, ``size``, ``sha256``, and when it is
    UTF-8 text ``text`` and ``lines``; ``json`` when it parses as JSON; ``csv`` (``header``,
    ``rows``, ``records``, ``sums`` of the numeric columns, ``errors`` with their line) when
    the name ends in ``.csv``."""
    import csv
    import io
    import json

    out: dict[str, Any] = {
        "name": name,
        "path": path,
        "size": len(data),
        "sha256": sha256_hex(data),
    }
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return out
    out["text"] = text
    out["lines"] = text.splitlines()
    with contextlib.suppress(ValueError):
        out["json"] = json.loads(text)
    if name.lower().endswith(".csv"):
        reader = csv.reader(io.StringIO(text))
        table = list(reader)
        header, rows = (table[0], table[1:]) if table else ([], [])
        errors = [
            f"line {n}: {len(row)} values, the header has {len(header)}"
            for n, row in enumerate(rows, start=2)
            if len(row) != len(header)
        ]
        out["csv"] = {
            "header": header,
            "rows": rows,
            "records": len(rows),
            "sums": column_sums(header, rows),
            "errors": errors,
        }
    return out
