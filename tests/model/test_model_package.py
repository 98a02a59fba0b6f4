"""The model directory the local server and tests use is the endpoint's, byte for byte."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from model import inference
from stacks.model_artifact import build_model_archive
from tools import serve
from tools.model_package import MODEL_CODE_DIR, build_model_dir

ROOT = Path(__file__).resolve().parents[2]


def test_code_dir_holds_exactly_the_deployed_archive(tmp_path: Path, model_path: Path) -> None:
    model_dir = build_model_dir(tmp_path / "opt_ml" / "model", model_path)
    with tarfile.open(build_model_archive(MODEL_CODE_DIR, tmp_path / "deployed.tar.gz")) as tar:
        deployed = {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }
    local = {
        path.relative_to(model_dir).as_posix(): path.read_bytes()
        for path in (model_dir / "code").rglob("*")
        if path.is_file()
    }
    assert local == deployed
    assert set(local) == {"code/inference.py", "code/fast_path.py", "code/requirements.txt"}
    assert (model_dir / "code" / "inference.py").read_bytes() == (
        ROOT / "model" / "inference.py"
    ).read_bytes()


def test_weights_are_linked_at_the_top_like_an_unpacked_model_archive(
    tmp_path: Path, model_path: Path
) -> None:
    model_dir = build_model_dir(tmp_path / "model", model_path)
    assert (model_dir / "config.json").resolve() == (model_path / "config.json").resolve()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "1_Pooling" / "config.json").is_file()


def test_hub_layout_has_code_only(tmp_path: Path) -> None:
    model_dir = build_model_dir(tmp_path / "model", None)
    assert [p.name for p in model_dir.iterdir()] == ["code"]


def test_a_directory_without_config_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        build_model_dir(tmp_path / "model", tmp_path / "not-a-model")


def test_model_fn_reads_its_configuration_from_the_environment(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_QUERY_PREFIX", "q> ")
    monkeypatch.setenv("EMBEDDING_MAX_TEXTS", "7")
    monkeypatch.setenv("EMBEDDING_THREADS", "1")
    monkeypatch.setenv("EMBEDDING_MAX_REQUEST_TOKENS", "6144")
    loaded = inference.model_fn(str(model_path))
    assert loaded.config.query_prefix == "q> "
    assert loaded.config.max_texts == 7
    assert loaded.config.max_request_tokens == 6144
    assert loaded.max_tokens == 512  # E5's window
    monkeypatch.setenv("EMBEDDING_TOKEN_BUDGET", "none")
    with pytest.raises(ValueError, match="EMBEDDING_TOKEN_BUDGET"):
        inference.model_fn(str(model_path))


@pytest.mark.parametrize("port", ["0", "32767", "40000"])
def test_serve_refuses_ports_mms_cannot_bind(port: str) -> None:
    with pytest.raises(SystemExit):
        serve.parse_args(["--port", port])


def test_serve_defaults() -> None:
    args = serve.parse_args([])
    assert (args.port, args.model_dir, args.hub_layout, args.workers) == (8080, None, False, 1)
