"""OpenPGP with the system gpg: what we encrypt a partner can decrypt, signatures are valid only
from the pinned key, bad keys are refused with a clear message, and no keyring stays behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import gnupg
import pytest

from certification.engine import pgp

# Outside CI a machine without gpg skips these; CI installs it, so there they run.
pytestmark = pytest.mark.skipif(
    not pgp.available() and not os.environ.get("CI"), reason="gpg is not installed"
)


@pytest.fixture(scope="module")
def partner() -> tuple[str, str]:
    return pgp.generate("Partner files", "files@partner.example")


@pytest.fixture(scope="module")
def ours() -> tuple[str, str]:
    return pgp.generate("Certdash QA", "qa@certdash.example")


def test_what_we_encrypt_and_sign_the_partner_decrypts_with_our_signature_valid(
    partner: tuple[str, str], ours: tuple[str, str]
) -> None:
    sealed = pgp.encrypt(b"sku,quantity\nA,1\n", partner[1], signer=ours[0])
    assert b"sku,quantity" not in sealed and pgp.looks_encrypted("x.csv", sealed)
    opened = pgp.decrypt(sealed, partner[0], verify_with=ours[1])
    assert opened.data == b"sku,quantity\nA,1\n"
    assert (opened.signed, opened.signature_valid) == (True, True)
    assert opened.signer == pgp.fingerprint(ours[1])


def test_a_signature_by_a_key_other_than_the_pinned_one_is_not_valid(
    partner: tuple[str, str], ours: tuple[str, str]
) -> None:
    stranger = pgp.generate("Stranger", "x@stranger.example")
    sealed = pgp.encrypt(b"data", partner[1], signer=stranger[0])
    opened = pgp.decrypt(sealed, partner[0], verify_with=ours[1])
    assert (opened.signed, opened.signature_valid, opened.signer) == (True, False, "")


def test_an_unsigned_message_is_not_signed(partner: tuple[str, str]) -> None:
    opened = pgp.decrypt(pgp.encrypt(b"data", partner[1]), partner[0])
    assert (opened.data, opened.signed, opened.signature_valid) == (b"data", False, False)


def test_a_message_for_another_key_cannot_be_decrypted(
    partner: tuple[str, str], ours: tuple[str, str]
) -> None:
    sealed = pgp.encrypt(b"data", partner[1])
    with pytest.raises(pgp.PgpError, match="not encrypted to our PGP key"):
        pgp.decrypt(sealed, ours[0])


@pytest.mark.parametrize(
    ("text", "secret", "message"),
    [
        ("not a key", False, "not an ASCII-armored PGP public key block"),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----",
            False,
            "could not be read as a PGP key",
        ),  # fmt: skip
        ("not a key", True, "not an ASCII-armored PGP private key block"),
    ],
)
def test_what_is_not_a_key_is_refused_saying_so(text: str, secret: bool, message: str) -> None:
    with pytest.raises(pgp.PgpError, match=message):
        pgp.fingerprint(text, "the key", secret=secret)


def test_a_public_key_given_as_the_private_one_is_refused(partner: tuple[str, str]) -> None:
    with pytest.raises(pgp.PgpError, match="private key block"):
        pgp.fingerprint(partner[1], "our PGP key", secret=True)


def test_a_private_key_with_a_passphrase_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = gnupg.GPG(gnupghome=str(home), options=["--batch", "--pinentry-mode", "loopback"])
    try:
        spec = gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH",
                                 subkey_curve="cv25519", name_email="p@x.example",
                                 passphrase="secret words")  # fmt: skip
        made = gpg.gen_key(spec)
        armored = str(gpg.export_keys(made.fingerprint, secret=True, passphrase="secret words"))
    finally:  # no gpg-agent left running for this keyring
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    with pytest.raises(pgp.PgpError, match="passphrase"):
        pgp.fingerprint(armored, "our PGP key", secret=True)


def test_no_keyring_outlives_an_operation(
    partner: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgp, "KEYRING_DIR", str(tmp_path))
    pgp.decrypt(pgp.encrypt(b"data", partner[1]), partner[0])
    with pytest.raises(pgp.PgpError):
        pgp.fingerprint("not a key")
    assert list(tmp_path.iterdir()) == []


def test_the_public_half_of_our_key_is_what_a_partner_encrypts_to(
    ours: tuple[str, str],
) -> None:
    public = pgp.public_key(ours[0])
    assert "PUBLIC KEY BLOCK" in public and "PRIVATE" not in public
    assert pgp.decrypt(pgp.encrypt(b"x", public), ours[0]).data == b"x"
