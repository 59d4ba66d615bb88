"""verify_bundle and its command: a bundle written by the archive verifies; any changed byte,
removed or reordered record, added file or foreign key is caught and named, by verify_bundle
and by the standard tools VERIFY.txt gives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from evidence import archive, signing
from evidence.verify import UnreadableBundle, verify_bundle, verify_chain
from tests.evidence import (
    BUNDLE_MEMBERS,
    build_zip,
    bundle_files,
    flip_byte,
    members,
    rezip,
    run,
    unzip,
)


def _write(tmp_path: Path, data: bytes, name: str = "bundle.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _changed(bundle: bytes, name: str, data: bytes) -> bytes:
    return rezip({**members(bundle), name: data})


def _sums(contents: dict[str, bytes]) -> bytes:
    listed = sorted(set(contents) - {"SHA256SUMS", "SHA256SUMS.sig"})
    return "".join(f"{hashlib.sha256(contents[n]).hexdigest()}  {n}\n" for n in listed).encode()


def _results_lines(bundle: bytes) -> list[bytes]:
    return members(bundle)["results.jsonl"].splitlines(keepends=True)


def test_a_bundle_written_by_the_archive_verifies(bundle: bytes, tmp_path: Path) -> None:
    report = verify_bundle(_write(tmp_path, bundle))
    assert report.ok, report.failure
    assert report.fingerprint == signing.fingerprint(signing.signing_key())
    assert {c.subject for c in report.checks} >= set(BUNDLE_MEMBERS) - {"SHA256SUMS.sig"} | {"zip"}


@pytest.mark.parametrize("name", BUNDLE_MEMBERS)
def test_a_flipped_byte_in_any_file_fails_verification_naming_that_file(
    bundle: bytes, tmp_path: Path, name: str
) -> None:
    tampered = _changed(bundle, name, flip_byte(members(bundle)[name]))
    report = verify_bundle(_write(tmp_path, tampered))
    assert not report.ok
    assert report.failure is not None and report.failure.subject == name, report.failure


@pytest.mark.parametrize("name", BUNDLE_MEMBERS)
def test_a_flipped_byte_in_any_file_fails_sha256sum_or_openssl(
    bundle: bytes, tmp_path: Path, name: str
) -> None:
    folder = unzip(bundle, tmp_path)
    path = folder / name
    path.write_bytes(flip_byte(path.read_bytes()))
    sums, signature = run(archive.SUMS_CHECK, folder), run(archive.SIGNATURE_CHECK, folder)
    assert sums.returncode != 0 or signature.returncode != 0


def test_a_flipped_byte_in_sha256sums_fails_openssl(bundle: bytes, tmp_path: Path) -> None:
    folder = unzip(bundle, tmp_path)
    sums = folder / "SHA256SUMS"
    sums.write_bytes(flip_byte(sums.read_bytes()))
    result = run(archive.SIGNATURE_CHECK, folder)
    assert result.returncode != 0 and "Signature Verified Successfully" not in result.stdout


def test_a_flipped_byte_in_the_certificate_is_named_by_sha256sum(
    bundle: bytes, tmp_path: Path
) -> None:
    folder = unzip(bundle, tmp_path)
    pdf = folder / "certificate.pdf"
    pdf.write_bytes(flip_byte(pdf.read_bytes()))
    result = run(archive.SUMS_CHECK, folder)
    assert result.returncode != 0 and "certificate.pdf: FAILED" in result.stdout


def _forged_without_the_key(bundle: bytes) -> bytes:
    """results.jsonl with record 3 removed, SHA256SUMS hashed anew, the old signature kept:
    all a forger without the signing key can do."""
    contents = members(bundle)
    lines = _results_lines(bundle)
    contents["results.jsonl"] = b"".join(lines[:3] + lines[4:])
    contents["SHA256SUMS"] = _sums(contents)
    return rezip(contents)


def test_a_removed_record_with_sha256sums_rehashed_fails_the_signature(
    bundle: bytes, tmp_path: Path
) -> None:
    report = verify_bundle(_write(tmp_path, _forged_without_the_key(bundle)))
    assert report.failure is not None
    assert report.failure.line().startswith(
        "FAILED: SHA256SUMS.sig: signature does not verify with signing-key.pem"
    )


def test_a_removed_record_with_sha256sums_rehashed_passes_sha256sum_but_fails_openssl(
    bundle: bytes, tmp_path: Path
) -> None:
    folder = unzip(_forged_without_the_key(bundle), tmp_path)
    assert run(archive.SUMS_CHECK, folder).returncode == 0
    assert run(archive.SIGNATURE_CHECK, folder).returncode != 0


def test_verify_chain_names_the_place_of_a_removed_record(bundle: bytes) -> None:
    lines = _results_lines(bundle)
    result = verify_chain(lines[:3] + lines[4:])
    assert not result.ok and result.message == "record 3: seq is 4, expected 3"


def test_verify_chain_names_a_removed_record_even_when_seq_is_renumbered(bundle: bytes) -> None:
    lines = _results_lines(bundle)
    kept = lines[:3] + lines[4:]
    renumbered = []
    for index, line in enumerate(kept):
        record = json.loads(line)
        record["seq"] = index
        renumbered.append(
            json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        )
    result = verify_chain(renumbered)
    assert result.message == "record 3: prev does not match the sha256 of record 2"


def test_verify_chain_detects_two_reordered_records(bundle: bytes) -> None:
    lines = _results_lines(bundle)
    lines[4], lines[5] = lines[5], lines[4]
    result = verify_chain(lines)
    assert not result.ok and result.message == "record 4: seq is 5, expected 4"


def test_reordered_records_in_a_bundle_fail_verification_naming_results_jsonl(
    bundle: bytes, tmp_path: Path
) -> None:
    lines = _results_lines(bundle)
    lines[4], lines[5] = lines[5], lines[4]
    report = verify_bundle(_write(tmp_path, _changed(bundle, "results.jsonl", b"".join(lines))))
    assert report.failure is not None and report.failure.subject == "results.jsonl"


def test_verify_chain_requires_the_end_record(bundle: bytes) -> None:
    result = verify_chain(_results_lines(bundle)[:-1])
    assert result.message == "chain ends without its end record"


def test_verify_chain_checks_the_count_in_the_end_record(bundle: bytes) -> None:
    lines = _results_lines(bundle)
    end = json.loads(lines[-1])
    end["records"] += 1
    lines[-1] = json.dumps(end, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    result = verify_chain(lines)
    assert not result.ok and "the end record counts" in result.message


def test_a_whole_chain_reports_its_head_and_length(bundle: bytes) -> None:
    lines = _results_lines(bundle)
    result = verify_chain(lines)
    assert result.ok
    assert (result.records, result.head_sha256) == (
        len(lines),
        hashlib.sha256(lines[-1].rstrip(b"\n")).hexdigest(),
    )


def _signed_with(contents: dict[str, bytes], key: Ed25519PrivateKey) -> bytes:
    """The bundle as a forger holding their own key would rebuild it."""
    contents = dict(contents)
    contents["signing-key.pem"] = key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    contents["SHA256SUMS"] = _sums(contents)
    contents["SHA256SUMS.sig"] = key.sign(contents["SHA256SUMS"])
    return rezip(contents)


def test_a_bundle_re_signed_with_another_key_fails_against_the_published_fingerprint(
    bundle: bytes, tmp_path: Path
) -> None:
    contents = members(bundle)
    lines = _results_lines(bundle)
    contents["results.jsonl"] = b"".join(lines[:3] + lines[4:])  # the chain is broken too
    forged = _signed_with(contents, Ed25519PrivateKey.generate())
    published = signing.fingerprint(signing.signing_key())
    report = verify_bundle(_write(tmp_path, forged), key=published)
    assert report.failure is not None and report.failure.subject == "signing-key.pem"
    assert f"is not the expected {published}" in report.failure.message


def test_a_bundle_re_signed_with_another_key_reports_that_key_to_compare(
    bundle: bytes, tmp_path: Path
) -> None:
    other = Ed25519PrivateKey.generate()
    report = verify_bundle(_write(tmp_path, _signed_with(members(bundle), other)))
    assert report.ok and not report.key_checked
    assert report.fingerprint == signing.fingerprint(other)
    assert any("must be compared with the published one" in c.message for c in report.checks)


def test_the_published_key_given_as_a_pem_file_is_checked(bundle: bytes, tmp_path: Path) -> None:
    published = tmp_path / "published.pem"
    published.write_text(signing.public_key_pem())
    report = verify_bundle(_write(tmp_path, bundle), key=str(published))
    assert report.ok and report.key_checked


def test_an_added_file_fails_verification_as_not_listed(bundle: bytes, tmp_path: Path) -> None:
    tampered = rezip({**members(bundle), "extra.txt": b"added later\n"})
    report = verify_bundle(_write(tmp_path, tampered))
    assert report.failure is not None
    assert report.failure.line() == "FAILED: extra.txt: not listed in SHA256SUMS"


def test_a_removed_file_fails_verification_as_missing(bundle: bytes, tmp_path: Path) -> None:
    contents = members(bundle)
    del contents["exchanges.har"]
    report = verify_bundle(_write(tmp_path, rezip(contents)))
    assert report.failure is not None
    assert report.failure.line() == (
        "FAILED: exchanges.har: listed in SHA256SUMS but missing from the bundle"
    )


def test_a_certification_json_whose_head_is_not_the_chains_fails_verification(
    signing_pem: str, tmp_path: Path
) -> None:
    files = bundle_files()
    summary = json.loads(files[0][1])
    summary["results"]["headSha256"] = "0" * 64
    files[0] = ("certification.json", json.dumps(summary).encode())
    report = verify_bundle(_write(tmp_path, build_zip(files)))
    assert report.failure is not None and report.failure.subject == "certification.json"
    assert "results.headSha256" in report.failure.message


def test_a_certification_json_with_the_chains_head_and_count_passes(
    bundle: bytes, tmp_path: Path
) -> None:
    report = verify_bundle(_write(tmp_path, bundle))
    assert any(
        c.subject == "certification.json" and "match results.jsonl" in c.message
        for c in report.checks
    )


def test_a_file_that_is_not_a_zip_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableBundle, match="not a zip file"):
        verify_bundle(_write(tmp_path, b"%PDF-1.7 not a zip"))


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableBundle, match="no such file"):
        verify_bundle(tmp_path / "missing.zip")


# ----------------------------------------------------------------------------- the command


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "verify_bundle", *args],
        cwd=settings.BASE_DIR,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_exits_0_with_one_ok_line_per_check_for_a_good_bundle(
    bundle: bytes, tmp_path: Path
) -> None:
    result = _command(str(_write(tmp_path, bundle)))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("OK: ") for line in lines[:-1])
    assert "OK: results.jsonl: chain of" in result.stdout
    fingerprint = signing.fingerprint(signing.signing_key())
    assert lines[-1].startswith(f"Bundle verified, signed with the key {fingerprint}")
    assert "compare it with the published fingerprint" in lines[-1]


def test_the_command_with_the_published_key_says_so(bundle: bytes, tmp_path: Path) -> None:
    fingerprint = signing.fingerprint(signing.signing_key())
    result = _command(str(_write(tmp_path, bundle)), "--key", fingerprint)
    assert result.returncode == 0
    assert f"OK: signing-key.pem: is the expected key {fingerprint}" in result.stdout


def test_the_command_exits_1_naming_the_first_file_that_fails(
    bundle: bytes, tmp_path: Path
) -> None:
    tampered = _changed(bundle, "certificate.pdf", flip_byte(members(bundle)["certificate.pdf"]))
    result = _command(str(_write(tmp_path, tampered)))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "FAILED: certificate.pdf: sha256 does not match SHA256SUMS"
    )
    assert "Traceback" not in result.stderr


def test_the_command_exits_1_naming_a_broken_record(signing_pem: str, tmp_path: Path) -> None:
    files = bundle_files()
    lines = dict(files)["results.jsonl"].splitlines(keepends=True)
    files = [(n, b"".join(lines[:3] + lines[4:]) if n == "results.jsonl" else d) for n, d in files]
    result = _command(str(_write(tmp_path, build_zip(files))))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "FAILED: results.jsonl record 3: seq is 4, expected 3"
    )


def test_the_command_exits_2_for_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    result = _command(str(_write(tmp_path, b"not a zip at all")))
    assert result.returncode == 2
    assert "not a zip file" in result.stderr and "Traceback" not in result.stderr


def test_the_command_exits_2_for_a_missing_file(tmp_path: Path) -> None:
    result = _command(str(tmp_path / "missing.zip"))
    assert result.returncode == 2
    assert "missing.zip: no such file" in result.stderr and "Traceback" not in result.stderr


def test_the_command_exits_2_for_an_unreadable_key(bundle: bytes, tmp_path: Path) -> None:
    result = _command(str(_write(tmp_path, bundle)), "--key", str(tmp_path / "nope.pem"))
    assert result.returncode == 2
    assert "--key" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_entry_in_the_zip_fails_verification_naming_that_file(
    bundle: bytes, tmp_path: Path
) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        info = z.getinfo("certificate.pdf")
    data_start = info.header_offset + 30 + len(info.filename.encode())
    damaged = flip_byte(bundle, data_start + info.compress_size // 2)
    report = verify_bundle(_write(tmp_path, damaged))
    assert report.failure is not None and report.failure.subject == "certificate.pdf"
    assert "cannot be read from the zip" in report.failure.message


def test_a_file_added_twice_to_the_zip_fails_verification(bundle: bytes, tmp_path: Path) -> None:
    doubled = io.BytesIO(bundle)
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(doubled, "a") as z,
    ):
        z.writestr("certificate.pdf", b"%PDF-1.7 another certificate")
    report = verify_bundle(_write(tmp_path, doubled.getvalue()))
    assert report.failure is not None
    assert report.failure.line() == "FAILED: certificate.pdf: appears twice in the zip"
