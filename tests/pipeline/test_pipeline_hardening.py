"""Pipeline supply chain and lint: the tools its builds install are the ones package.json
pins, and the pipeline template passes cfn-lint like the environment templates."""

from __future__ import annotations

import json
import re
from typing import Any

from cfnlint.api import ManualArgs, lint

from tests.pipeline.conftest import ROOT, SynthesizedPipeline

# cfn-lint warnings accepted on the pipeline template, each with its reason.
# Errors are never accepted.
ACCEPTED_WARNINGS = {
    "W3005": "CDK Pipelines gives the pipeline an explicit DependsOn on its role that the "
    "RoleArn GetAtt already implies (aws-cdk-lib generates it; nothing of ours adds it)",
}
# Not an error: cfn-lint 1.58.0's E3703 (rules/resources/codepipeline/
# PipelineActionConfiguration.py:74, `err.rule = self`) re-labels every finding of
# the cross-account action RoleArn it validates, including the informational
# I1022 (rules/functions/SubNotJoin.py:59) about CDK's Fn::Join of the role ARN.
# Only that exact message is let through; any other E3703 still fails.
RELABELLED_INFO = ("E3703", "Prefer using Fn::Sub over Fn::Join with an empty delimiter")


def _pins() -> dict[str, str]:
    return json.loads((ROOT / "package.json").read_text())["devDependencies"]


def _npm_installs(pipeline: SynthesizedPipeline) -> list[str]:
    """Every `npm install -g ...` command in every CodeBuild project of the pipeline."""
    found = []
    for project in pipeline.resources("AWS::CodeBuild::Project").values():
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        for phase in spec["phases"].values():
            found += [c for c in phase.get("commands", []) if "npm install -g" in c]
    return found


def test_every_global_npm_install_is_a_package_json_pin(pipeline: SynthesizedPipeline) -> None:
    installs = _npm_installs(pipeline)
    pins = _pins()
    packages = [p for cmd in installs for p in cmd.split("npm install -g", 1)[1].split()]
    assert packages, "no npm install in the pipeline's builds: the test lost its subject"
    for package in packages:
        name, _, version = package.rpartition("@")
        assert name in pins, f"{package}: not pinned in package.json"
        assert version == pins[name], f"{package}: package.json pins {name}@{pins[name]}"
    names = {p.rpartition("@")[0] for p in packages}
    # Self-mutation runs the CDK CLI; the asset projects run cdk-assets.
    assert {"aws-cdk", "cdk-assets"} <= names


def test_pins_are_exact_versions() -> None:
    for name, version in _pins().items():
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version), f"{name}: {version!r}"


def test_cfn_lint_finds_no_errors_in_the_pipeline_templates(
    pipeline: SynthesizedPipeline,
) -> None:
    templates: dict[str, dict[str, Any]] = {pipeline.settings.stack_name: pipeline.template}
    templates |= pipeline.support
    problems = []
    for name, template in templates.items():
        for m in lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"])):
            accepted = m.rule.id in ACCEPTED_WARNINGS and "'PipelineRole" in m.message
            if accepted or (m.rule.id, m.message) == RELABELLED_INFO:
                continue
            if m.rule.id.startswith(("E", "W")):
                problems.append(f"{name}: {m.rule.id} {m.message} at {'/'.join(map(str, m.path))}")
    assert problems == []


def test_the_asset_roles_only_unscoped_grant_is_the_acknowledged_codebuild_one(
    pipeline: SynthesizedPipeline,
) -> None:
    """The acknowledgement of AwsSolutions-IAM5[Resource::*] on the asset role says what the
    wildcard is: CodeBuild build control, in a role only CodeBuild may assume. If CDK adds
    another action on '*', this fails and the reason must be revisited."""
    roles = {k: r for k, r in pipeline.resources("AWS::IAM::Role").items() if "FileRole" in k}
    ((role_id, role),) = roles.items()
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "codebuild.amazonaws.com"}]
    unscoped = [
        statement
        for policy in pipeline.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == "*"
    ]
    actions = sorted(a for s in unscoped for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                   else s["Action"]))  # fmt: skip
    assert actions == ["codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"]
