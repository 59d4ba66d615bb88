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
        secrets=(Field("password", "Password"),),
    ),
    "ssh_key": AuthScheme(
        "SSH key",
        endpoint_kinds=("sftp",),
        config=_SFTP_CONFIG,
        secrets=(Field("private_key_pem", "Private key (OpenSSH or PEM)", multiline=True),),
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
    """The auth kinds that fit an endpoint kind (``http``, ``postgresql`` or ``sftp``)."""
    return tuple(kind for kind, s in SCHEMES.items() if endpoint_kind in s.endpoint_kinds)
