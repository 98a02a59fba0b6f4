"""Finding an environment from its CloudFormation outputs (moto stands in for CloudFormation
and STS; it enforces stack existence and returns outputs as the service does)."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.tools.moto_stacks import CLIENT_ARN, MASTER_ARN, REGION, deploy_outputs, mocked_aws
from tools import smoke


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with mocked_aws(monkeypatch):
        deploy_outputs("e5search-dev-search", {
            "DomainEndpoint": "search-e5search-dev-search-abc.eu-west-1.es.amazonaws.com",
            "DomainName": "e5search-dev-search", "MasterRoleArn": MASTER_ARN,
            "SearchClientRoleArn": CLIENT_ARN,
        })  # fmt: skip
        ml = {"ModelId": "model-123", "IndexName": "documents-0a1b2c3d", "IndexAlias": "documents",
              "SemanticField": "body", "EmbeddingDimension": "384",
              "HybridSearchPipelineName": "documents-hybrid"}  # fmt: skip
        deploy_outputs("e5search-dev-ml-setup", ml)
        yield


def test_outputs_of_both_stacks_make_the_target(aws) -> None:
    args = smoke.parse_args(["--env", "dev", "--app", "e5search"])
    target, _ = smoke.resolve(args, boto3.Session(region_name=REGION))
    assert target == smoke.Target(
        endpoint="search-e5search-dev-search-abc.eu-west-1.es.amazonaws.com",
        model_id="model-123", index="documents", region=REGION, field="body", dimension=384,
        master_role_arn=MASTER_ARN, client_role_arn=CLIENT_ARN, search_pipeline="documents-hybrid",
    )  # fmt: skip


def test_a_stack_without_the_alias_output_is_tested_through_its_concrete_index(aws) -> None:
    deploy_outputs("old-search", {"DomainEndpoint": "h"})
    deploy_outputs("old-ml-setup", {"ModelId": "m", "IndexName": "documents-0a1b2c3d"})
    args = smoke.parse_args(["--stack", "old-search", "--stack", "old-ml-setup"])
    target, _ = smoke.resolve(args, boto3.Session(region_name=REGION))
    assert target.index == "documents-0a1b2c3d"


def test_explicit_arguments_override_outputs(aws) -> None:
    args = smoke.parse_args(["--env", "dev", "--app", "e5search", "--index", "other",
                             "--field", "text", "--dimension", "768"])  # fmt: skip
    target, _ = smoke.resolve(args, boto3.Session(region_name=REGION))
    assert (target.index, target.field, target.dimension) == ("other", "text", 768)
    assert target.model_id == "model-123"


def test_as_master_signs_with_the_master_roles_temporary_credentials(aws) -> None:
    args = smoke.parse_args(["--env", "dev", "--app", "e5search", "--as-master"])
    caller = boto3.Session(region_name=REGION)
    _, session = smoke.resolve(args, caller)
    identity = session.client("sts", region_name=REGION).get_caller_identity()
    assert identity["Arn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/e5search-dev-search-MasterRoleABC/e5search-smoke"
    )
    assert session.get_credentials().token  # temporary, never static keys


def test_as_client_signs_with_the_search_client_roles_temporary_credentials(aws) -> None:
    args = smoke.parse_args(["--env", "dev", "--app", "e5search", "--as-client"])
    _, session = smoke.resolve(args, boto3.Session(region_name=REGION))
    identity = session.client("sts", region_name=REGION).get_caller_identity()
    assert identity["Arn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/e5search-dev-search-ClientRoleABC/e5search-smoke"
    )
    assert session.get_credentials().token


def test_as_client_without_the_output_is_a_setup_error(aws, capsys) -> None:
    deploy_outputs("old-search", {"DomainEndpoint": "h", "MasterRoleArn": MASTER_ARN})
    code = smoke.main(["--stack", "old-search", "--stack", "e5search-dev-ml-setup",
                       "--region", REGION, "--as-client"],
                      session_factory=lambda: boto3.Session(region_name=REGION))  # fmt: skip
    assert code == 2
    assert capsys.readouterr().out.strip() == (
        "smoke test could not start: --as-client: no SearchClientRoleArn output in the "
        "environment's stacks (deploy the current search stack, or use --as-master)"
    )


def test_one_identity_at_a_time(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        smoke.parse_args(["--env", "dev", "--as-client", "--as-master"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_explicit_stack_names_are_read_as_given(aws) -> None:
    deploy_outputs("renamed-search", {"DomainEndpoint": "h", "MasterRoleArn": MASTER_ARN})
    deploy_outputs(
        "renamed-ml-setup", {"ModelId": "m2", "IndexName": "i2-0a1b2c3d", "IndexAlias": "i2"}
    )
    args = smoke.parse_args(["--env", "dev", "--stack", "renamed-search",
                             "--stack", "renamed-ml-setup"])  # fmt: skip
    target, _ = smoke.resolve(args, boto3.Session(region_name=REGION))
    assert (target.endpoint, target.model_id, target.index) == ("h", "m2", "i2")


def test_missing_stack_is_named(aws, capsys) -> None:
    code = smoke.main(["--env", "staging", "--app", "e5search", "--region", REGION],
                      session_factory=lambda: boto3.Session(region_name=REGION))  # fmt: skip
    out = capsys.readouterr().out.strip()
    assert code == 2
    assert out.startswith(
        f"smoke test could not start: stack e5search-staging-search not readable in {REGION}:"
    )
    assert "does not exist" in out


def test_missing_ml_outputs_are_named(aws, capsys) -> None:
    code = smoke.main(["--stack", "e5search-dev-search", "--region", REGION, "--json"],
                      session_factory=lambda: boto3.Session(region_name=REGION))  # fmt: skip
    assert code == 2
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "reason": "smoke test could not start: output ModelId, IndexAlias not found in stacks "
        "e5search-dev-search (is the ML setup stack deployed?)",
    }


def test_arguments_are_required_without_env(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        smoke.parse_args(["--endpoint", "h"])
    assert exit_.value.code == 2
    assert "give --env (or --stack)" in capsys.readouterr().err
