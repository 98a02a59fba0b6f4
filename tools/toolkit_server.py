"""Start and stop a local SageMaker serving toolkit (Multi Model Server) on 127.0.0.1.

Shared by ``python -m tools.serve`` and the integration tests so both run the
server the same way. Each server gets its own work directory holding the model
directory (``SAGEMAKER_BASE_DIR/model``), the MMS configuration, temp files
(MMS's pid file and worker sockets live in the temp directory), logs and the
process output, and runs in its own process group so that stopping it also
stops the Java frontend and the Python workers it spawned.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tools.model_package import build_model_dir

ENTRY_SCRIPT = Path(__file__).resolve().with_name("toolkit_entry.py")
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now, below 32767.

    MMS refuses ports of 32767 and above ("Invalid port number"), and Linux
    hands out ephemeral ports from 32768 up, so ``bind(0)`` cannot be used:
    probe random ports in a lower range instead.
    """
    rng = random.Random()  # noqa: S311 - picking a port, not a secret
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port found on 127.0.0.1 in 20000-31999")


@dataclass
class ToolkitServer:
    """A running toolkit process group and where to find its output."""

    process: subprocess.Popen[bytes]
    port: int
    work_dir: Path
    log_path: Path
    model_dir: Path
    _log_file: object = field(repr=False, default=None)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of the server's combined output, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float) -> None:
        """Block until the server embeds a probe text, or raise with the log tail.

        ``/ping`` alone is not enough: MMS answers it as soon as a worker
        process exists, while that worker may still be loading the model.
        """
        deadline = time.monotonic() + timeout
        probe = json.dumps({"texts": ["ready?"], "content_type": "query"}).encode()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"toolkit exited with {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            try:
                if (
                    _status(f"{self.url}/ping") == 200
                    and _status(
                        f"{self.url}/invocations",
                        probe,
                        timeout=max(1.0, deadline - time.monotonic()),
                    )
                    == 200
                ):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"toolkit not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 3.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        The group id is the toolkit process's own pid (it was started in a new
        session), so only processes this server started are signalled. A worker
        still importing torch does not act on SIGTERM, hence the SIGKILL.
        """
        pgid = self.process.pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not self._group_alive(pgid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._group_alive(pgid):
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def _group_alive(self, pgid: int) -> bool:
        """Whether a live (non-zombie) process of the group is left.

        Zombies are skipped: they are already dead, and the ones reparented to
        init are reaped on init's schedule, not ours.
        """
        self.process.poll()  # reap our own child
        for process in psutil.process_iter(["status"]):
            try:
                if (
                    os.getpgid(process.pid) == pgid
                    and process.info["status"] != psutil.STATUS_ZOMBIE
                ):
                    return True
            except (ProcessLookupError, psutil.Error):
                continue
        return False


def _status(url: str, body: bytes | None = None, timeout: float = 2.0) -> int:
    """HTTP status of a GET (or a JSON POST when ``body`` is given); errors count too."""
    request = urllib.request.Request(  # noqa: S310 - loopback URL we built
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def start_toolkit_server(
    work_dir: Path,
    weights: Path,
    *,
    port: int | None = None,
    hub_layout: bool = False,
    hub_model_id: str = "intfloat/multilingual-e5-small",
    env: Mapping[str, str] | None = None,
    workers: int | None = 1,
    ready_timeout: float = 180.0,
) -> ToolkitServer:
    """Lay out a model directory under ``work_dir`` and start the toolkit on it.

    ``hub_layout=False``: weights and ``code/`` in the model directory, like a
    model.tar.gz that carries its weights. ``hub_layout=True``: the model
    directory holds only ``code/`` and ``HF_MODEL_ID`` is set, like the deployed
    endpoint; ``weights`` then stands in for the Hub download (see
    ``tools/toolkit_entry.py``; the faked Hub calls are logged to
    ``work_dir/hub-calls.jsonl``). ``env`` adds variables such as
    ``EMBEDDING_*`` (it may also set ``HF_MODEL_ID``, e.g. the endpoint's own
    container environment). ``workers=None`` leaves
    ``SAGEMAKER_MODEL_SERVER_WORKERS`` unset, as the endpoint does: MMS then
    starts one worker per vCPU.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    base_dir = work_dir / "opt_ml"
    model_dir = build_model_dir(base_dir / "model", None if hub_layout else weights)
    tmp_dir = work_dir / "tmp"
    logs_dir = work_dir / "logs"
    tmp_dir.mkdir(exist_ok=True)
    logs_dir.mkdir(exist_ok=True)
    port = port or free_port()
    address = f"http://{HOST}:{port}"

    child_env = dict(os.environ)
    child_env.update(
        {
            # Where the toolkit looks for /opt/ml/model and its code/.
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_STARTUP_TIMEOUT": str(int(ready_timeout)),
            # The toolkit writes 0.0.0.0 into the MMS config; MMS reads MMS_*
            # variables over its file (enable_envvars_config=true), so the
            # local server listens on loopback only.
            "MMS_INFERENCE_ADDRESS": address,
            "MMS_MANAGEMENT_ADDRESS": address,
            "TOOLKIT_MMS_CONFIG": str(work_dir / "sagemaker-mms.properties"),
            "TMPDIR": str(tmp_dir),
            "TEMP": str(tmp_dir),
            "LOG_LOCATION": str(logs_dir),
            "METRICS_LOCATION": str(logs_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # multi-model-server and model-archiver are console scripts of
            # this interpreter's environment.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    child_env.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    if workers is not None:
        child_env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    child_env.pop("PYTHONPATH", None)
    child_env.pop("TOOLKIT_LOCAL_HUB_SNAPSHOT", None)
    for name in ("HF_MODEL_ID", "HF_MODEL_REVISION", "TOOLKIT_HUB_CALLS"):
        child_env.pop(name, None)
    if hub_layout:
        child_env["HF_MODEL_ID"] = hub_model_id
        child_env["TOOLKIT_LOCAL_HUB_SNAPSHOT"] = str(weights.resolve())
        child_env["TOOLKIT_HUB_CALLS"] = str(work_dir / "hub-calls.jsonl")
    if env:
        child_env.update(env)

    log_path = work_dir / "server.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter and our script
        [sys.executable, str(ENTRY_SCRIPT)],
        cwd=work_dir,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ToolkitServer(
        process=process,
        port=port,
        work_dir=work_dir,
        log_path=log_path,
        model_dir=model_dir,
        _log_file=log_file,
    )
    try:
        server.wait_ready(ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server
