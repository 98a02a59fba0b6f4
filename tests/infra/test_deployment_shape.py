"""Parallel deployment, replaceable names and removal policies that follow config."""

from __future__ import annotations

import json

from tests.infra.conftest import Synthesized


def _references(tpl: dict) -> str:
    return json.dumps(tpl)


def test_endpoint_and_domain_never_wait_for_each_other(all_envs: list[Synthesized]) -> None:
    for synthesized in all_envs:
        endpoint = next(n for n in synthesized.templates if n.endswith("-endpoint"))
        domain = next(n for n in synthesized.templates if n.endswith("-search"))
        assert domain not in synthesized.dependencies[endpoint]
        assert endpoint not in synthesized.dependencies[domain]
        # No cross-stack import either way (an import would order the deploys).
        assert "Fn::ImportValue" not in _references(synthesized.templates[endpoint])
        assert "Fn::ImportValue" not in _references(synthesized.templates[domain])


def test_stateful_resources_follow_the_removal_policy(dev: Synthesized, prod: Synthesized) -> None:
    stateful = ("AWS::OpenSearchService::Domain", "AWS::Logs::LogGroup", "AWS::KMS::Key")
    for synthesized, expected in ((dev, "Delete"), (prod, "Retain")):
        seen = set()
        for type_ in stateful:
            for name, res in synthesized.resources(type_).items():
                assert res.get("DeletionPolicy") == expected, name
                assert res.get("UpdateReplacePolicy") == expected, name
                seen.add(type_)
        assert {"AWS::OpenSearchService::Domain", "AWS::Logs::LogGroup"} <= seen


def test_no_fixed_names_on_replaceable_resources(all_envs: list[Synthesized]) -> None:
    """Fixed names block CloudFormation replacement; these must be generated."""
    name_props = {
        "AWS::SageMaker::Model": "ModelName",
        "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
        "AWS::IAM::Role": "RoleName",
        "AWS::IAM::Policy": "PolicyName_fixed",
        "AWS::KMS::Key": "KeyName",
    }
    for synthesized in all_envs:
        for type_, prop in name_props.items():
            for name, res in synthesized.resources(type_).items():
                assert prop not in res.get("Properties", {}), name


def test_fixed_names_carry_app_and_environment(all_envs: list[Synthesized]) -> None:
    for synthesized in all_envs:
        for type_, prop in (
            ("AWS::SageMaker::Endpoint", "EndpointName"),
            ("AWS::OpenSearchService::Domain", "DomainName"),
        ):
            for res in synthesized.resources(type_).values():
                name = res["Properties"][prop]
                stack_env = next(iter(synthesized.templates)).split("-")[1]
                assert name.startswith(f"e5search-{stack_env}-"), name
