"""The inference code archive is deterministic and holds exactly code/."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from stacks.model_artifact import build_model_archive

ROOT = Path(__file__).resolve().parents[2]


def test_archive_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    a = build_model_archive(ROOT / "model", tmp_path / "a" / "model.tar.gz").read_bytes()
    b = build_model_archive(ROOT / "model", tmp_path / "b" / "model.tar.gz").read_bytes()
    assert a == b


def test_archive_holds_code_and_no_build_debris(tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "__pycache__").mkdir(parents=True)
    (src / "inference.py").write_text("def model_fn(d):\n    return d\n")
    (src / "requirements.txt").write_text("")
    (src / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"\0")
    (src / ".hidden").write_text("x")
    out = build_model_archive(src, tmp_path / "out" / "model.tar.gz")
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == ["code/inference.py", "code/requirements.txt"]
    assert all(m.mtime == 0 and m.uid == 0 for m in members)


def test_real_model_code_is_packaged(tmp_path: Path) -> None:
    out = build_model_archive(ROOT / "model", tmp_path / "model.tar.gz")
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "code/inference.py" in names


def test_missing_inference_code_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"inference\.py is missing"):
        build_model_archive(tmp_path / "empty", tmp_path / "out.tar.gz")
