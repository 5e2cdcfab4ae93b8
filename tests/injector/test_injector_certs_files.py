"""`deucalion injector certs --out-dir DIR` as deploy/README.md runs it: the files it writes
follow the house rules (owner-only new directory and keys, never through a link)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from deucalion.cli import main


def test_a_new_out_dir_is_its_owners_only(tmp_path: Path) -> None:
    out = tmp_path / "injector-certs"
    assert main(["injector", "certs", "--out-dir", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_a_symbolic_link_in_place_of_a_key_is_refused_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "injector-certs"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not a key\n")
    (out / "ca.key").symlink_to(elsewhere)
    assert main(["injector", "certs", "--out-dir", str(out)]) == 1
    assert elsewhere.read_text() == "not a key\n"
    err = capsys.readouterr().err
    assert "ca.key" in err and "symbolic link" in err
