"""The GitHub Actions alternative: valid workflow syntax (the schema check-jsonschema vendors,
offline), OIDC instead of keys, and a smoke test after the deploy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def load() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matches_the_github_workflow_schema() -> None:
    result = check_schema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = load()
    del broken["jobs"]["deploy"]["runs-on"]
    path = tmp_path / "broken.yml"
    broken["on"] = broken.pop(True)  # PyYAML reads the key `on` as True
    path.write_text(json.dumps(broken))
    result = check_schema(path)
    assert result.returncode == 1, result.stdout
    assert "$.jobs.deploy: 'runs-on' is a required property" in result.stdout


def test_credentials_come_from_oidc_never_from_keys() -> None:
    workflow = load()
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["deploy"]["steps"]
    (creds,) = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-")]
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    assert "secrets." not in WORKFLOW.read_text()


def test_smoke_test_follows_the_deploy_of_the_same_environment() -> None:
    steps = load()["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    deploy = next(i for i, r in enumerate(runs) if "cdk deploy" in r)
    smoke = next(i for i, r in enumerate(runs) if "-m tools.smoke" in r)
    test = next(i for i, r in enumerate(runs) if r.strip() == "make test")
    creds = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in s.get("uses", ""))
    assert test < creds < deploy < smoke
    assert '-c env="$ENV_NAME"' in runs[deploy]
    # Least privilege: the search-client role, never the domain's master role.
    assert '--env "$ENV_NAME"' in runs[smoke] and "--as-client" in runs[smoke]
    assert "--as-master" not in runs[smoke]


def test_environment_choices_are_the_configured_environments() -> None:
    workflow = load()
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    trigger = workflow.get("on", workflow.get(True))
    choices = trigger["workflow_dispatch"]["inputs"]["environment"]["options"]
    configured = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]
    assert choices == list(configured)
