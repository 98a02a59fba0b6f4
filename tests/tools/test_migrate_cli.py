"""tools.migrate's command line: stack outputs, the master role, one-line exits (moto stands in
for CloudFormation and STS, as in test_smoke_outputs)."""

from __future__ import annotations

import boto3
import pytest

from tests.tools.moto_stacks import MASTER_ARN, REGION, deploy_outputs, mocked_aws
from tools import migrate


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with mocked_aws(monkeypatch):
        deploy_outputs("e5search-dev-ml-setup", {"ModelId": "m", "IndexAlias": "documents"})
        yield


def test_it_signs_as_the_master_role_at_the_domain_endpoint(aws) -> None:  # type: ignore[no-untyped-def]
    deploy_outputs("e5search-dev-search", {"DomainEndpoint": "search-x.eu-west-1.es.amazonaws.com",
                                    "MasterRoleArn": MASTER_ARN})  # fmt: skip
    args = migrate.parse_args(["--env", "dev", "--app", "e5search"])
    client, alias = migrate.connect(args, boto3.Session(region_name=REGION))
    assert alias == "documents"
    assert client.base == "https://search-x.eu-west-1.es.amazonaws.com"
    creds = client.credentials()
    assert creds.access_key != "testing" and creds.token, "assumed-role (temporary) credentials"
    assert client.max_retries > 0, "a long copy survives a throttled poll"


def test_no_master_role_output_is_one_line_and_exit_2(aws, capsys) -> None:  # type: ignore[no-untyped-def]
    deploy_outputs("e5search-dev-search", {"DomainEndpoint": "search-x.eu-west-1.es.amazonaws.com"})
    code = migrate.main(["--env", "dev", "--app", "e5search", "--region", REGION])
    out = capsys.readouterr().out.strip()
    assert code == 2
    assert out == (
        "migration could not start: output MasterRoleArn not found in stacks "
        "e5search-dev-search, e5search-dev-ml-setup"
    )
