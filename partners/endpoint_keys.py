"""An endpoint's keys and certificates: checked when it is saved (SSH host keys pinned, AS2
certificates and key, PGP keys), and shown on the partner page as what identifies them
(subject, expiry and fingerprint) rather than as pages of PEM."""

from __future__ import annotations

import functools

from partners.urlguard import check_sandbox_url

# Settings that hold a key or certificate: shown summarised.
_CERTIFICATES = ("certificate_pem", "partner_certificate_pem")
_PGP_KEYS = ("pgp_partner_key",)


def config_display(config: dict[str, str]) -> list[tuple[str, str]]:
    """An endpoint's settings by name, for people: certificates and PGP keys summarised."""
    shown = []
    for name, value in sorted(config.items()):
        if name in _CERTIFICATES:
            value = certificate_summary(value)
        elif name in _PGP_KEYS:
            value = pgp_summary(value)
        shown.append((name, value))
    return shown


@functools.lru_cache(maxsize=256)
def certificate_summary(pem: str) -> str:
    """``CN=INITECH, valid until 2029-03-01, SHA-256 AB:CD:…`` (the whole fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "(not a readable certificate)"
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    until = certificate.not_valid_after_utc.date().isoformat()
    return f"{certificate.subject.rfc4514_string()}, valid until {until}, SHA-256 {pairs}"


@functools.lru_cache(maxsize=256)
def pgp_summary(armored: str) -> str:
    """``PGP key 1234 5678 …`` (its fingerprint, in groups of four as gpg prints it)."""
    from certification.engine import pgp

    try:
        found = pgp.fingerprint(armored)
    except pgp.PgpError:
        return "(not a readable PGP key)"
    return "PGP key " + " ".join(found[i : i + 4] for i in range(0, len(found), 4))


def pgp_problems(config: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """What is wrong with an SFTP endpoint's PGP keys, by field: not a key, a private key with
    a passphrase, a public key that cannot encrypt."""
    from certification.engine import pgp

    problems: dict[str, str] = {}
    for name, what, secret in (
        ("pgp_partner_key", "the partner's PGP key", False),
        ("pgp_private_key", "our PGP key", True),
    ):
        value = (secrets if secret else config).get(name, "")
        if value:
            try:
                pgp.fingerprint(value, what, secret=secret)
            except pgp.PgpError as exc:
                problems[name] = f"{str(exc)[:1].upper()}{str(exc)[1:200]}."
    return problems


def as2_problems(config: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """What is wrong with an AS2 endpoint's settings, by field: choices, certificates that do
    not parse, a private key that is not the one of our certificate."""
    from certification.engine import as2

    problems: dict[str, str] = {}
    choices = {"usage": ("T", "P"), "mdn": ("sync", "async"), "encrypt": ("yes", "no"),
               "encryption": tuple(as2.ENCRYPTION)}  # fmt: skip
    for name, allowed in choices.items():
        if name in config and config[name] not in allowed:
            problems[name] = f"Use {' or '.join(allowed)}, not '{config[name]}'."
    if "mic_algorithm" in config:
        try:
            config["mic_algorithm"] = as2.mic_algorithm(config["mic_algorithm"])
        except as2.As2Error as exc:
            problems["mic_algorithm"] = f"{exc}."
    for name in ("isa_sender", "isa_receiver"):
        qualifier, colon, identifier = config.get(name, "").partition(":")
        if name in config and (not colon or not 1 <= len(qualifier) <= 2 or len(identifier) > 15):
            problems[name] = "Write QUALIFIER:ID, e.g. ZZ:CERTDASH (ID at most 15 characters)."
    for name, what in (("partner_certificate_pem", "the partner's certificate"),
                       ("certificate_pem", "our certificate")):  # fmt: skip
        if config.get(name):
            try:
                as2.load_certificate(config[name], what)
            except as2.As2Error as exc:
                problems[name] = f"{str(exc)[:1].upper()}{str(exc)[1:200]}."
    key_pem = secrets.get("as2_private_key_pem", "")
    if key_pem and "certificate_pem" not in problems and config.get("certificate_pem"):
        keys = as2.Keys(private_key_pem=key_pem, certificate_pem=config["certificate_pem"])
        try:
            ours = keys.private_key().public_key().public_numbers()
            if ours != keys.certificate().public_key().public_numbers():
                problems["as2_private_key_pem"] = "This key is not the one of our certificate."
        except (as2.As2Error, AttributeError) as exc:
            problems["as2_private_key_pem"] = f"Not a usable private key ({exc})."
    return problems


def pin_host_key(base_url: str, config: dict[str, str]) -> str:
    """Check a given SFTP host key, or fetch the server's and pin it (trust on first use, at
    the moment a person configures the endpoint). Returns what went wrong, or ""."""
    import asyncio
    from urllib.parse import urlsplit

    import asyncssh

    if config.get("host_key"):
        try:
            key = asyncssh.import_public_key(config["host_key"])
        except (asyncssh.KeyImportError, ValueError):
            return "Not an SSH public key; paste the server's key line (ssh-ed25519 AAAA…)."
        config["host_key"] = key.export_public_key().decode().strip()
        return ""
    parts = urlsplit(base_url)
    target = check_sandbox_url(base_url, kind="sftp")
    try:
        key = asyncio.run(
            asyncio.wait_for(
                asyncssh.get_server_host_key(str(target.addresses[0]), parts.port or 22), 10
            )
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return (
            f"Could not fetch the server's host key ({type(exc).__name__}); enter it, or save "
            "again when the server answers."
        )
    if key is None:
        return "The server presented no host key; enter it."
    config["host_key"] = key.export_public_key().decode().strip()
    return ""
