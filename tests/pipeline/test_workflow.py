"""The GitHub Actions alternative: valid workflow syntax (the schema check-jsonschema vendors,
offline), OIDC instead of keys, and a smoke test after the deploy."""

from __future__ import annotations

import json
import re
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
    steps = workflow["jobs"]["deploy"]["steps"]
    (creds,) = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-")]
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    assert "secrets." not in WORKFLOW.read_text()


def test_only_the_deploy_job_after_the_tests_may_mint_the_oidc_token() -> None:
    workflow = load()
    # Nothing at workflow level: a job without its own permissions inherits these.
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    minting = [name for name, job in jobs.items()
               if job.get("permissions", {}).get("id-token") == "write"]  # fmt: skip
    assert minting == ["deploy"]
    assert jobs["deploy"]["needs"] in ("test", ["test"])
    assert jobs["test"]["permissions"] == {"contents": "read"}
    test_runs = [s.get("run", "") for s in jobs["test"]["steps"]]
    assert "make test" in test_runs
    # The job with the token runs no test suite and installs before it assumes the role.
    deploy_steps = jobs["deploy"]["steps"]
    assert not any("make test" in s.get("run", "") for s in deploy_steps)
    creds = next(i for i, s in enumerate(deploy_steps)
                 if "configure-aws-credentials" in s.get("uses", ""))  # fmt: skip
    installs = [
        i
        for i, s in enumerate(deploy_steps)
        if re.search(r"pip install|make setup", s.get("run", ""))
    ]
    assert installs and max(installs) < creds


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$", re.MULTILINE)


def pin_problems(text: str) -> list[str]:
    """Each `uses:` not pinned by a full commit SHA with a `# vX.Y.Z` comment, and each
    action pinned to different commits in different jobs."""
    problems, shas = [], {}
    for ref, comment in USES.findall(text):
        action, _, sha = ref.partition("@")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            problems.append(f"{ref}: not pinned by full commit SHA")
        elif not re.fullmatch(r"\s*# v[0-9]+\.[0-9]+\.[0-9]+", comment):
            problems.append(f"{ref}: no '# vX.Y.Z' tag comment")
        elif shas.setdefault(action, ref + comment) != ref + comment:
            problems.append(f"{ref}: {action} is pinned differently elsewhere")
    return problems


def test_every_action_is_pinned_by_full_commit_sha_with_its_tag() -> None:
    text = WORKFLOW.read_text()
    assert len(USES.findall(text)) >= 4
    assert pin_problems(text) == []


def test_pin_check_rejects_tags_short_shas_and_missing_comments() -> None:
    text = WORKFLOW.read_text()
    pinned = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
    assert pinned in text
    for bad in ("actions/checkout@v7", "actions/checkout@3d3c42e # v7.0.1",
                "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"):  # fmt: skip
        assert pin_problems(text.replace(pinned, bad, 1)), bad


def test_smoke_test_follows_the_deploy_of_the_same_environment() -> None:
    steps = load()["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    deploy = next(i for i, r in enumerate(runs) if "cdk deploy" in r)
    smoke = next(i for i, r in enumerate(runs) if "-m tools.smoke" in r)
    creds = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in s.get("uses", ""))
    assert creds < deploy < smoke
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
