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
   Face Hub at start-up. When ``TOOLKIT_LOCAL_HUB_SNAPSHOT`` names a local
   model directory, that directory is copied to where the download would have
   gone instead, so the deployed layout (model.tar.gz holding only ``code/``,
   weights from ``HF_MODEL_ID``) can be exercised offline.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import psutil
import sagemaker_inference.model_server as sm_model_server
from sagemaker_huggingface_inference_toolkit import mms_model_server, serving, transformers_utils

CONFIG_ENV = "TOOLKIT_MMS_CONFIG"
HUB_SNAPSHOT_ENV = "TOOLKIT_LOCAL_HUB_SNAPSHOT"


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


def _copy_local_snapshot(
    model_id: str, model_dir: Any, revision: str | None = None, use_auth_token: str | None = None
) -> Path:
    """Stand-in for ``_load_model_from_hub``: same destination, local source."""
    del use_auth_token  # nothing to authenticate against
    source = Path(os.environ[HUB_SNAPSHOT_ENV])
    storage = Path(transformers_utils._build_storage_path(model_id, model_dir, revision))
    if storage.exists():
        shutil.rmtree(storage)
    shutil.copytree(source, storage, symlinks=False)
    return storage


def main() -> None:
    """Apply the isolation changes and hand over to the toolkit's own ``main``."""
    config_file = os.environ[CONFIG_ENV]
    sm_model_server.MMS_CONFIG_FILE = config_file
    mms_model_server.MMS_CONFIG_FILE = config_file
    sm_model_server._retrieve_mms_server_process = lambda: _find_own_mms_process(config_file)
    if os.environ.get(HUB_SNAPSHOT_ENV):
        mms_model_server._load_model_from_hub = _copy_local_snapshot
    serving.main()


if __name__ == "__main__":
    main()
