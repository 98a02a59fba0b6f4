"""Fixtures: an emulated domain, test identities, a fake clock, and a CloudFormation stand-in."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))

from ml_setup import handler
from ml_setup.common import Runtime
from ml_setup.opensearch_client import Backoff

from tests.ml_setup.cfn import ORDER, FakeClock, Provider, Result
from tests.support.domain_fixtures import ACCOUNT, CLIENT, CONNECTOR_ROLE, MASTER, REGION, SETUP
from tests.support.opensearch_emulator import OpenSearchEmulator, Principal

# What the stack passes as the index's EmbeddingIdentity for the default config
# (stacks/ml_setup.py); tests that change one part of it start from a copy.
IDENTITY: dict[str, Any] = {
    "ModelId": "intfloat/multilingual-e5-small",
    "ModelRevision": "614241f622f53c4eeff9890bdc4f31cfecc418b3",
    "QueryPrefix": "query: ",
    "PassagePrefix": "passage: ",
    "IsAsymmetric": True,
    "Pooling": "masked_mean",
    "Normalize": True,
    "EmbeddingDimension": 384,
    "SpaceType": "cosinesimil",
}

E = TypeVar("E", bound=OpenSearchEmulator)

OUTSIDER = Principal(f"arn:aws:iam::{ACCOUNT}:role/someone-else", "FAKEKEYOUTSIDER00000001", "x")
OTHER_ML_USER = f"arn:aws:iam::{ACCOUNT}:role/analytics-team"


def base_properties(endpoint: str) -> dict[str, dict[str, Any]]:
    """The properties MlSetupStack gives each resource (references filled in by Stack)."""
    common = {"DomainEndpoint": endpoint, "Region": REGION}
    return {
        "Custom::MlAccessMapping": {
            **common,
            "MasterRoleArn": MASTER.arn,
            "SetupRoleArn": SETUP.arn,
            "RoleName": "e5search-dev-ml-setup",
            "ClientRoleArn": CLIENT.arn,
            "ClientRoleName": "e5search-dev-search-client",
            "IndexPatterns": ["documents-*", "documents"],
            "ManageSearchPipelines": True,
        },
        "Custom::MlConnector": {
            **common,
            "Name": "e5search-dev-sagemaker-e5",
            "Description": "SageMaker endpoint e5search-dev-e5",
            "EndpointName": "e5search-dev-e5",
            "EndpointRegion": REGION,
            "UrlSuffix": "amazonaws.com",
            "ConnectorRoleArn": CONNECTOR_ROLE,
            # dev's figures from stacks/ingest_capacity.py (test_stack checks the template).
            "MaxConnections": 9,
            "ConnectionTimeoutSeconds": 10,
            "ReadTimeoutSeconds": 70,
            "MaxRetryTimes": 5,
            "RetryBackoffMillis": 200,
            "RetryTimeoutSeconds": 30,
            "RetryBackoffPolicy": "exponential_full_jitter",
        },
        "Custom::MlModel": {
            **common,
            "ModelName": "e5search-dev-e5",
            "Description": "intfloat/multilingual-e5-small on SageMaker",
            "ModelType": "TEXT_EMBEDDING",
            "FrameworkType": "SENTENCE_TRANSFORMERS",
            "EmbeddingDimension": 384,
            "SpaceType": "cosinesimil",
            "IsAsymmetric": True,
            "ModelFamily": "e5",
            "QueryPrefix": "query: ",
            "PassagePrefix": "passage: ",
        },
        "Custom::SemanticIndex": {
            **common,
            "IndexName": "documents",
            "FieldName": "passage_text",
            "EmbeddingDimension": 384,
            "SpaceType": "cosinesimil",
            "NumberOfShards": 1,
            "NumberOfReplicas": 0,
            "RetainOnDelete": False,
            "EmbeddingIdentity": dict(IDENTITY),
            "ReindexDocsPerSecond": 2,
            "MigrationBudgetSeconds": 2100,
            "EnvironmentName": "dev",
            "SemanticIngestBatchSize": 12,
        },
    }


class Stack:
    """The four resources in dependency order, with references wired like the template."""

    def __init__(self, provider: Provider, endpoint: str) -> None:
        self.provider = provider
        self.props = base_properties(endpoint)
        self.physical: dict[str, str] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, dict[str, Any]] = {}

    def resolved(self, resource_type: str) -> dict[str, Any]:
        props = dict(self.props[resource_type])
        if resource_type == "Custom::MlModel":
            props["ConnectorId"] = self.data["Custom::MlConnector"]["ConnectorId"]
        if resource_type == "Custom::SemanticIndex":
            props["ModelId"] = self.data["Custom::MlModel"]["ModelId"]
        return props

    def create(self) -> dict[str, Result]:
        results = {}
        for resource_type in ORDER:
            props = self.resolved(resource_type)
            result = self.provider.send("Create", resource_type, props)
            results[resource_type] = result
            if result.status != "SUCCESS":
                break
            self.physical[resource_type] = result.physical_id
            self.data[resource_type] = result.data
            self.applied[resource_type] = props
        return results

    def update(self) -> dict[str, Result]:
        """Update every resource whose resolved properties changed; then the cleanup deletes."""
        results: dict[str, Result] = {}
        replaced: list[tuple[str, str, dict[str, Any]]] = []
        for resource_type in ORDER:
            props = self.resolved(resource_type)
            old = self.applied[resource_type]
            if props == old:
                continue
            result = self.provider.send(
                "Update",
                resource_type,
                props,
                physical_id=self.physical[resource_type],
                old_props=old,
            )
            results[resource_type] = result
            if result.status != "SUCCESS":
                return results
            if result.physical_id != self.physical[resource_type]:
                replaced.append((resource_type, self.physical[resource_type], old))
            self.physical[resource_type] = result.physical_id
            self.data[resource_type] = result.data
            self.applied[resource_type] = props
        # UPDATE_COMPLETE_CLEANUP_IN_PROGRESS: old physical resources, dependents first.
        for resource_type, old_id, old_props in reversed(replaced):
            result = self.provider.send("Delete", resource_type, old_props, physical_id=old_id)
            results[f"cleanup {resource_type}"] = result
        return results

    def delete(self) -> dict[str, Result]:
        results = {}
        for resource_type in reversed(ORDER):
            if resource_type not in self.physical:
                continue
            results[resource_type] = self.provider.send(
                "Delete",
                resource_type,
                self.applied[resource_type],
                physical_id=self.physical[resource_type],
            )
        return results


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def emulated_domain(kind: type[E] = OpenSearchEmulator) -> Iterator[E]:  # type: ignore[assignment]
    """A domain as the stacks leave it (our three identities admitted), checked for spec
    violations at the end; ``kind`` is the emulator class (the search tests add APIs)."""
    with kind(
        master=MASTER,
        principals=[SETUP, CLIENT, OUTSIDER],
        region=REGION,
        access_policy=[MASTER.arn, SETUP.arn, CLIENT.arn],
        pass_role={SETUP.arn: {CONNECTOR_ROLE}},
    ) as emu:
        yield emu
        assert not emu.violations, "specification violations:\n" + "\n".join(
            map(str, emu.violations)
        )


@pytest.fixture
def emulator() -> Iterator[OpenSearchEmulator]:
    yield from emulated_domain()


@pytest.fixture
def assumed() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def runtime(clock: FakeClock, assumed: list[tuple[str, str]]) -> Iterator[Runtime]:
    def assume_role(role_arn: str, session: str):
        assumed.append((role_arn, session))
        if role_arn != MASTER.arn:
            raise PermissionError(f"sts:AssumeRole on {role_arn} is not allowed for the setup role")
        return lambda: MASTER.credentials

    rt = Runtime(
        clock=clock,
        setup_credentials=lambda: SETUP.credentials,
        assume_role=assume_role,
        wait_timeout_seconds=600,
        backoff=Backoff(base=1.0, cap=20.0),
    )
    handler.set_runtime(rt)
    yield rt
    handler.set_runtime(None)


@pytest.fixture
def provider(clock: FakeClock, runtime: Runtime) -> Provider:
    return Provider(clock)


@pytest.fixture
def stack(provider: Provider, emulator: OpenSearchEmulator) -> Stack:
    return Stack(provider, emulator.endpoint)
