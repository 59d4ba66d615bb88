from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from evidence import signing
from tests.evidence import build_zip


@pytest.fixture(scope="module")
def signing_pem() -> Iterator[str]:
    """A fresh signing key for the module's bundles."""
    pem = signing.generate_pem()
    with override_settings(EVIDENCE_SIGNING_KEY=pem):
        yield pem


@pytest.fixture(scope="module")
def bundle(signing_pem: str) -> bytes:
    """The hand-built test bundle, zipped and signed with ``signing_pem``."""
    return build_zip()
