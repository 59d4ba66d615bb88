"""The evidence bundle's zip: the given files, then ``SHA256SUMS`` over every file, its Ed25519
signature ``SHA256SUMS.sig``, the public key ``signing-key.pem`` and ``VERIFY.txt``, which tells
an auditor how to check it all with ``sha256sum`` and ``openssl`` alone.

The zip is byte-identical for identical input (on the same zlib): every entry has the same
fixed time, permissions and creator system, a fixed compression level and no extra fields; and
it is always written as a stream (sizes in data descriptors after each entry), whether ``out``
is a file or a pipe.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from evidence import signing

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
KEY = "signing-key.pem"
VERIFY = "VERIFY.txt"
GENERATED = (SUMS, SIGNATURE, KEY, VERIFY)
ABOUT_SIGNING_KEYS_PATH = "/about/signing-keys/"
COMPRESS_LEVEL = 9
CHUNK = 1024 * 1024
_UNIX = 3

# The commands VERIFY.txt gives, exactly as given (the tests run these).
SUMS_CHECK = "sha256sum -c SHA256SUMS"
UNLISTED_CHECK = (
    "find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.sig | cut -c3- | sort"
    " | diff - <(cut -c67- SHA256SUMS | sort)"
)
SIGNATURE_CHECK = (
    "openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin -in SHA256SUMS"
    " -sigfile SHA256SUMS.sig"
)
FINGERPRINT_CHECK = "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum"
CHAIN_CHECK = (
    "python3 -c \"import hashlib,json; L=open('results.jsonl','rb').read().split(b'\\n'); "
    "assert L.pop()==b'', 'no newline at the end'; R=[json.loads(x) for x in L]; "
    "H=['0'*64]+[hashlib.sha256(x).hexdigest() for x in L]; "
    "bad=[i for i,r in enumerate(R) if r.get('seq')!=i or r.get('prev')!=H[i]]; "
    "end=R[-1].get('type')=='end' and R[-1].get('records')==len(R)-1; "
    "print('chain OK:', len(R), 'records, head', H[-1]) if end and not bad "
    "else print('chain BROKEN at line', bad[0]+1 if bad else len(R))\""
)


def verify_text(fingerprint: str) -> str:
    """The bundle's ``VERIFY.txt``: how to check the bundle with standard tools."""
    return f"""\
HOW TO VERIFY THIS EVIDENCE BUNDLE

This bundle was produced by Certdash. You can check it with standard tools only:
sha256sum (GNU coreutils) and openssl (version 3.0 or later). You do not need Certdash.

1. Unzip the bundle into an empty folder and open a terminal in that folder, e.g.

     mkdir bundle && cd bundle && unzip ../BUNDLE.zip

2. Check that no file was changed since the bundle was built:

     {SUMS_CHECK}

   Every line must end in "OK". SHA256SUMS lists every file of the bundle except itself
   and SHA256SUMS.sig, and the folder must hold no other file. In bash, this command prints
   nothing when that is so (and the names of any added or missing files otherwise):

     {UNLISTED_CHECK}

3. Check that SHA256SUMS was signed with the key in signing-key.pem (Ed25519):

     {SIGNATURE_CHECK}

   It must print "Signature Verified Successfully".

4. Check that signing-key.pem is the certifying organisation's key and not one made up by
   whoever changed the bundle: steps 2 and 3 prove nothing until this holds. The key's
   fingerprint is the SHA-256 of the key in DER form:

     {FINGERPRINT_CHECK}

   This prints the fingerprint's hex digits, then "-". For this bundle the fingerprint is

     {fingerprint}

   It must be equal to a fingerprint published on the "About evidence signing" page
   ({ABOUT_SIGNING_KEYS_PATH} on the Certdash site that issued the bundle), or given to you by the
   certifying organisation. That page also lists retired keys, each with the period in which
   it was in use: the key must have been in use when the bundle was built.

5. Check the chain of results.jsonl (optional: steps 2 to 4 already show it unchanged). Each
   line is one JSON record with "seq" (0, 1, 2, ...) and "prev": the SHA-256 (hex) of the
   previous line's bytes, without its newline (64 zeros for the first line). The last record
   has type "end" and "records", the number of records before it. The SHA-256 of the last line
   is the chain's head, recorded in certification.json as results.headSha256 (and the number of
   lines as results.records). With Python 3, this prints "chain OK", the count and the head:

     {CHAIN_CHECK}

With Certdash installed, `python manage.py verify_bundle BUNDLE.zip` does all of the above;
add `--key SHA256:...` (the published fingerprint) or `--key published-key.pem` (the
published public key, not the bundle's own signing-key.pem) to check step 4 too.
"""


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a safe zip entry name: relative, ``/``-separated,
    no ``.`` or ``..`` segments, no backslash, colon or control character."""
    if not isinstance(name, str) or not name:
        raise ValueError("a zip entry needs a name")
    if "\\" in name or ":" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"unsafe zip entry name {name!r}: no backslash, colon or control char")
    if name.startswith("/"):
        raise ValueError(f"unsafe zip entry name {name!r}: absolute")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"unsafe zip entry name {name!r}: empty, '.' or '..' segment")


def _date_time(fixed_time: datetime) -> tuple[int, int, int, int, int, int]:
    moment = fixed_time.astimezone(UTC) if fixed_time.tzinfo else fixed_time
    if moment.year < 1980:
        raise ValueError("a zip cannot hold times before 1980")
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


class _HashingStream:
    """A write-only stream that hashes what passes through. It cannot seek, so zipfile writes
    every entry the same streamed way whatever ``out`` is."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._position = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.sha256.update(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._out.flush()


