"""The partner page shows an endpoint's certificates and PGP keys by what identifies them
(subject, expiry, fingerprint), never as pages of PEM."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.test import Client
from django.urls import reverse

from certification.engine import pgp
from demo.as2_keys import self_signed
from partners.endpoint_keys import certificate_summary, config_display, pgp_summary
from partners.models import Endpoint, Partner

CERTIFICATE = self_signed("INITECH")[1]


def test_a_certificate_is_shown_by_subject_expiry_and_whole_fingerprint() -> None:
    certificate = x509.load_pem_x509_certificate(CERTIFICATE.encode())
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex().upper()
    shown = certificate_summary(CERTIFICATE)
    assert shown.startswith("CN=INITECH, valid until ")
    assert shown.endswith(":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)))


def test_a_pgp_key_is_shown_by_its_fingerprint() -> None:
    _, public = pgp.generate("Partner files", "files@partner.example")
    assert pgp_summary(public).replace(" ", "") == "PGPkey" + pgp.fingerprint(public)


def test_what_does_not_parse_says_so_instead_of_showing_it() -> None:
    shown = dict(config_display({"certificate_pem": "garbage", "pgp_partner_key": "junk"}))
    assert shown == {
        "certificate_pem": "(not a readable certificate)",
        "pgp_partner_key": "(not a readable PGP key)",
    }


def test_other_settings_are_shown_as_saved_in_name_order() -> None:
    assert config_display({"username": "globex", "inbox_dir": "in"}) == [
        ("inbox_dir", "in"),
        ("username", "globex"),
    ]


@pytest.mark.django_db
def test_the_partner_page_shows_no_pem(qa_client: Client, partner_a: Partner) -> None:
    _, public = pgp.generate("Partner files", "files@partner.example")
    Endpoint.objects.create(
        partner=partner_a, name="edi", kind="as2", base_url="http://127.0.0.1:9/as2",
        auth_kind="as2_plain", auth_config={"partner_certificate_pem": CERTIFICATE,
                                            "pgp_partner_key": public},
    )  # fmt: skip
    page = qa_client.get(reverse("partners:detail", args=[partner_a.external_id]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "BEGIN CERTIFICATE" not in body and "BEGIN PGP" not in body
    assert "CN=INITECH, valid until" in body and "PGP key " in body
