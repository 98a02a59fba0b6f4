"""The synthesized pipeline: source, tests-then-synth, one stage per environment in config
order, approvals where configured, and a smoke test after every stage."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacks.config import ConfigError
from stacks.pipeline_config import load_pipeline_config, pipeline_requested
from tests.pipeline.conftest import (
    PIPELINE_ACCOUNT,
    WORKLOAD_ACCOUNT,
    WORKLOAD_REGION,
    SynthesizedPipeline,
    pipeline_context,
)


def _commands(project: dict[str, Any]) -> list[str]:
    spec = json.loads(project["Source"]["BuildSpec"])
    return [*spec["phases"].get("install", {}).get("commands", []),
            *spec["phases"]["build"]["commands"]]  # fmt: skip


def _is(action: dict[str, Any], category: str, provider: str) -> bool:
    kind = action["ActionTypeId"]
    return kind["Category"] == category and kind["Provider"] == provider


def test_stage_order_is_source_build_selfmutation_assets_then_environments(
    pipeline: SynthesizedPipeline,
) -> None:
    names = [s["Name"] for s in pipeline.codepipeline()["Stages"]]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", "dev", "staging", "prod"]
    assert [e.name for e in pipeline.settings.stages] == ["dev", "staging", "prod"]


def test_source_is_the_configured_connection(pipeline: SynthesizedPipeline) -> None:
    (action,) = pipeline.stage("Source")["Actions"]
    assert _is(action, "Source", "CodeStarSourceConnection")
    settings = pipeline.settings
    assert action["Configuration"]["ConnectionArn"] == settings.connection_arn
    assert action["Configuration"]["FullRepositoryId"] == settings.repository
    assert action["Configuration"]["BranchName"] == settings.branch


def test_synth_runs_the_test_suite_before_cdk_synth(pipeline: SynthesizedPipeline) -> None:
    (action,) = pipeline.stage("Build")["Actions"]
    assert _is(action, "Build", "CodeBuild")
    commands = _commands(pipeline.project_of(action))
    assert commands.index("make test") < commands.index("make pipeline-synth")
    # Self-mutating: the next stage redeploys the pipeline stack from the new synth.
    (mutate,) = pipeline.stage("UpdatePipeline")["Actions"]
    deploys = [c for c in _commands(pipeline.project_of(mutate)) if " deploy " in c]
    assert deploys and all(pipeline.settings.stack_name in c for c in deploys), deploys


def test_each_environment_stage_deploys_exactly_its_stacks_where_configured(
    pipeline: SynthesizedPipeline,
) -> None:
    for env in pipeline.settings.stages:
        actions = pipeline.stage(env.name)["Actions"]
        deploys = [a for a in actions if _is(a, "Deploy", "CloudFormation")]
        deployed = {a["Configuration"]["StackName"] for a in deploys}
        assert deployed == set(pipeline.stages[env.name]), env.name
        # The same names `make deploy ENV=...` uses, so `make destroy` finds them.
        assert all(n.startswith(f"{env.prefix}-") for n in deployed)
        account = pipeline.settings.stage_account(env)
        region = pipeline.settings.stage_region(env)
        for action in deploys:
            assert action.get("Region", pipeline.settings.region) == region
            # Cross-account actions run as the target account's bootstrap deploy role.
            assert f":{account}:role/cdk-" in json.dumps(action["RoleArn"]), action["Name"]
    assert pipeline.settings.stage_account(pipeline.settings.stages[1]) == WORKLOAD_ACCOUNT


def test_approval_before_every_protected_stage_and_no_other(
    pipeline: SynthesizedPipeline,
) -> None:
    protected = set()
    for env in pipeline.settings.stages:
        actions = pipeline.stage(env.name)["Actions"]
        approvals = [a for a in actions if _is(a, "Approval", "Manual")]
        deploy_orders = [a["RunOrder"] for a in actions if _is(a, "Deploy", "CloudFormation")]
        if env.protected:
            protected.add(env.name)
            (approval,) = approvals
            assert approval["RunOrder"] < min(deploy_orders)
        else:
            assert approvals == []
    assert protected == {"prod"}  # cdk.json marks prod protected


def test_smoke_test_runs_after_every_stage_against_that_environment(
    pipeline: SynthesizedPipeline,
) -> None:
    for env in pipeline.settings.stages:
        actions = pipeline.stage(env.name)["Actions"]
        (smoke,) = [a for a in actions if a["Name"] == f"Smoke-{env.name}"]
        assert _is(smoke, "Build", "CodeBuild")
        assert smoke["RunOrder"] > max(a["RunOrder"] for a in actions if a is not smoke)
        commands = _commands(pipeline.project_of(smoke))
        (command,) = [c for c in commands if "tools.smoke" in c]
        account = pipeline.settings.stage_account(env)
        stacks = sorted(n for n in pipeline.stages[env.name] if not n.endswith("-smoke"))
        assert command.startswith(f"python3 -m tools.smoke --env {env.name} ")
        assert sorted(re.findall(r"--stack (\S+)", command)) == stacks
        assert f"--region {pipeline.settings.stage_region(env)} " in command
        assert (
            f"--assume-role arn:aws:iam::{account}:role/{env.prefix}-smoke --as-client" in command
        )
        assert "--as-master" not in command
        assert f"--dimension {env.embedding_dimension} --field {env.semantic_field}" in command
        assert "pip install --quiet -r requirements-smoke.txt" in " ".join(commands)


def test_smoke_identity_chain_is_scoped_per_environment(pipeline: SynthesizedPipeline) -> None:
    """runner (pipeline account) -> smoke role (environment) -> domain search-client role."""
    roles = pipeline.resources("AWS::IAM::Role")
    policies = pipeline.resources("AWS::IAM::Policy")
    for env in pipeline.settings.stages:
        account = pipeline.settings.stage_account(env)
        smoke_arn = f"arn:aws:iam::{account}:role/{env.prefix}-smoke"
        runner_name = f"{env.prefix}-smoke-runner"
        (runner_id,) = [k for k, r in roles.items()
                        if r["Properties"].get("RoleName") == runner_name]  # fmt: skip
        assume = [s for p in policies.values()
                  if {"Ref": runner_id} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if "sts:AssumeRole" in json.dumps(s["Action"])]  # fmt: skip
        assert [s["Resource"] for s in assume] == [smoke_arn]

        (smoke_tpl,) = [t for n, t in pipeline.stages[env.name].items() if n.endswith("-smoke")]
        (role,) = pipeline.resources("AWS::IAM::Role", smoke_tpl).values()
        assert role["Properties"]["RoleName"] == f"{env.prefix}-smoke"
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {
            "AWS": f"arn:aws:iam::{PIPELINE_ACCOUNT}:role/{env.prefix}-smoke-runner"
        }
        (policy,) = pipeline.resources("AWS::IAM::Policy", smoke_tpl).values()
        statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
        assert set(statements) == {"ReadEnvironmentOutputs", "ActAsSearchClient"}
        assert statements["ReadEnvironmentOutputs"]["Action"] == "cloudformation:DescribeStacks"
        readable = json.dumps(statements["ReadEnvironmentOutputs"]["Resource"])
        for name in pipeline.stages[env.name]:
            if not name.endswith("-smoke"):
                assert f":stack/{name}/*" in readable
        # It may assume exactly one role: the search client of its own environment's domain.
        assume_smoke = [s for s in statements.values() if "sts:AssumeRole" in json.dumps(s)]
        assert assume_smoke == [statements["ActAsSearchClient"]]
        client = statements["ActAsSearchClient"]
        assert client["Action"] == "sts:AssumeRole"
        (imported,) = [client["Resource"]]  # one ARN, not a list or a wildcard
        assert set(imported) == {"Fn::ImportValue"}
        assert "ClientRole" in json.dumps(imported) and "MasterRole" not in json.dumps(imported)
        domain_stack = f"{env.prefix}-search"
        exports = pipeline.stages[env.name][domain_stack].get("Outputs", {})
        (export,) = [o for o in exports.values()
                     if o.get("Export", {}).get("Name") == imported["Fn::ImportValue"]]  # fmt: skip
        assert export["Value"]["Fn::GetAtt"][0].startswith("ClientRole")


def test_cross_account_stages_get_kms_encrypted_artifacts(pipeline: SynthesizedPipeline) -> None:
    assert pipeline.settings.crosses_accounts
    (store,) = [s for s in pipeline.codepipeline()["ArtifactStores"]
                if s["Region"] == pipeline.settings.region]  # fmt: skip
    assert store["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"
    # A support stack replicates artifacts into the other region.
    assert any(WORKLOAD_REGION in name for name in pipeline.support)


def test_pipeline_synth_time_is_reported(pipeline: SynthesizedPipeline) -> None:
    # Not a benchmark: a regression guard against an accidental extra synth or bundling loop.
    assert pipeline.seconds < 240, f"pipeline synth took {pipeline.seconds:.0f}s"


# ----------------------------------------------------------------------------- settings


def _settings(**changes: Any) -> dict[str, Any]:
    ctx = pipeline_context()
    ctx["pipeline_settings"].update(changes)
    return ctx


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"connection_arn": "arn:aws:iam::111111111111:role/x"},
         "pipeline_settings.connection_arn: 'arn:aws:iam::111111111111:role/x' is not allowed; "
         "expected a CodeConnections ARN"),
        ({"repository": "no-owner"}, "pipeline_settings.repository: 'no-owner' is not allowed"),
        ({"account": "12345"}, "pipeline_settings.account: '12345' is not allowed"),
        ({"stages": []}, "pipeline_settings.stages: [] is not allowed"),
        ({"stages": ["dev", "qa"]}, "pipeline_settings.stages: no environment 'qa'; configured "
                                    "environments are dev, staging, prod"),
        ({"stages": ["dev", "dev"]}, "pipeline_settings.stages: 'dev' is listed twice"),
        ({"colour": "blue"}, "pipeline_settings: unknown key 'colour'"),
    ],
)  # fmt: skip
def test_settings_errors_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(_settings(**changes))
    assert message in str(error.value)


def test_missing_settings_key_is_named() -> None:
    ctx = pipeline_context()
    del ctx["pipeline_settings"]["branch"]
    with pytest.raises(ConfigError, match=r"pipeline_settings\.branch: missing"):
        load_pipeline_config(ctx)


def test_stage_environments_are_validated_with_the_pipeline() -> None:
    ctx = pipeline_context()
    ctx["environments"]["prod"]["data_node_count"] = 0
    with pytest.raises(ConfigError, match=r"environments\.prod\.data_node_count: 0"):
        load_pipeline_config(ctx)


def test_single_account_pipeline_needs_no_cross_account_keys() -> None:
    ctx = pipeline_context()
    for env in ("staging", "prod"):
        del ctx["environments"][env]["account"], ctx["environments"][env]["region"]
    settings = load_pipeline_config(ctx)
    assert not settings.crosses_accounts
    assert {settings.stage_account(e) for e in settings.stages} == {settings.account}
    assert load_pipeline_config(pipeline_context()).crosses_accounts


def test_pipeline_flag_accepts_what_the_cli_and_cdk_json_give() -> None:
    assert all(pipeline_requested(v) for v in ("true", "True", "1", "yes", True))
    assert not any(pipeline_requested(v) for v in (None, "false", "0", "", False, "no"))
