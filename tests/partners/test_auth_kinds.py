"""The auth-kind vocabulary is ``certification.engine.auth_kinds.SCHEMES`` and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from certification.engine import auth, auth_kinds
from certification.engine.model import EndpointConfig
from partners.forms import EndpointForm
from partners.models import Endpoint


def test_model_form_and_engine_take_their_auth_kinds_from_the_scheme_table() -> None:
    field = Endpoint._meta.get_field("auth_kind")
    assert tuple(field.choices) == auth_kinds.CHOICES
    assert tuple(EndpointForm().fields["auth_kind"].choices) == auth_kinds.CHOICES
    assert tuple(auth_kinds.SCHEMES) == auth.AUTH_KINDS
    assert "db_password" in auth.AUTH_KINDS


def test_each_endpoint_kind_has_its_auth_kinds() -> None:
    assert auth_kinds.kinds_for("postgresql") == ("none", "db_password")
    assert "db_password" not in auth_kinds.kinds_for("http")
    assert auth_kinds.kinds_for("sftp") == ("ssh_password", "ssh_key")
    assert auth_kinds.kinds_for("as2") == ("as2_smime", "as2_plain")
    others = {"db_password", "ssh_password", "ssh_key", "as2_smime", "as2_plain"}
    assert set(auth_kinds.kinds_for("http")) | others == set(auth_kinds.SCHEMES)


@pytest.mark.parametrize("kind", auth_kinds.kinds_for("http"))
def test_the_http_auth_applies_every_http_kind_of_the_table(kind: str) -> None:
    scheme = auth_kinds.SCHEMES[kind]
    endpoint = EndpointConfig(
        name="api",
        base_url="https://api.example",
        auth_kind=kind,
        auth_config={f.name: f.default or "https://t.example/token" for f in scheme.config},
        secrets={f.name: "s" * 16 for f in scheme.secrets},
    )
    applied = auth.EndpointAuth(endpoint)
    assert "unknown auth kind" not in str(applied._error or "")


def test_no_other_module_lists_the_auth_kinds() -> None:
    """A second list (choices, a tuple of names) would drift from the table; derive it."""
    listing = re.compile(r"""["']bearer["']\s*,\s*["']oauth2_client_credentials["']""")
    roots = [Path(settings.BASE_DIR) / name for name in ("partners", "certification", "evidence")]
    offenders = [
        str(path.relative_to(settings.BASE_DIR))
        for root in roots
        for path in root.rglob("*.py")
        if listing.search(path.read_text()) and path.name != "auth_kinds.py"
    ]
    assert not offenders
    assert not (Path(settings.BASE_DIR) / "partners" / "auth_schemes.py").exists()
