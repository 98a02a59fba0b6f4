"""The README's first command works with no credentials and no network."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK.exists(), reason="CDK CLI not installed (make setup-dev installs it)")
def test_cli_synth_of_dev_needs_no_credentials_and_no_network(tmp_path: Path) -> None:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_")) and k != "HOME"
    }
    environ.update(
        HOME=str(tmp_path),  # no ~/.aws/credentials or config
        AWS_EC2_METADATA_DISABLED="true",
        # Any attempt to reach the network goes to a closed port and fails.
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(CDK), "synth", "--no-notices", "-c", "env=dev", "--quiet", "-o", str(out)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    stacks = {
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert {"e5search-dev-endpoint", "e5search-dev-search"} <= stacks
    for name in stacks:
        assert (out / f"{name}.template.json").is_file()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_lambda_dependencies_are_installed_by_the_synth_requirements() -> None:
    """`make synth` installs only requirements.txt; the Lambda bundler copies each pinned
    dependency from that environment instead of downloading it, so every Lambda pin
    must be there at the same version, or synth would need the network."""
    lambda_pins = _pins(ROOT / "lambdas" / "requirements.txt")
    synth_pins = _pins(ROOT / "requirements.txt")
    assert lambda_pins
    for name, version in lambda_pins.items():
        assert synth_pins.get(name) == version, f"{name}=={version} missing from requirements.txt"
