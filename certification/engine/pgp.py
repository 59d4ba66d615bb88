"""OpenPGP for file partners: encrypt (and sign) what we upload, decrypt (and verify) what a
partner encrypts to us, check the keys an endpoint is given.

On ``python-gnupg`` and the system ``gpg`` (GnuPG is what partners' file gateways run, so
interoperability is GnuPG's own). Every operation gets a keyring of its own in a temporary
``GNUPGHOME`` holding only the keys of that endpoint, removed afterwards together with its
``gpg-agent``: no state is shared between partners or runs, and a key never lands in a keyring
that outlives the call. Keys are ASCII-armored; private keys must have no passphrase (the secret
is sealed in our database instead). Synchronous: the engine calls it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ARMOR_MESSAGE = b"-----BEGIN PGP MESSAGE-----"
# Where the per-operation keyrings go: a short path, as gpg-agent's socket path must stay
# under the Unix socket limit.
KEYRING_DIR = "/tmp"
SUFFIXES = (".pgp", ".gpg", ".asc")


class PgpError(Exception):
    """Why a PGP operation failed, said for a user (no gpg internals)."""


@dataclass(frozen=True)
class Decrypted:
    data: bytes
    signed: bool  # the message carried a signature
    signature_valid: bool  # ... made by the key we verify with
    signer: str  # the fingerprint of a valid signature, else ""


def available() -> bool:
    return shutil.which("gpg") is not None


@contextlib.contextmanager
def _keyring() -> Iterator[Any]:
    import gnupg

    if not available():
        raise PgpError("PGP needs the gpg program, which is not installed on this server")
    home = tempfile.mkdtemp(prefix="cd-gpg-", dir=KEYRING_DIR)
    try:
        yield gnupg.GPG(gnupghome=home, options=["--batch", "--pinentry-mode", "loopback"])
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--homedir", home, "--kill", "all"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        shutil.rmtree(home, ignore_errors=True)


def _import(gpg: Any, armored: str, what: str, *, secret: bool) -> str:
    text = (armored or "").strip()
    marker = "PRIVATE KEY BLOCK" if secret else "PUBLIC KEY BLOCK"
    if f"-----BEGIN PGP {marker}-----" not in text:
        raise PgpError(f"{what} is not an ASCII-armored PGP {marker.lower()}")
    result = gpg.import_keys(text)
    fingerprints = [f for f in (result.fingerprints or []) if f]
    if not fingerprints:
        raise PgpError(f"{what} could not be read as a PGP key")
    if secret and not gpg.list_keys(secret=True):
        raise PgpError(f"{what} holds no private key")
    return fingerprints[0]


def fingerprint(armored: str, what: str = "the key", *, secret: bool = False) -> str:
    """The key's fingerprint; :class:`PgpError` when it is not a usable key (a private key
    must not need a passphrase, a public key must be able to encrypt)."""
    with _keyring() as gpg:
        found = _import(gpg, armored, what, secret=secret)
        if secret:
            probe = gpg.sign(b"probe", keyid=found, detach=True)
            if not probe.data:
                raise PgpError(f"{what} cannot sign (is it protected by a passphrase?)")
        else:
            probe = gpg.encrypt(b"probe", [found], always_trust=True, armor=False)
            if not probe.ok:
                raise PgpError(f"{what} has no key that can encrypt")
        return found


def public_key(private_armored: str) -> str:
    """The public half of a private key, armored (what we hand a partner)."""
    with _keyring() as gpg:
        found = _import(gpg, private_armored, "the private key", secret=True)
        return str(gpg.export_keys(found))


def encrypt(data: bytes, recipient: str, *, signer: str = "") -> bytes:
    """``data`` encrypted to the armored public key ``recipient`` (binary OpenPGP, as ``.pgp``
    files are), signed with the armored private key ``signer`` when given."""
    with _keyring() as gpg:
        to = _import(gpg, recipient, "the partner's PGP key", secret=False)
        options: dict[str, Any] = {"always_trust": True, "armor": False}
        if signer:
            options.update(sign=_import(gpg, signer, "our PGP key", secret=True))
        result = gpg.encrypt(data, [to], **options)
        if not result.ok:
            raise PgpError(f"PGP encryption failed: {result.status or 'gpg gave no reason'}")
        return bytes(result.data)


def decrypt(data: bytes, private: str, *, verify_with: str = "") -> Decrypted:
    """``data`` decrypted with our armored private key; a signature on it is checked against the
    armored public key ``verify_with`` (the partner's), and only that key makes it valid."""
    with _keyring() as gpg:
        _import(gpg, private, "our PGP key", secret=True)
        expected = (
            _import(gpg, verify_with, "the partner's PGP key", secret=False) if verify_with else ""
        )
        result = gpg.decrypt(data, always_trust=True)
        if not result.ok:
            status = result.status or "not a PGP message"
            if "no secret key" in status or "decryption failed" in status:
                status = "it is not encrypted to our PGP key"
            raise PgpError(f"cannot decrypt: {status}")
        signer = str(result.pubkey_fingerprint or result.fingerprint or "").upper()
        signed = "[GNUPG:] NEWSIG" in (result.stderr or "")
        valid = bool(signed and result.valid and expected and signer == expected.upper())
        return Decrypted(bytes(result.data), signed, valid, signer if valid else "")


def looks_encrypted(name: str, data: bytes) -> bool:
    """An OpenPGP message: armored, or a binary one (a public-key encrypted session key packet
    first), or a name ending in ``.pgp``/``.gpg``."""
    if data.lstrip()[: len(ARMOR_MESSAGE)] == ARMOR_MESSAGE:
        return True
    if data[:1] and data[0] & 0x80:
        first = data[0]
        tag = (first & 0x3F) if first & 0x40 else (first >> 2) & 0x0F
        if tag in (1, 3):  # PKESK or SKESK
            return True
    return name.lower().endswith(SUFFIXES[:2])


def generate(name: str, email: str) -> tuple[str, str]:
    """A new key pair without a passphrase, (private, public), armored: for demos and tests."""
    with _keyring() as gpg:
        spec = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            name_real=name,
            name_email=email,
            expire_date=0,
            no_protection=True,
        )
        made = gpg.gen_key(spec)
        if not made.fingerprint:
            raise PgpError(f"gpg could not make a key: {made.status or 'no reason given'}")
        private = gpg.export_keys(made.fingerprint, secret=True, passphrase="")
        return str(private), str(gpg.export_keys(made.fingerprint))