def _chunks(content: Path | bytes) -> Iterator[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        yield bytes(content)
        return
    with open(content, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _size(content: Path | bytes) -> int:
    return (
        len(content)
        if isinstance(content, bytes | bytearray | memoryview)
        else content.stat().st_size
    )


def write_bundle_zip(
    *, out: BinaryIO, files: list[tuple[str, Path | bytes]], fixed_time: datetime
) -> str:
    """Write the bundle zip to ``out``; returns the hex SHA-256 of the whole zip.

    Entries, in order: ``files`` as given (top-level files, then ``suite/...``), then
    ``SHA256SUMS`` (GNU ``sha256sum`` format, sorted by name, covering every entry but itself and
    its signature), ``SHA256SUMS.sig`` (the raw Ed25519 signature of ``SHA256SUMS`` with the
    current signing key), ``signing-key.pem`` and ``VERIFY.txt``. Files given as a ``Path`` are
    streamed in chunks. Raises ``ValueError`` for an unsafe, duplicate or reserved name.
    """
    names = [name for name, _ in files]
    for name in names:
        check_name(name)
        if name in GENERATED:
            raise ValueError(f"{name} is written by the archive itself")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{duplicate} is given twice")
    date_time = _date_time(fixed_time)
    key = signing.signing_key()
    key_pem = signing.public_key_pem(key).encode("ascii")
    verify = verify_text(signing.fingerprint(key)).encode("utf-8")

    stream = _HashingStream(out)
    digests: dict[str, str] = {}
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, content: Path | bytes) -> str:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]  # no public API
            info.create_system = _UNIX
            info.external_attr = 0o644 << 16
            info.file_size = _size(content)  # decides zip64 up front, as a stream must
            digest = hashlib.sha256()
            with archive.open(info, "w") as entry:
                for chunk in _chunks(content):
                    digest.update(chunk)
                    entry.write(chunk)
            return digest.hexdigest()

        for name, content in files:
            digests[name] = add(name, content)
        # The key and the instructions are listed in SHA256SUMS too, so they are known first.
        digests[KEY] = hashlib.sha256(key_pem).hexdigest()
        digests[VERIFY] = hashlib.sha256(verify).hexdigest()
        sums = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests)).encode("utf-8")
        add(SUMS, sums)
        add(SIGNATURE, signing.sign(sums))
        add(KEY, key_pem)
        add(VERIFY, verify)
    return stream.sha256.hexdigest()
