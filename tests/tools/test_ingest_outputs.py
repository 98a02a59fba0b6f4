"""``--env``: the loader finds its target in the stack outputs and signs as the search-client
role, never the master (moto stands in for CloudFormation, STS and CloudWatch)."""

from __future__ import annotations

import boto3
import pytest

from tests.tools.moto_stacks import CLIENT_ARN, MASTER_ARN, REGION, deploy_outputs, mocked_aws
from tools.ingest import cli
from tools.ingest.loader import Counts
from tools.smoke import SetupError


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with mocked_aws(monkeypatch):
        yield


def _environment(client_role: bool = True) -> None:
    search = {"DomainEndpoint": "search-e5-dev-abc.eu-west-1.es.amazonaws.com",
              "MasterRoleArn": MASTER_ARN}  # fmt: skip
    if client_role:
        search["SearchClientRoleArn"] = CLIENT_ARN
    deploy_outputs("e5search-dev-search", search)
    ml = {"ModelId": "m-1", "IndexName": "documents-0a1b", "IndexAlias": "documents",
          "SemanticField": "body"}  # fmt: skip
    deploy_outputs("e5search-dev-ml-setup", ml)


def test_env_resolves_alias_field_and_signs_as_the_client_role(aws) -> None:
    _environment()
    args = cli.parse_args(["--env", "dev", "--app", "e5search", "docs.jsonl"])
    target, credentials = cli.resolve(args, boto3.Session(region_name=REGION))
    assert (target.endpoint, target.index, target.field, target.semantic_batch_size) == (
        "search-e5-dev-abc.eu-west-1.es.amazonaws.com", "documents", "body", 10)  # fmt: skip
    frozen = credentials.get_frozen_credentials()
    identity = boto3.client(
        "sts", region_name=REGION, aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key, aws_session_token=frozen.token,
    ).get_caller_identity()  # fmt: skip
    assert ":assumed-role/e5search-dev-search-ClientRoleABC/e5search-ingest" in identity["Arn"]


def test_an_environment_without_the_client_role_output_is_refused(aws) -> None:
    _environment(client_role=False)
    args = cli.parse_args(["--env", "dev", "--app", "e5search", "docs.jsonl"])
    with pytest.raises(SetupError, match="signs only as the search-client role"):
        cli.resolve(args, boto3.Session(region_name=REGION))


def test_main_reports_a_missing_environment_in_one_line(aws, tmp_path, capsys) -> None:
    code = cli.main(["--env", "nope", "--app", "e5search", "--dead-letters",
                     str(tmp_path / "d.jsonl"), str(tmp_path / "x.jsonl")])  # fmt: skip
    out = capsys.readouterr().out.strip()
    assert code == 2 and "\n" not in out
    assert out.startswith("ingest could not start: stack e5search-nope-search not readable")


def test_counts_are_published_as_cloudwatch_metrics(aws) -> None:
    counts = Counts(indexed=990, failed=7, malformed=3, throttled_answers=4)
    cli.publish("dev", counts, REGION, boto3.Session(region_name=REGION))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    found = {}
    for name in ("DocumentsIndexed", "DocumentsFailed", "BulkThrottled"):
        stats = cloudwatch.get_metric_statistics(
            Namespace="E5Search/Ingest", MetricName=name,
            Dimensions=[{"Name": "Environment", "Value": "dev"}],
            StartTime="2000-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z",
            Period=60, Statistics=["Sum"],
        )["Datapoints"]  # fmt: skip
        found[name] = sum(p["Sum"] for p in stats)
    assert found == {"DocumentsIndexed": 990.0, "DocumentsFailed": 10.0, "BulkThrottled": 4.0}
