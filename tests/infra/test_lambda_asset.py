"""The Lambda assets as synthesized: only the listed distributions, under 5 MB, and they run.

``lambdas/requirements.txt`` installs opensearch-py with ``--no-deps`` plus the
packages it imports at run time; boto3/botocore come from the Lambda runtime.
These tests take the real bundles out of a synthesized assembly and check:

* every distribution in a bundle is a pin of that file, and every top-level
  file or package belongs to a pinned distribution or to the handler package;
* each bundle is under 5 MB unzipped (so also zipped; both are measured);
* a fresh interpreter with nothing on ``sys.path`` but the bundle and a copy of
  what the runtime provides (boto3, botocore and their declared requirements)
  imports the handler, talks signed to an emulated domain through opensearch-py,
  builds an HTTPS client (certifi's CA bundle), and loads nothing from elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ROOT, Synthesized
from tests.support.domain_fixtures import MASTER, REGION
from tests.support.opensearch_emulator import OpenSearchEmulator

LIMIT_BYTES = 5 * 1024 * 1024
HANDLER_PACKAGES = {"ml_setup", "ml_health"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "lambdas" / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_normal(name)] = version
    return pins


def _python_assets(synth: Synthesized) -> dict[str, Path]:
    """Handler -> asset directory, for every Python function of ours."""
    assets = {}
    for function in synth.resources("AWS::Lambda::Function").values():
        handler = str(function["Properties"].get("Handler", ""))
        if handler.split(".")[0] in HANDLER_PACKAGES:
            key = function["Properties"]["Code"]["S3Key"]
            assets[handler] = Path(synth.assembly.directory) / f"asset.{key.removesuffix('.zip')}"
    return assets


def _sizes(directory: Path) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes with deflate, as the CDK asset zip is)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory).as_posix())
    return sum(p.stat().st_size for p in files), len(buffer.getvalue())


@pytest.fixture(scope="module")
def assets(dev: Synthesized) -> dict[str, Path]:
    found = _python_assets(dev)
    assert {h.split(".")[0] for h in found} == HANDLER_PACKAGES, found
    return found


def test_each_asset_holds_exactly_the_listed_distributions(assets: dict[str, Path]) -> None:
    pins = _pins()
    for handler, directory in assets.items():
        dists = {}
        for info in directory.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            dists[_normal(name)] = version
        assert dists == pins, f"{handler}: bundled {dists}, listed {pins}"
        # Every top-level entry belongs to a listed distribution or is the handler package.
        allowed = {handler.split(".")[0]}
        for name in pins:
            for file in metadata.distribution(name).files or []:
                if file.parts[0] != "..":
                    allowed.add(file.parts[0])
        stray = sorted(p.name for p in directory.iterdir() if p.name not in allowed)
        assert not stray, f"{handler}: unlisted files in the asset: {stray}"
        # grpcio/protobuf are opensearch-py's declared dependencies that --no-deps keeps out.
        assert not (directory / "grpc").exists() and not (directory / "google").exists()


def test_each_asset_is_under_5_mb_unzipped_and_zipped(assets: dict[str, Path]) -> None:
    for handler, directory in assets.items():
        unzipped, zipped = _sizes(directory)
        print(f"{handler}: {unzipped / 1e6:.2f} MB unzipped, {zipped / 1e6:.2f} MB zipped")
        assert unzipped < LIMIT_BYTES, f"{handler}: {unzipped} bytes unzipped"
        assert zipped < LIMIT_BYTES, f"{handler}: {zipped} bytes zipped"


def _runtime_provided(target: Path) -> Path:
    """What the Lambda Python runtime has beside the asset: boto3, botocore and their
    declared requirements (python-dateutil, jmespath, s3transfer, six, urllib3),
    linked from this environment. The bundle's own urllib3 comes first on sys.path."""
    target.mkdir()
    pending, seen = ["boto3"], set()
    while pending:
        dist = metadata.distribution(pending.pop())
        if _normal(dist.name) in seen:
            continue
        seen.add(_normal(dist.name))
        for file in dist.files or []:
            top = file.parts[0]
            if top == ".." or top.endswith(".dist-info") or (target / top).exists():
                continue
            os.symlink(dist.locate_file(top), target / top)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return target


PROBE = textwrap.dedent(
    """
    import json, sys, sysconfig, time
    asset, runtime, endpoint, region, key, secret, token, module = sys.argv[1:9]
    sys.path[:0] = [asset, runtime]
    from botocore.credentials import ReadOnlyCredentials
    creds = ReadOnlyCredentials(key, secret, token)
    if module == "ml_setup":
        from ml_setup import handler
        from ml_setup.opensearch_client import OpenSearchClient
        client = OpenSearchClient(endpoint, region, lambda: creds, deadline=time.time() + 30)
        answer = client.wait_until_available().body["status"]
        missing = client.request("GET", "/_plugins/_ml/models/abc", allow=(404,)).status
        OpenSearchClient("search-x.us-east-1.es.amazonaws.com", region, lambda: creds,
                         deadline=time.time() + 30)
    else:
        from ml_health import handler
        answer = handler.Domain(endpoint, region, creds).get_model("abcdefghijklmnopqrst")[0]
        missing = None
        handler.Domain("search-x.us-east-1.es.amazonaws.com", region, creds)
    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
    outside = sorted({
        m.__file__ for m in list(sys.modules.values())
        if getattr(m, "__file__", None)
        and not m.__file__.startswith((asset, runtime, *stdlib))
    })
    print(json.dumps({"answer": answer, "missing": missing, "outside": outside}))
    """
)


def test_each_asset_runs_with_only_what_the_lambda_runtime_provides(
    assets: dict[str, Path], tmp_path: Path
) -> None:
    runtime = _runtime_provided(tmp_path / "runtime")
    with OpenSearchEmulator(master=MASTER, principals=[], region=REGION) as emulator:
        for handler, directory in assets.items():
            module = handler.split(".")[0]
            result = subprocess.run(
                [
                    sys.executable, "-S", "-W", "always", "-c", PROBE, str(directory),
                    str(runtime), emulator.endpoint, REGION, MASTER.access_key,
                    MASTER.secret_key, MASTER.session_token or "", module,
                ],
                capture_output=True, text=True, timeout=120, check=False,
                env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
            )  # fmt: skip
            assert result.returncode == 0, f"{handler}: {result.stderr[-3000:]}"
            # The handlers silence requests' missing-chardet warning; nothing else warns.
            assert "Warning" not in result.stderr, f"{handler}: {result.stderr[-2000:]}"
            out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
            assert out["outside"] == [], f"{handler} loaded modules from elsewhere"
            if module == "ml_setup":
                assert out["answer"] in ("green", "yellow") and out["missing"] == 404
            else:
                assert out["answer"] == 404  # signed, admitted, and the model is absent
        assert not emulator.violations, emulator.violations
