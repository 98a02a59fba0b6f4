"""What the dev and prod templates must contain: the acceptance criteria of the foundation."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.conftest import Synthesized


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _principals(tpl: dict[str, Any]) -> list[Any]:
    """Principals that statements *grant* to. A Deny to everyone (the alarm topic's
    deny-unless-TLS statement, cdk-nag AwsSolutions-SNS3) takes access away, so its
    ``"*"`` is not a wildcard grant."""
    return [
        n["Principal"]
        for n in _walk(tpl)
        if isinstance(n, dict) and "Principal" in n and n.get("Effect") != "Deny"
    ]


def test_endpoint_stack_has_model_config_and_endpoint(dev: Synthesized) -> None:
    tpl = dev.one("-endpoint")
    types = [r["Type"] for r in tpl["Resources"].values()]
    for t in (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
    ):
        assert types.count(t) == 1, t


def test_endpoint_config_has_no_fixed_name_and_model_has_none(dev: Synthesized) -> None:
    (cfg,) = dev.resources("AWS::SageMaker::EndpointConfig").values()
    assert "EndpointConfigName" not in cfg["Properties"]
    (model,) = dev.resources("AWS::SageMaker::Model").values()
    assert "ModelName" not in model["Properties"]


def test_endpoint_name_carries_the_environment(dev: Synthesized, prod: Synthesized) -> None:
    (d,) = dev.resources("AWS::SageMaker::Endpoint").values()
    (p,) = prod.resources("AWS::SageMaker::Endpoint").values()
    assert d["Properties"]["EndpointName"] == "e5search-dev-e5"
    assert p["Properties"]["EndpointName"] == "e5search-prod-e5"


def test_container_pins_model_and_revision_and_runs_our_code(dev: Synthesized) -> None:
    (model,) = dev.resources("AWS::SageMaker::Model").values()
    container = model["Properties"]["PrimaryContainer"]
    env = container["Environment"]
    assert env["HF_MODEL_ID"] == "intfloat/multilingual-e5-small"
    assert re.fullmatch(r"[0-9a-f]{40}", env["HF_MODEL_REVISION"])
    assert "ModelDataUrl" in container
    image = json.dumps(container["Image"])
    assert "huggingface-pytorch-inference:2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04" in image


def test_execution_role_is_least_privilege(dev: Synthesized) -> None:
    tpl = dev.one("-endpoint")
    text = json.dumps(tpl)
    assert "AmazonSageMakerFullAccess" not in text
    policies = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"PullInferenceImage", "EcrLogin", "ReadInferenceCode", "OwnLogs",
                           "OwnMetrics"}  # fmt: skip
    assert by_sid["ReadInferenceCode"]["Action"] == "s3:GetObject"
    assert "*" not in json.dumps(by_sid["ReadInferenceCode"]["Resource"]).replace(":*", "")
    assert by_sid["OwnMetrics"]["Condition"]
    for stmt in statements:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        assert all("*" not in a for a in actions), stmt


def test_autoscaling_bounds_from_config(dev: Synthesized, prod: Synthesized) -> None:
    for synthesized, lo, hi in ((dev, 1, 2), (prod, 2, 6)):
        (target,) = synthesized.resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
        props = target["Properties"]
        assert (props["MinCapacity"], props["MaxCapacity"]) == (lo, hi)
        assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
        (policy,) = synthesized.resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
        spec = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        metric = spec["PredefinedMetricSpecification"]["PredefinedMetricType"]
        assert metric == "SageMakerVariantConcurrentRequestsPerModelHighResolution"


def test_domain_is_secure_by_default(dev: Synthesized) -> None:
    (domain,) = dev.resources("AWS::OpenSearchService::Domain").values()
    p = domain["Properties"]
    assert p["EngineVersion"] == "OpenSearch_3.7"
    sec = p["AdvancedSecurityOptions"]
    assert sec["Enabled"] is True and sec["InternalUserDatabaseEnabled"] is False
    assert "MasterUserARN" in sec["MasterUserOptions"]
    assert "MasterUserPassword" not in json.dumps(p)
    assert p["EncryptionAtRestOptions"]["Enabled"] is True
    assert p["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert p["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert p["DomainEndpointOptions"]["TLSSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    assert set(p["LogPublishingOptions"]) == {
        "ES_APPLICATION_LOGS", "SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "AUDIT_LOGS"
    }  # fmt: skip
    assert all(o["Enabled"] for o in p["LogPublishingOptions"].values())


def test_domain_access_policy_names_only_our_roles(dev: Synthesized) -> None:
    tpl = dev.one("-search")
    (domain,) = [
        r for r in tpl["Resources"].values() if r["Type"] == "AWS::OpenSearchService::Domain"
    ]
    (stmt,) = domain["Properties"]["AccessPolicies"]["Statement"]
    principals = stmt["Principal"]["AWS"]
    roles = {lid for lid, r in tpl["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    named = [principal["Fn::GetAtt"] for principal in principals]
    assert all(attribute == "Arn" and lid in roles for lid, attribute in named)
    # Exactly the master, setup and search-client roles, each once; never the connector role.
    assert sorted(re.sub(r"[0-9A-F]{8}$", "", lid) for lid, _ in named) == [
        "ClientRole", "MasterRole", "SetupRole"
    ]  # fmt: skip


def test_search_client_role_is_scoped_to_this_domain(dev: Synthesized) -> None:
    tpl = dev.one("-search")
    (client_id,) = [lid for lid, r in tpl["Resources"].items()
                    if r["Type"] == "AWS::IAM::Role" and lid.startswith("ClientRole")]  # fmt: skip
    role = tpl["Resources"][client_id]["Properties"]
    assert "Path" not in role  # FGAC matches the path-less session ARN
    assert role["MaxSessionDuration"] == 3600
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert ":root" in json.dumps(trust["Principal"]["AWS"])
    policies = [
        r["Properties"] for r in tpl["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
    ]
    statements = [s for p in policies if {"Ref": client_id} in p["Roles"]
                  for s in p["PolicyDocument"]["Statement"]]  # fmt: skip
    (stmt,) = statements
    assert sorted(stmt["Action"]) == sorted(
        f"es:ESHttp{verb}" for verb in ("Get", "Head", "Post", "Put", "Delete")
    )
    assert all("domain/e5search-dev-search" in json.dumps(r) for r in stmt["Resource"])
    outputs = tpl["Outputs"]["SearchClientRoleArn"]["Value"]
    assert outputs == {"Fn::GetAtt": [client_id, "Arn"]}


def test_no_wildcard_principal_and_no_credentials_anywhere(all_envs: list[Synthesized]) -> None:
    for synthesized in all_envs:
        for tpl in synthesized.templates.values():
            for principal in _principals(tpl):
                assert principal != "*" and "*" not in json.dumps(principal)
            text = json.dumps(tpl)
            assert not re.search(r"(AKIA|ASIA)[0-9A-Z]{16}", text)
            for word in ("SecretAccessKey", "secret_key", "access_key", "MasterUserPassword"):
                assert word not in text


def test_connector_role_trust_is_scoped_to_this_domain(dev: Synthesized) -> None:
    tpl = dev.one("-search")
    roles = {lid: r for lid, r in tpl["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    (connector,) = [r for lid, r in roles.items() if lid.startswith("ConnectorRole")]
    (trust,) = connector["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "opensearchservice.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    source_arn = json.dumps(trust["Condition"]["ArnLike"]["aws:SourceArn"])
    assert "domain/e5search-dev-search" in source_arn
    policies = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    (invoke,) = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "InvokeEmbeddingEndpoint"
    ]
    assert invoke["Action"] == "sagemaker:InvokeEndpoint"
    assert json.dumps(invoke["Resource"]).endswith('endpoint/e5search-dev-e5"]]}')


def test_setup_role_may_pass_only_the_connector_role_to_opensearch(dev: Synthesized) -> None:
    tpl = dev.one("-search")
    statements = [
        s
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    (pass_role,) = [s for s in statements if s.get("Sid") == "PassConnectorRole"]
    assert pass_role["Resource"]["Fn::GetAtt"][0].startswith("ConnectorRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "opensearchservice.amazonaws.com"}
    }


def test_prod_uses_masters_and_zone_awareness(prod: Synthesized) -> None:
    (domain,) = prod.resources("AWS::OpenSearchService::Domain").values()
    cluster = domain["Properties"]["ClusterConfig"]
    assert cluster["DedicatedMasterEnabled"] is True and cluster["DedicatedMasterCount"] == 3
    assert cluster["ZoneAwarenessEnabled"] is True
    assert cluster["ZoneAwarenessConfig"]["AvailabilityZoneCount"] == 3
    assert cluster["InstanceCount"] == 3


def test_container_environment_uses_the_handler_s_variable_names(dev: Synthesized) -> None:
    """The prefixes reach model/inference.py under the names it reads."""
    import model.inference as handler

    (model,) = dev.resources("AWS::SageMaker::Model").values()
    env = model["Properties"]["PrimaryContainer"]["Environment"]
    assert env[handler.ENV_QUERY_PREFIX] == "query: "
    assert env[handler.ENV_PASSAGE_PREFIX] == "passage: "
    assert env[handler.fast_path.ENV_BACKEND] == "exact"


def test_container_environment_never_bypasses_our_inference_code(
    all_envs: list[Synthesized],
) -> None:
    """SAGEMAKER_PROGRAM or SAGEMAKER_MULTI_MODEL would make the HF DLC skip code/inference.py.

    SAGEMAKER_MULTI_MODEL=true puts the toolkit in multi-model mode: no handler
    service in the MMS config and no model loaded at start
    (sagemaker-huggingface-inference-toolkit 2.6.0 mms_model_server.py:69, 98, 114).
    SAGEMAKER_PROGRAM names another user module (sagemaker_inference
    parameters.py:18; DESIGN.md: it bypasses code/inference.py).
    """
    for synthesized in all_envs:
        (model,) = synthesized.resources("AWS::SageMaker::Model").values()
        env = model["Properties"]["PrimaryContainer"]["Environment"]
        assert "SAGEMAKER_PROGRAM" not in env
        assert "SAGEMAKER_MULTI_MODEL" not in env
        assert env["HF_MODEL_REVISION"]
