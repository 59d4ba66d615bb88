from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from certification.engine.spec import MAX_SUITE_BYTES
from certification.models import Suite

DEMO_SUITE = Path(settings.BASE_DIR) / "demo" / "suites" / "checkout.yaml"
BROKEN = """name: broken
tests:
  - name: first
    steps:
      - action:
          type: httpRequest
          method: GET
          url: /x
        assertions:
          - assertions:
              - path: response.status
                operator: equals
                value: 200
  - name: second
    steps:
      - name: no action here
        extract: {a: response.body.a}
"""
MINIMAL_TESTS = "tests:\n  - name: t\n    steps:\n      - action: {type: wait, ms: 1}\n"


def test_validate_suite_accepts_the_demo_suite(capsys: Any) -> None:
    call_command("validate_suite", str(DEMO_SUITE))
    assert "suite 'checkout-certification' is valid: 9 scenario(s)" in capsys.readouterr().out


@pytest.mark.django_db
def test_broken_suite_reports_every_error_with_line_and_column_and_stores_nothing(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(CommandError) as excinfo:
        call_command("load_suite", str(path))
    assert excinfo.value.returncode == 2
    err = capsys.readouterr().err
    expected = "scenario 'first' step 1: unknown operator 'equals'; did you mean 'eq'?"
    assert f"{tmp_path}/broken.yaml:12:27: {expected}" in err
    assert f"{tmp_path}/broken.yaml:16:9:" in err and "missing 'action'" in err
    assert Suite.objects.count() == 0


def test_bad_indentation_is_a_positioned_error(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "indent.yaml"
    path.write_text("name: x\ntests:\n  - name: a\n   steps: []\n")
    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", str(path))
    assert excinfo.value.returncode == 2
    assert f"{tmp_path}/indent.yaml:4:" in capsys.readouterr().err


def test_ref_cycle_is_reported(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: x\nitems:\n  - $ref: b.yaml\ntests:\n  - name: t\n    steps:\n"
        "      - action: {type: wait, ms: 1}\n"
    )
    (tmp_path / "b.yaml").write_text("$ref: a.yaml\n")
    with pytest.raises(CommandError):
        call_command("validate_suite", str(tmp_path / "a.yaml"))
    assert "cycle" in capsys.readouterr().err


@pytest.mark.django_db
def test_loading_the_same_suite_twice_stores_one_version(capsys: Any) -> None:
    call_command("load_suite", str(DEMO_SUITE))
    call_command("load_suite", str(DEMO_SUITE))
    assert "Unchanged: suite 'checkout-certification' version 1" in capsys.readouterr().out
    assert Suite.objects.count() == 1
    assert Suite.objects.get().scenarios.count() == 9


@pytest.mark.django_db
def test_changed_content_becomes_the_next_version(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntests:\n  - name: a\n    steps:\n      - action: {type: wait, ms: 1}\n"
    )
    call_command("load_suite", str(path))
    path.write_text(path.read_text().replace("ms: 1", "ms: 2"))
    call_command("load_suite", str(path))
    assert list(Suite.objects.order_by("version").values_list("version", flat=True)) == [1, 2]


def test_missing_file_is_exit_code_2() -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", "nope.yaml")
    assert excinfo.value.returncode == 2


def test_validate_suite_refuses_a_latin1_byte_naming_the_file_line_and_byte(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "cafe.yaml"
    path.write_bytes(b"name: caf\xe9\n" + MINIMAL_TESTS.encode())

    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", str(path))

    assert excinfo.value.returncode == 2
    assert f"{tmp_path}/cafe.yaml:1:10: not valid UTF-8 (byte 0xe9 at offset 9)" in (
        capsys.readouterr().err
    )


def test_validate_suite_refuses_a_bad_byte_in_a_referenced_file(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "a.yaml").write_text("name: s\nitems:\n  - $ref: m.yaml\n" + MINIMAL_TESTS)
    (tmp_path / "m.yaml").write_bytes(b"type: MOCK\nname: caf\xe9\nmockTarget: a\nmockPath: /\n")

    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", str(tmp_path / "a.yaml"))

    assert excinfo.value.returncode == 2
    assert f"{tmp_path}/m.yaml:2:10: not valid UTF-8 (byte 0xe9 at offset 20)" in (
        capsys.readouterr().err
    )


def test_validate_suite_applies_the_size_cap_to_referenced_files(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "a.yaml").write_text("name: s\nitems:\n  - $ref: big.yaml\n" + MINIMAL_TESTS)
    (tmp_path / "big.yaml").write_bytes(b"#" * (2 * MAX_SUITE_BYTES))

    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", str(tmp_path / "a.yaml"))

    assert excinfo.value.returncode == 2
    assert f"{tmp_path}/a.yaml:3:11: item 1: 'big.yaml' is too large" in capsys.readouterr().err


@pytest.mark.django_db
def test_load_suite_stores_nothing_when_a_file_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cafe.yaml"
    path.write_bytes(b"name: caf\xe9\n" + MINIMAL_TESTS.encode())

    with pytest.raises(CommandError) as excinfo:
        call_command("load_suite", str(path))

    assert excinfo.value.returncode == 2
    assert not Suite.objects.exists()


def test_missing_file_names_it_with_exit_code_2(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(CommandError) as excinfo:
        call_command("validate_suite", str(path))

    assert excinfo.value.returncode == 2
    assert f"{path}:1:1: cannot read '{path}': no such file" in capsys.readouterr().err