@dataclass(frozen=True)
class Sealed:
    name: str  # the name uploaded: ``<name>.pgp`` when encrypted
    data: bytes  # the bytes uploaded
    info: dict[str, Any]  # what ``file.pgp`` shows


async def seal_for(config: dict[str, str], secrets: dict[str, str], name: str, data: bytes,
                   want: bool | None) -> Sealed:  # fmt: skip
    """What an upload puts on the wire: encrypted to the endpoint's ``pgp_partner_key`` (and
    signed with our ``pgp_private_key`` when the endpoint has one) unless ``want`` is False;
    ``want`` True without a partner key is a :class:`PgpError`."""
    import asyncio

    recipient = config.get("pgp_partner_key", "")
    wanted = bool(recipient) if want is None else want
    if not wanted:
        return Sealed(name, data, {"encrypted": False})
    if not recipient:
        raise PgpError("pgp: the endpoint has no partner PGP public key to encrypt to")
    signer = secrets.get("pgp_private_key", "")
    sealed = await asyncio.to_thread(encrypt, data, recipient, signer=signer)
    info = {"encrypted": True, "signed": bool(signer), "name": f"{name}.pgp",
            "size": len(sealed), "sha256": hashlib.sha256(sealed).hexdigest()}  # fmt: skip
    return Sealed(f"{name}.pgp", sealed, info)


async def open_from(config: dict[str, str], secrets: dict[str, str], name: str,
                    data: bytes) -> tuple[str, bytes, dict[str, Any]]:  # fmt: skip
    """A file as received: when it is a PGP message and the endpoint has our private key,
    decrypted (its name without ``.pgp``/``.gpg``/``.asc``) and its signature checked against
    the partner's key. Returns (name, content, what ``file.pgp`` shows)."""
    import asyncio

    if not looks_encrypted(name, data):
        return name, data, {"encrypted": False}
    info: dict[str, Any] = {"encrypted": True, "name": name, "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    private = secrets.get("pgp_private_key", "")
    if not private:
        info["decrypted"] = False
        return name, data, info
    opened = await asyncio.to_thread(
        decrypt, data, private, verify_with=config.get("pgp_partner_key", "")
    )
    info.update(decrypted=True, signed=opened.signed, signatureValid=opened.signature_valid,
                signer=opened.signer)  # fmt: skip
    plain = name
    for suffix in SUFFIXES:
        if plain.lower().endswith(suffix) and len(plain) > len(suffix):
            plain = plain[: -len(suffix)]
            break
    return plain, opened.data, info


def signature_problem(info: dict[str, Any], *, pinned: bool) -> str:
    """Why a received file's PGP signature is not to be trusted, or "" (unsigned files and
    endpoints without a pinned partner key are the step's assertions to judge)."""
    if info.get("signed") and pinned and not info.get("signatureValid"):
        return "the file is PGP-signed, but not by the partner's pinned key"
    return ""
