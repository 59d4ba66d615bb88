"""What each endpoint auth kind needs: plain settings (stored as they are) and secrets (sealed)."""

from __future__ import annotations

from dataclasses import dataclass


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
    config: tuple[Field, ...] = ()
    secrets: tuple[Field, ...] = ()


AUTH_SCHEMES: dict[str, AuthScheme] = {
    "none": AuthScheme(),
    "api_key": AuthScheme(
        config=(Field("header_name", "Header name", default="X-API-Key"),),
        secrets=(Field("api_key", "API key"),),
    ),
    "bearer": AuthScheme(secrets=(Field("token", "Bearer token"),)),
    "oauth2_client_credentials": AuthScheme(
        config=(
            Field("token_url", "Token URL", help="Checked against the sandbox address policy."),
            Field("client_id", "Client ID"),
            Field("scope", "Scope", required=False),
        ),
        secrets=(Field("client_secret", "Client secret"),),
    ),
    "hmac": AuthScheme(
        config=(
            Field("signature_header", "Signature header", default="X-Signature"),
            Field("key_id", "Key ID", required=False),
        ),
        secrets=(Field("signing_secret", "Signing secret"),),
    ),
    "mtls": AuthScheme(
        secrets=(
            Field("client_cert_pem", "Client certificate (PEM)", multiline=True),
            Field("client_key_pem", "Client private key (PEM)", multiline=True),
        ),
    ),
    "db_password": AuthScheme(secrets=(Field("password", "Database password"),)),
}
# Which auth kinds fit which endpoint kind.
AUTH_KINDS_FOR = {
    "http": ("none", "api_key", "bearer", "oauth2_client_credentials", "hmac", "mtls"),
    "postgresql": ("none", "db_password"),
}

ALL_CONFIG_FIELDS: tuple[Field, ...] = tuple(
    {f.name: f for scheme in AUTH_SCHEMES.values() for f in scheme.config}.values()
)
ALL_SECRET_FIELDS: tuple[Field, ...] = tuple(
    {f.name: f for scheme in AUTH_SCHEMES.values() for f in scheme.secrets}.values()
)
