"""The endpoint auth kinds, defined once.

``SCHEMES`` is the only list of auth kinds: for each kind its label, the endpoint kinds it fits,
its plain settings (``config``, stored as they are) and its secrets (stored sealed, never shown).
Everything else derives from it: the ``Endpoint.auth_kind`` choices, the endpoint form, the
``endpoint_set`` command and its help, and ``auth.AUTH_KINDS``. A kind added here must also be
taught to ``auth.EndpointAuth`` (HTTP) or ``db`` (PostgreSQL), which apply it.

Pure Python, no Django import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_CONFIG_FIELDS",
    "ALL_SECRET_FIELDS",
    "CHOICES",
    "SCHEMES",
    "AuthScheme",
    "Field",
    "kinds_for",
]


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = True
    default: str = ""
    help: str = ""
    multiline: bool = False


@dataclass(frozen=True)
class AuthScheme:
    label: str
    endpoint_kinds: tuple[str, ...] = ("http",)
    config: tuple[Field, ...] = ()
    secrets: tuple[Field, ...] = ()


# An SFTP endpoint's settings, whichever way it logs in.
_SFTP_CONFIG = (
    Field("username", "Username"),
    Field(
        "host_key",
        "Server host key",
        required=False,
        help="The server's public host key (ssh-ed25519 AAAA…); every connection is refused "
        "unless the server presents it. Empty: fetched and pinned when the endpoint is saved.",
    ),
    Field("inbox_dir", "Inbox directory", default="inbox", help="Where we upload files."),
    Field(
        "outbox_dir",
        "Outbox directory",
        default="outbox",
        help="Where the partner drops ACK and result files.",
    ),  # fmt: skip
    Field("archive_dir", "Archive directory", default="archive"),
    Field("error_dir", "Error directory", default="error"),
    Field(
        "pgp_partner_key",
        "Partner PGP public key",
        required=False,
        multiline=True,
        help="ASCII-armored. Given: uploads are encrypted to it (the name gets .pgp) and the "
        "signatures on the partner's files are checked against it (pinned: no other).",
    ),
)
# Optional beside an SFTP login: signs what we upload and decrypts what is encrypted to us.
_PGP_SECRET = Field(
    "pgp_private_key",
    "Our PGP private key",
    required=False,
    multiline=True,
    help="ASCII-armored, without a passphrase. Signs uploads; decrypts files sent to us.",
)

# An AS2 endpoint's settings: who is who, and how the interchanges are enveloped.
_AS2_IDS = (
    Field("as2_from", "Our AS2 ID", help="AS2-From on what we send; the partner's AS2-To."),
    Field("as2_to", "Partner AS2 ID", help="AS2-To on what we send; AS2-From on its replies."),
    Field(
        "isa_sender",
        "Our ISA ID",
        required=False,
        help="Qualifier:ID in ISA05/06 (ZZ:CERTDASH). Empty: ZZ and our AS2 ID.",
    ),
    Field(
        "isa_receiver",
        "Partner ISA ID",
        required=False,
        help="Qualifier:ID in ISA07/08. Empty: ZZ and the partner's AS2 ID.",
    ),
    Field("usage", "ISA15 usage", default="T", help="T (test) or P (production)."),
    Field(
        "mdn",
        "MDN mode",
        default="sync",
        help="sync: the receipt is the HTTP answer; async: the partner posts it to our AS2 URL.",
    ),
)
_AS2_SMIME = (
    Field(
        "partner_certificate_pem",
        "Partner certificate (PEM)",
        multiline=True,
        help="Encrypts what we send and verifies what the partner signs (pinned: no other).",
    ),
    Field(
        "certificate_pem",
        "Our certificate (PEM)",
        multiline=True,
        help="Give it to the partner: it verifies our signature and encrypts to us.",
    ),
    Field("encrypt", "Encrypt", default="yes", help="yes or no; signing is always on."),
    Field("mic_algorithm", "MIC and signature digest", default="sha256"),
    Field("encryption", "Encryption algorithm", default="aes256-cbc", help="or aes128-cbc"),
)

SCHEMES: dict[str, AuthScheme] = {
    "none": AuthScheme("None", endpoint_kinds=("http", "postgresql")),
    "api_key": AuthScheme(
        "API key",
        config=(Field("header_name", "Header name", default="X-API-Key"),),
        secrets=(Field("api_key", "API key"),),
    ),
    "bearer": AuthScheme("Bearer token", secrets=(Field("token", "Bearer token"),)),
    "basic": AuthScheme(
        "HTTP Basic",
        config=(
            Field("username", "Username", help="Shown as saved (an account ID, say); not secret."),
        ),
        secrets=(Field("password", "Password"),),
    ),
    "oauth2_client_credentials": AuthScheme(
        "OAuth2 client credentials",
        config=(
            Field("token_url", "Token URL", help="Checked against the sandbox address policy."),
            Field("client_id", "Client ID"),
            Field("scope", "Scope", required=False),
        ),
        secrets=(Field("client_secret", "Client secret"),),
    ),
    "hmac": AuthScheme(
        "HMAC request signing",
        config=(
            Field("signature_header", "Signature header", default="X-Signature"),
            Field("key_id", "Key ID", required=False),
        ),
        secrets=(Field("signing_secret", "Signing secret"),),
    ),
    "mtls": AuthScheme(
        "mTLS client certificate",
        secrets=(
            Field("client_cert_pem", "Client certificate (PEM)", multiline=True),
            Field("client_key_pem", "Client private key (PEM)", multiline=True),
        ),
    ),
    "db_password": AuthScheme(
        "Database password",
        endpoint_kinds=("postgresql",),
        secrets=(Field("password", "Database password"),),
    ),
    "ssh_password": AuthScheme(
        "SSH password",
        endpoint_kinds=("sftp",),
        config=_SFTP_CONFIG,
        secrets=(Field("password", "Password"), _PGP_SECRET),
    ),
    "ssh_key": AuthScheme(
        "SSH key",
        endpoint_kinds=("sftp",),
        config=_SFTP_CONFIG,
        secrets=(
            Field("private_key_pem", "Private key (OpenSSH or PEM)", multiline=True),
            _PGP_SECRET,
        ),
    ),
    "as2_smime": AuthScheme(
        "AS2, S/MIME signed (and encrypted)",
        endpoint_kinds=("as2",),
        config=_AS2_IDS + _AS2_SMIME,
        secrets=(Field("as2_private_key_pem", "Our private key (PEM)", multiline=True),),
    ),
    "as2_plain": AuthScheme(
        "AS2, unsigned (test partners only)",
        endpoint_kinds=("as2",),
        config=_AS2_IDS,
    ),
}

CHOICES: tuple[tuple[str, str], ...] = tuple((kind, s.label) for kind, s in SCHEMES.items())

# Every field of every kind, once per name (two kinds may share a field).
ALL_CONFIG_FIELDS: tuple[Field, ...] = tuple(
    {f.name: f for scheme in SCHEMES.values() for f in scheme.config}.values()
)
ALL_SECRET_FIELDS: tuple[Field, ...] = tuple(
    {f.name: f for scheme in SCHEMES.values() for f in scheme.secrets}.values()
)


def kinds_for(endpoint_kind: str) -> tuple[str, ...]:
    """The auth kinds that fit an endpoint kind (``http``, ``postgresql``, ``sftp`` or ``as2``)."""
    return tuple(kind for kind, s in SCHEMES.items() if endpoint_kind in s.endpoint_kinds)
