"""AS2 (RFC 4130): messages signed and encrypted with S/MIME, their MICs, and MDNs.

``cryptography``'s ``pkcs7`` module signs, encrypts and decrypts; it has no verification, so
signatures are checked here: ``asn1crypto`` reads the CMS structure (signer, signed
attributes, digest) and ``cryptography`` verifies the signature with the certificate pinned
for the partner, never one the message brings along. ``pyas2lib`` would do all of this but is
GPL and does not import on this OpenSSL (see ``docs/architecture.md``).

What each side computes, so both agree on the MIC (RFC 4130 section 7.3.1): for a signed
message the digest covers the signed MIME entity, headers included, exactly as sent; for an
unsigned one the payload alone. MIME parts are split on the raw bytes, never re-serialised,
because a signature covers bytes.

Pure Python, no Django import.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

MIC_ALGORITHMS = {"sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
                  "sha384": "sha384", "sha-384": "sha384", "sha512": "sha512",
                  "sha-512": "sha512"}  # fmt: skip
MICALG_NAMES = {"sha1": "sha-1", "sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_HASHES: dict[str, Any] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}  # fmt: skip
ENCRYPTION = {"aes128-cbc": algorithms.AES128, "aes256-cbc": algorithms.AES256}
PROCESSED = "processed"


class As2Error(ValueError):
    """A message or MDN that cannot be read (what is wrong with it, in words)."""


@dataclass(frozen=True)
class Keys:
    """Our key and certificate (PEM) and the partner's certificate; any may be absent."""

    private_key_pem: str = ""
    certificate_pem: str = ""
    partner_certificate_pem: str = ""

    def private_key(self) -> Any:
        if not self.private_key_pem.strip():
            raise As2Error("no private key of ours is configured")
        try:
            return serialization.load_pem_private_key(self.private_key_pem.encode(), None)
        except (ValueError, TypeError) as exc:
            raise As2Error(f"our private key cannot be read: {exc}") from None

    def certificate(self) -> x509.Certificate:
        return load_certificate(self.certificate_pem, "our certificate")

    def partner_certificate(self) -> x509.Certificate:
        return load_certificate(self.partner_certificate_pem, "the partner's certificate")


def load_certificate(pem: str, what: str) -> x509.Certificate:
    if not pem.strip():
        raise As2Error(f"{what} is not configured")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise As2Error(f"{what} is not a PEM certificate: {exc}") from None


def mic_algorithm(name: str) -> str:
    found = MIC_ALGORITHMS.get(name.strip().lower())
    if found is None:
        raise As2Error(f"unknown MIC algorithm {name!r} (sha1, sha256, sha384 or sha512)")
    return found


def mic(data: bytes, algorithm: str = "sha256") -> str:
    """``base64(digest), algorithm``, as an MDN's ``Received-Content-MIC`` states it."""
    digest = hashlib.new(mic_algorithm(algorithm), data).digest()
    return f"{base64.b64encode(digest).decode()}, {mic_algorithm(algorithm)}"


def same_mic(a: str, b: str) -> bool:
    """Two MIC statements name the same digest (spacing and algorithm spelling aside)."""

    def norm(value: str) -> tuple[str, str]:
        digest, _, algorithm = value.partition(",")
        try:
            return digest.strip(), mic_algorithm(algorithm or "sha1")
        except As2Error:
            return digest.strip(), algorithm.strip().lower()

    return bool(a and b) and norm(a) == norm(b)


# ----------------------------------------------------------------------------- MIME on bytes


def split_entity(data: bytes) -> tuple[Message, bytes]:
    """A MIME entity's headers (parsed) and its body (the raw bytes after the blank line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = data.find(separator)
        if at != -1:
            head, body = data[:at], data[at + len(separator) :]
            break
    else:
        head, body = data, b""
    message = Message()
    for line in re.split(rb"\r?\n(?![ \t])", head):
        name, colon, value = line.decode("latin-1").partition(":")
        if colon:
            message[name.strip()] = " ".join(value.split())
    return message, body


def headers_message(content_type: str) -> Message:
    message = Message()
    message["Content-Type"] = content_type
    return message


def multipart_parts(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body, each exactly as it was sent (headers and content)."""
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3:
        raise As2Error(f"a multipart body without its parts (boundary {boundary!r})")
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        if piece.startswith(b"\r\n"):
            piece = piece[2:]
        elif piece.startswith(b"\n"):
            piece = piece[1:]
        if piece.endswith(b"\r\n"):
            piece = piece[:-2]
        elif piece.endswith(b"\n"):
            piece = piece[:-1]
        parts.append(piece)
    return parts


def _decoded(message: Message, body: bytes) -> bytes:
    encoding = (message.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(body.split()), validate=True)
        except ValueError:
            raise As2Error("a base64 part that is not base64") from None
    return body


# ----------------------------------------------------------------------------- signatures


def sign(entity: bytes, keys: Keys, micalg: str = "sha256") -> tuple[str, bytes]:
    """``entity`` in a ``multipart/signed`` body: (its Content-Type, the body)."""
    algorithm = mic_algorithm(micalg)
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(keys.certificate(), keys.private_key(), _HASHES[algorithm]())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )
    boundary = f"----=_Certdash_{uuid.uuid4().hex}"
    b64 = base64.encodebytes(signature).replace(b"\n", b"\r\n")
    body = (
        b"--" + boundary.encode() + b"\r\n" + entity + b"\r\n"
        b"--" + boundary.encode() + b"\r\n"
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
        + b64 + b"\r\n--" + boundary.encode() + b"--\r\n"
    )  # fmt: skip
    content_type = (
        f'multipart/signed; protocol="application/pkcs7-signature"; '
        f'micalg={MICALG_NAMES[algorithm]}; boundary="{boundary}"'
    )
    return content_type, body


def verify(content: bytes, signature_der: bytes, certificate: x509.Certificate) -> str:
    """ "" when ``signature_der`` is a valid detached signature of ``content`` by the holder
    of ``certificate``; otherwise why not."""
    try:
        info = cms.ContentInfo.load(signature_der)
        if info["content_type"].native != "signed_data":
            return f"the signature part holds {info['content_type'].native}, not signed data"
        signer = info["content"]["signer_infos"][0]
        digest_name = signer["digest_algorithm"]["algorithm"].native
        serial = signer["sid"].chosen["serial_number"].native
        signature = signer["signature"].native
        attributes = signer["signed_attrs"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"the signature cannot be read ({type(exc).__name__})"
    if serial != certificate.serial_number:
        return (
            f"signed with another certificate (serial {serial:x}), not the partner's pinned "
            f"one (serial {certificate.serial_number:x})"
        )
    if digest_name not in _HASHES:
        return f"signed with digest {digest_name}, which is not accepted"
    digest = hashlib.new(digest_name, content).digest()
    signed: bytes = content
    if attributes.native:
        stated = next(
            (a["values"][0].native for a in attributes if a["type"].native == "message_digest"),
            None,
        )
        if stated != digest:
            return "the content does not match its signature (altered after signing)"
        signed = b"\x31" + attributes.dump()[1:]  # the attributes are signed as a SET
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), _HASHES[digest_name]())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(_HASHES[digest_name]()))
        else:
            return f"a {type(key).__name__} certificate cannot be checked"
    except InvalidSignature:
        return "the signature does not verify with the partner's certificate"
    return ""


# ----------------------------------------------------------------------------- encryption


def encrypt(entity: bytes, certificate: x509.Certificate, algorithm: str = "aes256-cbc") -> bytes:
    """``entity`` enveloped for ``certificate``'s holder (DER ``application/pkcs7-mime``)."""
    if algorithm not in ENCRYPTION:
        raise As2Error(f"unknown encryption {algorithm!r} ({', '.join(ENCRYPTION)})")
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(entity)
        .set_content_encryption_algorithm(ENCRYPTION[algorithm])
        .add_recipient(certificate)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def decrypt(data: bytes, keys: Keys) -> bytes:
    try:
        return pkcs7.pkcs7_decrypt_der(data, keys.certificate(), keys.private_key(), [])
    except ValueError as exc:
        raise As2Error(f"the message cannot be decrypted with our key: {exc}") from None


# ----------------------------------------------------------------------------- messages


@dataclass
class Outbound:
    """A message ready to POST: its Content-Type, body, and the MIC the partner should state."""

    content_type: str
    body: bytes
    mic: str
    signed: bool
    encrypted: bool


def payload_entity(payload: bytes, content_type: str = "application/edi-x12") -> bytes:
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n\r\n".encode()
        + payload
    )


def build_message(
    payload: bytes,
    *,
    keys: Keys,
    signed: bool,
    encrypted: bool,
    content_type: str = "application/edi-x12",
    micalg: str = "sha256",
    encryption: str = "aes256-cbc",
) -> Outbound:
    """The AS2 body for ``payload``: signed, then encrypted, as asked."""
    if not signed and not encrypted:
        return Outbound(content_type, payload, mic(payload, micalg), False, False)
    entity = payload_entity(payload, content_type)
    # Signed or encrypted: the MIC covers the MIME entity, headers included (RFC 4130 7.3.1).
    message_mic = mic(entity, micalg)
    outer_type, body = content_type, payload
    if signed:
        outer_type, body = sign(entity, keys, micalg)
        entity = f"Content-Type: {outer_type}\r\n\r\n".encode() + body
    if encrypted:
        body = encrypt(entity, keys.partner_certificate(), encryption)
        outer_type = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    return Outbound(outer_type, body, message_mic, signed, encrypted)


@dataclass
class Inbound:
    """What arrived, opened: the payload and how it was protected."""

    payload: bytes = b""
    content_type: str = ""
    encrypted: bool = False
    signed: bool = False
    signature_reason: str = ""  # "" with signed: the signature verified
    mic_source: bytes = b""  # what the MIC is computed over
    errors: list[str] = field(default_factory=list)

    @property
    def signature_valid(self) -> bool | None:
        return (not self.signature_reason) if self.signed else None

    def mic(self, algorithm: str = "sha256") -> str:
        return mic(self.mic_source, algorithm)


def open_message(content_type: str, body: bytes, keys: Keys) -> Inbound:
    """Decrypt and verify a received AS2 body. Raises ``As2Error`` when it cannot be opened
    (no key, wrong key, a broken multipart); a bad signature is reported, not raised."""
    found = Inbound()
    outer = headers_message(content_type)
    kind = outer.get_content_type()
    data = body
    if kind in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        found.encrypted = True
        entity = decrypt(data, keys)
        outer, data = split_entity(entity)
        kind = outer.get_content_type()
    if kind == "multipart/signed":
        found.signed = True
        boundary = outer.get_param("boundary")
        if not boundary:
            raise As2Error("a multipart/signed message without a boundary")
        parts = multipart_parts(data, str(boundary))
        if len(parts) != 2:
            raise As2Error(f"a multipart/signed message with {len(parts)} parts, not 2")
        content, signature_part = parts
        signature_headers, signature_body = split_entity(signature_part)
        try:
            partner = keys.partner_certificate()
            found.signature_reason = verify(
                content, _decoded(signature_headers, signature_body), partner
            )
        except As2Error as exc:
            found.signature_reason = str(exc)
        found.mic_source = content
        inner, inner_body = split_entity(content)
        found.content_type = inner.get_content_type()
        found.payload = _decoded(inner, inner_body)
        return found
    if found.encrypted:
        # Encrypted, not signed: the MIC covers the decrypted entity, headers included.
        found.mic_source = entity
        found.payload = _decoded(outer, data)
    else:
        found.payload = data
        found.mic_source = data
    found.content_type = kind
    return found


# ----------------------------------------------------------------------------- MDNs


def disposition_processed(disposition: str) -> bool:
    """``automatic-action/MDN-sent-automatically; processed`` (a warning still is);
    ``processed/error: …`` and ``failed/…`` are not."""
    _, _, status = disposition.partition(";")
    status = status.strip().lower()
    return status == PROCESSED or status.startswith(PROCESSED + "/warning")


def build_mdn(
    *,
    original_message_id: str,
    sender: str,
    receiver: str,
    disposition: str = PROCESSED,
    received_mic: str = "",
    text: str = "",
    sign_with: Keys | None = None,
    micalg: str = "sha256",
) -> tuple[dict[str, str], bytes]:
    """An MDN answering ``original_message_id`` (headers, body): ``receiver`` is the one who
    got the message and reports; signed when ``sign_with`` is given."""
    boundary = f"----=_MDN_{uuid.uuid4().hex}"
    machine = [
        "Reporting-UA: Certdash",
        f"Original-Recipient: rfc822; {receiver}",
        f"Final-Recipient: rfc822; {receiver}",
        f"Original-Message-ID: {original_message_id or '<unknown>'}",
    ]
    if received_mic:
        machine.append(f"Received-Content-MIC: {received_mic}")
    machine.append(f"Disposition: automatic-action/MDN-sent-automatically; {disposition}")
    human = text or (
        f"The message {original_message_id} has been received"
        + (" and processed." if disposition_processed(f"; {disposition}") else ".")
    )
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{human}\r\n"
        f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        + "\r\n".join(machine)
        + f"\r\n\r\n--{boundary}--\r\n"
    ).encode("utf-8")
    content_type = f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    if sign_with is not None:
        entity = f"Content-Type: {content_type}\r\n\r\n".encode() + body
        content_type, body = sign(entity, sign_with, micalg)
    headers = {
        "Content-Type": content_type,
        "AS2-Version": "1.2",
        "AS2-From": receiver,
        "AS2-To": sender,
        "Message-ID": f"<{uuid.uuid4().hex}@certdash>",
        "Date": email.utils.formatdate(usegmt=True),
        "MIME-Version": "1.0",
    }
    return headers, body


def read_mdn(
    content_type: str, body: bytes, *, keys: Keys | None = None, expected_mic: str = ""
) -> dict[str, Any]:
    """What an MDN says: ``signed``, ``signature`` {valid, reason}, ``disposition``,
    ``processed``, ``mic``, ``micMatches`` (against ``expected_mic``), ``originalMessageId``
    and ``text`` (the human part, where the reason for a refusal is)."""
    outer = headers_message(content_type)
    kind = outer.get_content_type()
    data = body
    result: dict[str, Any] = {"signed": False}
    if kind == "multipart/signed":
        result["signed"] = True
        parts = multipart_parts(data, str(outer.get_param("boundary") or ""))
        if len(parts) != 2:
            raise As2Error(f"a signed MDN with {len(parts)} parts, not 2")
        signature_headers, signature_body = split_entity(parts[1])
        try:
            certificate = (keys or Keys()).partner_certificate()
            reason = verify(parts[0], _decoded(signature_headers, signature_body), certificate)
        except As2Error as exc:
            reason = str(exc)
        result["signature"] = {"valid": not reason, "reason": reason}
        outer, data = split_entity(parts[0])
        kind = outer.get_content_type()
    if kind != "multipart/report":
        raise As2Error(f"an MDN is a multipart/report, this is {kind}")
    fields: dict[str, str] = {}
    text = ""
    for part in multipart_parts(data, str(outer.get_param("boundary") or "")):
        headers, content = split_entity(part)
        if headers.get_content_type() == "message/disposition-notification":
            for line in _decoded(headers, content).decode("utf-8", "replace").splitlines():
                name, colon, value = line.partition(":")
                if colon:
                    fields[name.strip().lower()] = value.strip()
        elif headers.get_content_type() == "text/plain" and not text:
            text = _decoded(headers, content).decode("utf-8", "replace").strip()
    if "disposition" not in fields:
        raise As2Error("the MDN has no Disposition field")
    stated = fields.get("received-content-mic", "")
    result.update(
        disposition=fields["disposition"],
        processed=disposition_processed(fields["disposition"]),
        mic=stated,
        originalMessageId=fields.get("original-message-id", ""),
        text=text[:2000],
    )
    if expected_mic:
        result["micMatches"] = same_mic(stated, expected_mic)
    return result
