from __future__ import annotations

from typing import Any

from evidence.checks import signing_key_is_usable


def test_an_unparsable_signing_key_is_a_system_check_error(settings: Any) -> None:
    settings.EVIDENCE_SIGNING_KEY = "not a key"
    (error,) = signing_key_is_usable()
    assert error.id == "evidence.E001" and "EVIDENCE_SIGNING_KEY" in error.msg
    assert "not a key" not in error.msg


def test_an_empty_signing_key_in_development_passes_the_check(settings: Any) -> None:
    settings.EVIDENCE_SIGNING_KEY = ""
    assert signing_key_is_usable() == []
