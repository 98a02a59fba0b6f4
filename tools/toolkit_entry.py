"""Process entry point that runs the real SageMaker Hugging Face serving toolkit locally.

Started as a script (``python tools/toolkit_entry.py``) by :mod:`tools.toolkit_server`,
never imported by it: this file runs inside the server's own process and its
Multi Model Server workers inherit that process's ``sys.path``, so it imports
nothing from this repository.

It calls ``sagemaker_huggingface_inference_toolkit.serving.main()``, exactly what
the DLC's entry point calls, after three changes that only isolate one local
server from another and from the host; request handling (the Java frontend, the
Python worker, ``HuggingFaceHandlerService`` and our ``code/inference.py``) is
untouched:

1. The MMS configuration file, hard-coded to ``/etc/sagemaker-mms.properties``,
   goes to ``$TOOLKIT_MMS_CONFIG`` so that servers do not overwrite each other's
   configuration and nothing is written outside the work directory.
2. The toolkit finds "its" Java process by scanning every process for the MMS
   main class and refuses to continue when there are two; here it looks only for
   the Java process started with this server's configuration file, so a test
   server and a developer's ``python -m tools.serve`` can run side by side.
3. With ``HF_MODEL_ID`` set, the toolkit downloads the model from the Hugging
   Face Hub at start-up (``transformers_utils._load_model_from_hub``), which
   makes exactly two network calls: ``HfApi().model_info(model_id)`` (to see
   whether safetensors exist) and ``snapshot_download(model_id, revision=...,
   local_dir=..., ignore_patterns=...)``. When ``TOOLKIT_LOCAL_HUB_SNAPSHOT``
   names a local model directory, only those two calls are replaced: the first
   lists that directory's files, the second copies them (minus the ignored
   patterns) to the requested ``local_dir``. The toolkit's own function runs
   around them, so the storage path, the revision and the weight filter are
   the toolkit's. Each call is appended to ``$TOOLKIT_HUB_CALLS`` (JSON lines)
   so a test can check what the toolkit asked for.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import sagemaker_inference.model_server as sm_model_server
from sagemaker_huggingface_inference_toolkit import mms_model_server, serving, transformers_utils

CONFIG_ENV = "TOOLKIT_MMS_CONFIG"
HUB_SNAPSHOT_ENV = "TOOLKIT_LOCAL_HUB_SNAPSHOT"
HUB_CALLS_ENV = "TOOLKIT_HUB_CALLS"


def _find_own_mms_process(config_file: str) -> psutil.Process:
    """Return the MMS Java process that was started with ``config_file``.

    Raises like the toolkit's own lookup does, so its retry loop keeps waiting
    while Java starts.
    """
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if sm_model_server.MMS_NAMESPACE in cmdline and config_file in cmdline:
            return process
    raise RuntimeError(f"no MMS process started with {config_file} yet")


def _record(call: str, **details: Any) -> None:
    """Append one faked Hub call to ``$TOOLKIT_HUB_CALLS`` (when set)."""
    path = os.environ.get(HUB_CALLS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"call": call, **details}) + "\n")


def _snapshot_files(source: Path) -> list[str]:
    return sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())


class _LocalHubApi:
    """Stand-in for ``huggingface_hub.HfApi``: ``model_info`` lists the local snapshot."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def model_info(self, repo_id: str, *args: Any, **kwargs: Any) -> SimpleNamespace:
        source = Path(os.environ[HUB_SNAPSHOT_ENV])
        _record("model_info", repo_id=repo_id, revision=kwargs.get("revision"))
        siblings = [SimpleNamespace(rfilename=name) for name in _snapshot_files(source)]
        return SimpleNamespace(id=repo_id, siblings=siblings)


def _local_snapshot_download(
    repo_id: str,
    *,
    revision: str | None = None,
    local_dir: str,
    ignore_patterns: list[str] | str | None = None,
    **kwargs: Any,
) -> str:
    """Stand-in for ``snapshot_download``: copy the local snapshot, honouring the filter."""
    del kwargs  # local_dir_use_symlinks and the like: a plain copy either way
    source = Path(os.environ[HUB_SNAPSHOT_ENV])
    patterns = [ignore_patterns] if isinstance(ignore_patterns, str) else ignore_patterns or []
    copied = []
    for name in _snapshot_files(source):
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            continue
        target = Path(local_dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
        copied.append(name)
    _record(
        "snapshot_download",
        repo_id=repo_id,
        revision=revision,
        local_dir=local_dir,
        ignore_patterns=patterns,
        files=copied,
    )
    return local_dir


def main() -> None:
    """Apply the isolation changes and hand over to the toolkit's own ``main``."""
    config_file = os.environ[CONFIG_ENV]
    sm_model_server.MMS_CONFIG_FILE = config_file
    mms_model_server.MMS_CONFIG_FILE = config_file
    sm_model_server._retrieve_mms_server_process = lambda: _find_own_mms_process(config_file)
    if os.environ.get(HUB_SNAPSHOT_ENV):
        transformers_utils.HfApi = _LocalHubApi
        transformers_utils.snapshot_download = _local_snapshot_download
    serving.main()


if __name__ == "__main__":
    main()
