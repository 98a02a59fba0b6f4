"""CloudFormation stacks with outputs, under moto: what the tools' ``--env`` lookups read.

moto stands in for CloudFormation, STS and CloudWatch; it enforces stack
existence and returns outputs as the service does. Shared by the smoke test,
the loader and the migration command, which all find their target this way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

REGION = "eu-west-1"
MASTER_ARN = "arn:aws:iam::123456789012:role/e5search-dev-search-MasterRoleABC"
CLIENT_ARN = "arn:aws:iam::123456789012:role/e5search-dev-search-ClientRoleABC"


def deploy_outputs(name: str, outputs: dict[str, str]) -> None:
    """A stack named ``name`` whose only content that matters is its outputs."""
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


@contextmanager
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials (never a real profile) and moto's AWS, for one test."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield
