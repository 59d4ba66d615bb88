"""Self-signed AS2 certificates for the demo partner and the tests (RSA 2048, SHA-256)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def self_signed(common_name: str, days: int = 825) -> tuple[str, str]:
    """A new key and its self-signed certificate, both PEM: (private key, certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def stored(directory: Path, common_name: str) -> tuple[str, str]:
    """The key pair kept in ``directory`` (made on first use), so restarts keep the pins."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / f"{common_name}.key.pem", directory / f"{common_name}.pem"
    if not (key_path.exists() and cert_path.exists()):
        key_pem, cert_pem = self_signed(common_name)
        key_path.write_text(key_pem)
        key_path.chmod(0o600)
        cert_path.write_text(cert_pem)
    return key_path.read_text(), cert_path.read_text()
