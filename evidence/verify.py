"""Checking an evidence bundle: everything VERIFY.txt asks an auditor to do, in one call.

Plain Python with ``cryptography``: no database, no settings. Zip members are read as streams,
so a bundle of any size is checked in constant memory. Checks run in a fixed order and stop at
the first that fails, which names the file or record at fault:

1. the zip can be read (else :class:`UnreadableBundle`: not a zip, no such file);
2. ``SHA256SUMS`` is present and well-formed, ``SHA256SUMS.sig`` and ``signing-key.pem`` are
   present and are an Ed25519 signature and public key;
3. the signature of ``SHA256SUMS`` verifies with ``signing-key.pem``;
4. with ``key``, the bundle's key is that key (else the fingerprint is reported, to be compared
   with the published one);
5. every listed file is present with the listed SHA-256, and no file is unlisted;
6. the ``results.jsonl`` chain is whole;
7. ``certification.json``'s ``results.headSha256`` / ``results.records`` match the chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
KEY = "signing-key.pem"
RESULTS = "results.jsonl"
SUMMARY = "certification.json"
GENESIS = "0" * 64
CHUNK = 1024 * 1024
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  (\S(?:.*\S)?)")
_MAX_SMALL = 16 * 1024 * 1024  # SHA256SUMS, the key and certification.json are read whole


class UnreadableBundle(Exception):
    """The input is not a bundle that can be read at all (no such file, not a zip)."""


@dataclass(frozen=True)
class Check:
    """One check: ``subject`` is the file it is about, ``message`` what held or what did not."""

    subject: str
    ok: bool
    message: str

    def line(self) -> str:
        """``OK: <subject>: <message>`` or ``FAILED: ...``; a record reads ``results.jsonl
        record 17: ...``."""
        separator = " " if self.message.startswith("record ") else ": "
        return f"{'OK' if self.ok else 'FAILED'}: {self.subject}{separator}{self.message}"


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    fingerprint: str | None = None  # of the bundle's signing-key.pem
    key_checked: bool = False  # a --key was given and matched

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failure(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)


class _Stop(Exception):
    """Raised after the first failed check is recorded."""


# ----------------------------------------------------------------------------- keys


def fingerprint_of(key: Ed25519PublicKey) -> str:
    """``SHA256:<hex>`` over the DER SubjectPublicKeyInfo, as ``evidence.signing.fingerprint``
    (and ``openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum``)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (a private key PEM gives its public half). Raises
    ``ValueError``."""
    try:
        key: Any = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError("not a PEM public key") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key")
    return key


def expected_fingerprint(key: str) -> str:
    """The fingerprint ``--key`` stands for: ``SHA256:<hex>`` as given, or a PEM file's key.
    Raises ``UnreadableBundle`` for a value that is neither."""
    value = key.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):  # the hex digits `sha256sum` prints
        value = "SHA256:" + value
    if value.lower().startswith("sha256:"):
        digest = value[7:].strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise UnreadableBundle(f"--key {value}: a fingerprint is SHA256: and 64 hex digits")
        return "SHA256:" + digest
    try:
        data = Path(key).read_bytes()
    except OSError as exc:
        raise UnreadableBundle(
            f"--key {key}: cannot read it ({exc.strerror or type(exc).__name__}); give a PEM "
            "file or a fingerprint SHA256:..."
        ) from None
    try:
        return fingerprint_of(load_public_key(data))
    except ValueError as exc:
        raise UnreadableBundle(f"--key {key}: {exc}") from None


# ----------------------------------------------------------------------------- chain


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    message: str
    records: int = 0  # lines read
    head_sha256: str = ""


def verify_chain(lines: Iterable[bytes]) -> ChainResult:
    """Check a ``results.jsonl`` given as its lines (each with its newline, as a binary file
    yields them): every line is a JSON object, ``seq`` runs 0, 1, 2 ... and ``prev`` is the
    SHA-256 of the previous line without its newline, and the last record is ``end`` counting
    the records before it. A failure names the first record at fault (by ``seq`` position)."""
    prev = GENESIS
    last: dict[str, Any] | None = None
    count = 0
    for index, raw in enumerate(lines):
        if not raw.endswith(b"\n"):
            return ChainResult(False, f"record {index}: the line does not end with a newline")
        line = raw[:-1]
        if last is not None and last.get("type") == "end":
            return ChainResult(False, f"record {index}: follows the end record")
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return ChainResult(False, f"record {index}: not valid JSON")
        if not isinstance(record, dict):
            return ChainResult(False, f"record {index}: not a JSON object")
        if record.get("seq") != index:
            return ChainResult(
                False, f"record {index}: seq is {record.get('seq')!r}, expected {index}"
            )
        if record.get("prev") != prev:
            what = "64 zeros" if index == 0 else f"the sha256 of record {index - 1}"
            return ChainResult(False, f"record {index}: prev does not match {what}")
        prev = hashlib.sha256(line).hexdigest()
        last = record
        count = index + 1
    if last is None:
        return ChainResult(False, "empty: chain ends without its end record")
    if last.get("type") != "end":
        return ChainResult(False, "chain ends without its end record")
    if last.get("records") != count - 1:
        return ChainResult(
            False,
            f"record {count - 1}: the end record counts {last.get('records')!r} records, "
            f"the chain has {count - 1}",
        )
    return ChainResult(True, f"chain of {count} records intact, head {prev}", count, prev)


# ----------------------------------------------------------------------------- bundle


def _parse_sums(data: bytes) -> dict[str, str] | str:
    """SHA256SUMS as {name: hex}, or what is wrong with it."""
    if not data.endswith(b"\n"):
        return "does not end with a newline"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    sums: dict[str, str] = {}
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        match = _SUMS_LINE.fullmatch(line)
        if match is None:
            return f"line {number} is not '<64 lower-case hex digits>  <file name>'"
        digest, name = match.groups()
        if name in sums:
            return f"line {number} lists {name} a second time"
        if name in (SUMS, SIGNATURE):
            return f"line {number} lists {name}, which it cannot cover"
        sums[name] = digest
    if not sums:
        return "lists no files"
    return sums


def _read_small(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(_MAX_SMALL + 1)
    if len(data) > _MAX_SMALL:
        raise ValueError("too large")
    return data


def _sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while chunk := member.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(member: IO[bytes]) -> Iterator[bytes]:
    # A zip member is a buffered stream: its lines are read one at a time.
    yield from member


_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError)


class _Verifier:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.report = VerifyReport()

    def ok(self, subject: str, message: str) -> None:
        self.report.checks.append(Check(subject, True, message))

    def fail(self, subject: str, message: str) -> NoReturn:
        self.report.checks.append(Check(subject, False, message))
        raise _Stop

    def read(self, name: str) -> bytes:
        try:
            return _read_small(self.archive, name)
        except _CORRUPT as exc:
            self.fail(name, f"cannot be read from the zip ({exc})")

    def run(self, expected_key: str | None) -> VerifyReport:
        with contextlib.suppress(_Stop):  # the first failure ends the checks
            self._run(expected_key)
        return self.report

    def _run(self, expected_key: str | None) -> None:
        infos = [i for i in self.archive.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                self.fail(name, "appears twice in the zip")
            seen.add(name)
            if name.startswith("/") or "\\" in name or ".." in name.split("/"):
                self.fail(name, "unsafe file name in the zip")
        self.ok("zip", f"{len(names)} files")

        for required in (SUMS, SIGNATURE, KEY):
            if required not in seen:
                self.fail(required, "missing from the bundle")
        sums_bytes = self.read(SUMS)
        sums = _parse_sums(sums_bytes)
        if isinstance(sums, str):
            self.fail(SUMS, sums)
        self.ok(SUMS, f"lists {len(sums)} files")
        signature = self.read(SIGNATURE)
        if len(signature) != 64:
            self.fail(SIGNATURE, f"is {len(signature)} bytes, not a 64-byte Ed25519 signature")
        key_pem = self.read(KEY)
        try:
            public = load_public_key(key_pem)
        except ValueError as exc:
            self.fail(KEY, f"{exc} (an Ed25519 public key PEM was expected)")
        fp = fingerprint_of(public)
        self.report.fingerprint = fp
        self.ok(KEY, f"Ed25519 public key, fingerprint {fp}")

        try:
            public.verify(signature, sums_bytes)
        except InvalidSignature:
            self._signature_failed(sums)
        self.ok(SIGNATURE, f"signature of {SUMS} verifies with {KEY}")

        if expected_key is not None:
            if fp != expected_key:
                self.fail(KEY, f"fingerprint {fp} is not the expected {expected_key}")
            self.report.key_checked = True
            self.ok(KEY, f"is the expected key {expected_key}")
        else:
            self.ok(
                KEY,
                f"fingerprint {fp} must be compared with the published one "
                "(/about/signing-keys/ of the issuing site, or given by the certifying "
                "organisation); --key checks it",
            )

        for name in sorted(sums):
            if name not in seen:
                self.fail(name, f"listed in {SUMS} but missing from the bundle")
            if self._digest(name) != sums[name]:
                self.fail(name, f"sha256 does not match {SUMS}")
            self.ok(name, f"sha256 matches {SUMS}")
        for name in names:
            if name not in sums and name not in (SUMS, SIGNATURE):
                self.fail(name, f"not listed in {SUMS}")

        if RESULTS not in seen:
            self.fail(RESULTS, "missing from the bundle")
        try:
            with self.archive.open(RESULTS) as member:
                chain = verify_chain(_lines(member))
        except _CORRUPT as exc:
            self.fail(RESULTS, f"cannot be read from the zip ({exc})")
        if not chain.ok:
            self.fail(RESULTS, chain.message)
        self.ok(RESULTS, chain.message)

        if SUMMARY in seen:
            self._summary_matches(chain)

    def _digest(self, name: str) -> str:
        try:
            return _sha256(self.archive, name)
        except _CORRUPT as exc:
            self.fail(name, f"cannot be read from the zip ({exc})")

    def _signature_failed(self, sums: dict[str, str]) -> None:
        """Name the likeliest culprit. A file changed without touching SHA256SUMS leaves the
        signature valid, so a listed file that no longer matches means SHA256SUMS itself was
        changed; a changed key is named as such; otherwise the signature is at fault."""
        if KEY in sums and self._digest(KEY) != sums[KEY]:
            self.fail(KEY, f"sha256 does not match {SUMS}, and {SIGNATURE} does not verify with it")
        changed = f"changed after signing: {SIGNATURE} does not verify with {KEY}, and"
        if KEY not in sums:
            self.fail(SUMS, f"{changed} it does not list {KEY}")
        for name in sorted(sums):
            if name not in self.archive.NameToInfo:
                self.fail(SUMS, f"{changed} it lists {name}, which the bundle does not hold")
            if self._digest(name) != sums[name]:
                self.fail(SUMS, f"{changed} its line for {name} does not match that file")
        self.fail(
            SIGNATURE,
            f"signature does not verify with {KEY}: {SUMS} or its signature was changed after "
            "signing",
        )

    def _summary_matches(self, chain: ChainResult) -> None:
        try:
            summary = json.loads(self.read(SUMMARY))
        except ValueError:
            self.fail(SUMMARY, "not valid JSON")
        results = summary.get("results") if isinstance(summary, dict) else None
        if not isinstance(results, dict) or (
            "headSha256" not in results and "records" not in results
        ):
            self.ok(SUMMARY, "records no chain head to compare")
            return
        if "headSha256" in results and results["headSha256"] != chain.head_sha256:
            self.fail(
                SUMMARY,
                f"results.headSha256 {results['headSha256']} is not the head of {RESULTS} "
                f"({chain.head_sha256})",
            )
        if "records" in results and results["records"] != chain.records:
            self.fail(
                SUMMARY,
                f"results.records is {results['records']!r}, {RESULTS} has {chain.records}",
            )
        self.ok(SUMMARY, f"results.headSha256 and results.records match {RESULTS}")


def verify_bundle(path: str | Path, *, key: str | None = None) -> VerifyReport:
    """Check the bundle zip at ``path`` (see the module docstring for the checks and their
    order); ``key`` is a fingerprint ``SHA256:...`` or the path of a public key PEM the
    bundle's key must be. ``report.ok`` holds when every check passed; else ``report.failure``
    names the first file or record at fault. Raises :class:`UnreadableBundle` for input that
    cannot be read at all (no such file, not a zip, an unreadable ``key``)."""
    expected = expected_fingerprint(key) if key is not None else None
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UnreadableBundle(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableBundle(f"{path}: is a directory, not a zip file") from None
    except OSError as exc:
        raise UnreadableBundle(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError):
        raise UnreadableBundle(f"{path}: not a zip file (or a damaged one)") from None
    with archive:
        return _Verifier(archive).run(expected)
