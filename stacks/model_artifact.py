"""Package ``model/`` as the ``model.tar.gz`` the SageMaker endpoint receives.

The Hugging Face inference toolkit loads ``code/inference.py`` (and installs
``code/requirements.txt``) from the model archive, while the weights come from
the Hub at the pinned revision. The archive is built byte-for-byte
reproducibly (sorted entries, fixed timestamps and owners, gzip header without
a date) so that its asset hash, and therefore the SageMaker model, only changes
when our inference code does.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

# Files of model/ that are development aids, not part of the endpoint.
_EXCLUDED_NAMES = {"__pycache__", "README.md", "__init__.py"}


def _included(path: Path) -> bool:
    return not any(part in _EXCLUDED_NAMES or part.startswith(".") for part in path.parts) and (
        path.suffix not in (".pyc", ".pyo")
    )


def build_model_archive(source_dir: Path, out_file: Path) -> Path:
    """Write ``out_file`` holding ``code/<files of source_dir>``; return its path."""
    files = sorted(
        p.relative_to(source_dir)
        for p in source_dir.rglob("*")
        if p.is_file() and _included(p.relative_to(source_dir))
    )
    if Path("inference.py") not in files:
        raise FileNotFoundError(
            f"{source_dir}/inference.py is missing: nothing for the endpoint to run"
        )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            data = (source_dir / rel).read_bytes()
            info = tarfile.TarInfo(name=f"code/{rel.as_posix()}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    new = packed.getvalue()
    # Rewrite only on change, so file watchers and mtimes stay quiet.
    if not out_file.exists() or out_file.read_bytes() != new:
        out_file.write_bytes(new)
    return out_file
