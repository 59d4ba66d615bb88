"""The bundle zip: what it holds, in which order, byte-identical builds, and that the standard
tools an auditor has (sha256sum, openssl, python3) verify it exactly as VERIFY.txt says."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from evidence import archive, signing
from tests.evidence import (
    BUNDLE_MEMBERS,
    FIXED_TIME,
    bundle_files,
    members,
    run,
    unzip,
)


@pytest.fixture
def unzipped(bundle: bytes, tmp_path: Path) -> Path:
    return unzip(bundle, tmp_path)


def test_sha256sum_checks_every_file_ok_as_verify_txt_says(unzipped: Path) -> None:
    result = run(archive.SUMS_CHECK, unzipped)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.endswith(": OK") for line in lines)
    assert len(lines) == len(BUNDLE_MEMBERS) - 2


def test_openssl_verifies_the_signature_as_verify_txt_says(unzipped: Path) -> None:
    result = run(archive.SIGNATURE_CHECK, unzipped)
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout


def test_the_unlisted_files_command_of_verify_txt_prints_nothing(unzipped: Path) -> None:
    result = run(archive.UNLISTED_CHECK, unzipped)
    assert (result.returncode, result.stdout) == (0, "")


def test_the_unlisted_files_command_of_verify_txt_shows_an_added_file(unzipped: Path) -> None:
    (unzipped / "extra.txt").write_text("added later\n")
    result = run(archive.UNLISTED_CHECK, unzipped)
    assert result.returncode != 0 and "extra.txt" in result.stdout


def test_the_fingerprint_in_verify_txt_is_what_openssl_prints_for_the_key(unzipped: Path) -> None:
    printed = run(archive.FINGERPRINT_CHECK, unzipped).stdout.split()[0]
    assert f"SHA256:{printed}" in (unzipped / "VERIFY.txt").read_text()
    assert f"SHA256:{printed}" == signing.fingerprint(signing.signing_key())


def test_the_python_chain_check_of_verify_txt_reports_the_chain_ok(unzipped: Path) -> None:
    result = run(archive.CHAIN_CHECK, unzipped)
    head = hashlib.sha256((unzipped / "results.jsonl").read_bytes().splitlines()[-1]).hexdigest()
    assert result.stdout.strip().endswith(f"head {head}"), result.stderr
    assert result.stdout.startswith("chain OK")


def test_the_python_chain_check_of_verify_txt_reports_a_removed_record(unzipped: Path) -> None:
    path = unzipped / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3] + lines[4:]))
    assert run(archive.CHAIN_CHECK, unzipped).stdout.strip() == "chain BROKEN at line 4"


def test_verify_txt_gives_the_exact_commands_and_where_to_compare_the_fingerprint(
    bundle: bytes,
) -> None:
    text = members(bundle)["VERIFY.txt"].decode()
    for command in (
        archive.SUMS_CHECK,
        archive.SIGNATURE_CHECK,
        archive.FINGERPRINT_CHECK,
        archive.UNLISTED_CHECK,
        archive.CHAIN_CHECK,
    ):
        assert f"\n     {command}\n" in text
    assert "empty folder" in text and "Signature Verified Successfully" in text
    assert "/about/signing-keys/" in text and "certifying organisation" in text
    assert "python manage.py verify_bundle BUNDLE.zip" in text


def test_entries_are_the_given_files_in_order_then_sums_signature_key_and_instructions(
    bundle: bytes,
) -> None:
    assert list(members(bundle)) == BUNDLE_MEMBERS


def test_sha256sums_is_in_sha256sum_format_sorted_and_covers_every_other_file(
    bundle: bytes,
) -> None:
    contents = members(bundle)
    expected = "".join(
        f"{hashlib.sha256(contents[name]).hexdigest()}  {name}\n"
        for name in sorted(set(contents) - {"SHA256SUMS", "SHA256SUMS.sig"})
    )
    assert contents["SHA256SUMS"].decode() == expected
    assert "  signing-key.pem\n" in expected and "  VERIFY.txt\n" in expected


def test_the_signature_is_the_keys_ed25519_signature_of_sha256sums(bundle: bytes) -> None:
    contents = members(bundle)
    public = load_pem_public_key(contents["signing-key.pem"])
    assert contents["signing-key.pem"].decode() == signing.public_key_pem()
    public.verify(contents["SHA256SUMS.sig"], contents["SHA256SUMS"])  # type: ignore[call-arg,union-attr]


def test_the_same_input_gives_a_byte_identical_zip_and_its_sha256(signing_pem: str) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    files = bundle_files()
    digest = archive.write_bundle_zip(out=first, files=files, fixed_time=FIXED_TIME)
    again = archive.write_bundle_zip(out=second, files=bundle_files(), fixed_time=FIXED_TIME)
    assert first.getvalue() == second.getvalue()
    assert digest == again == hashlib.sha256(first.getvalue()).hexdigest()


def test_a_zip_written_to_a_file_is_the_same_as_one_written_to_memory(
    bundle: bytes, tmp_path: Path
) -> None:
    with (tmp_path / "b.zip").open("wb") as out:
        archive.write_bundle_zip(out=out, files=bundle_files(), fixed_time=FIXED_TIME)
    assert (tmp_path / "b.zip").read_bytes() == bundle


def test_files_given_as_paths_give_the_same_zip_as_bytes(bundle: bytes, tmp_path: Path) -> None:
    files = []
    for name, data in bundle_files():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        files.append((name, path))
    out = io.BytesIO()
    archive.write_bundle_zip(out=out, files=files, fixed_time=FIXED_TIME)
    assert out.getvalue() == bundle


def test_every_entry_has_the_fixed_time_permissions_and_compression(bundle: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        infos = z.infolist()
    assert {
        (i.date_time, i.external_attr, i.create_system, i.compress_type, i.extra) for i in infos
    } == {((2025, 3, 14, 9, 26, 52), 0o644 << 16, 3, zipfile.ZIP_DEFLATED, b"")}


def test_a_large_file_given_as_a_path_is_streamed_not_read_whole(
    signing_pem: str, tmp_path: Path
) -> None:
    size = 24 * 1024 * 1024
    big = tmp_path / "results.jsonl"
    with big.open("wb") as handle:
        for n in range(size // 64):
            handle.write(f"{n:063d}\n".encode())
    tracemalloc.start()
    try:
        with (tmp_path / "b.zip").open("wb") as out:
            archive.write_bundle_zip(out=out, files=[("results.jsonl", big)], fixed_time=FIXED_TIME)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4
    with zipfile.ZipFile(tmp_path / "b.zip") as z, z.open("results.jsonl") as member:
        stored = hashlib.file_digest(member, "sha256").hexdigest()
    assert stored == hashlib.sha256(big.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "/etc/passwd", "suite\\x.yaml", "suite/../../x", "", "suite//x", "C:x", "a/."],
)
def test_an_unsafe_entry_name_is_refused(signing_pem: str, name: str) -> None:
    with pytest.raises(ValueError, match="zip entry"):
        archive.write_bundle_zip(out=io.BytesIO(), files=[(name, b"x")], fixed_time=FIXED_TIME)


@pytest.mark.parametrize("name", ["SHA256SUMS", "SHA256SUMS.sig", "signing-key.pem", "VERIFY.txt"])
def test_a_file_may_not_take_the_name_of_one_the_archive_writes(
    signing_pem: str, name: str
) -> None:
    with pytest.raises(ValueError, match="written by the archive"):
        archive.write_bundle_zip(out=io.BytesIO(), files=[(name, b"x")], fixed_time=FIXED_TIME)


def test_a_file_given_twice_is_refused(signing_pem: str) -> None:
    with pytest.raises(ValueError, match="given twice"):
        archive.write_bundle_zip(
            out=io.BytesIO(), files=[("a.txt", b"1"), ("a.txt", b"2")], fixed_time=FIXED_TIME
        )
