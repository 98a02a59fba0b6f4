"""cfn-lint and cdk-nag on every synthesized template of every configured environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from cfnlint.api import ManualArgs, lint

import stacks.nag
from tests.infra.conftest import Synthesized, cdk_context, synth

# Regions the templates are checked against (instance types, resource support):
# the default region of most users, a European one, and one whose DLC registry
# account differs from the usual 763104351884.
LINT_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-3"]

# cfn-lint warnings we accept, each with the reason. Errors are never accepted.
ACCEPTED_WARNINGS: dict[str, str] = {}


def test_cfn_lint_finds_no_errors_in_any_environment(all_envs: list[Synthesized]) -> None:
    problems = []
    for synthesized in all_envs:
        for name, path in synthesized.template_files.items():
            matches = lint(path.read_text(), config=ManualArgs(regions=LINT_REGIONS))
            for m in matches:
                rule = m.rule.id
                if rule.startswith("W") and rule in ACCEPTED_WARNINGS:
                    continue
                if rule.startswith(("E", "W")):
                    problems.append(f"{name}: {rule} {m.message} at {'/'.join(map(str, m.path))}")
    assert problems == []


def test_cfn_lint_would_catch_an_unknown_instance_type(tmp_path: Path, dev: Synthesized) -> None:
    """The gate above is real: a template with a bad instance type fails it."""
    path = next(p for n, p in dev.template_files.items() if n.endswith("-search"))
    tpl = json.loads(path.read_text())
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::OpenSearchService::Domain":
            res["Properties"]["ClusterConfig"]["InstanceType"] = "r7g.gigantic.search"
    matches = lint(json.dumps(tpl), config=ManualArgs(regions=LINT_REGIONS))
    assert any(m.rule.id.startswith("E") and "gigantic" in m.message for m in matches)


def test_cdk_nag_passes_every_environment(all_envs: list[Synthesized]) -> None:
    """Synthesis itself fails on an unacknowledged finding; here we read the report."""
    for synthesized in all_envs:
        report = json.loads(
            (Path(synthesized.assembly.directory) / "validation-report.json").read_text()
        )
        failures = [r for r in report["pluginReports"] if r.get("conclusion") == "failure"]
        assert failures == []


def test_every_acknowledgement_matches_a_real_finding(tmp_path: Path) -> None:
    """No blanket or stale acknowledgements: with all of them off, nag reports exactly the
    findings (construct and rule id) that the code acknowledges, in every environment."""
    with (
        stacks.nag.acknowledgements_recorded() as acked,
        pytest.raises(Exception, match="ValidationFailed") as err,
    ):
        synth(tmp_path, list(cdk_context()["environments"]), cdk_context())
    found = set(re.findall(r"\n   (\S+)/Resource \S+\n   Acknowledge with 'AwsSolutions::([^']+)'",
                           str(err.value)))  # fmt: skip
    # An acknowledgement on a construct covers the L1 resource beneath it.
    acknowledged = {tuple(a.split(" ", 1)) for a in acked}
    covered = {
        (path, rule)
        for path, rule in found
        if any(rule == r and (path == p or path.startswith(p + "/")) for p, r in acknowledged)
    }
    assert covered == found, f"unacknowledged: {found - covered}"
    used = {
        (p, r)
        for p, r in acknowledged
        if any(rule == r and path.startswith(p) for path, rule in found)
    }
    assert used == acknowledged, f"acknowledging nothing: {acknowledged - used}"


def test_acknowledgement_reasons_are_specific() -> None:
    with pytest.raises(ValueError, match="specific reason"):
        stacks.nag.acknowledge(cdk.App(), "AwsSolutions-IAM5", "needed")
