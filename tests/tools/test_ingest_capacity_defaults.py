"""The loader's default pace follows the stack's capacity figures (stacks/ingest_capacity.py).

Outputs ``IngestConcurrency`` and ``SemanticIngestBatchSize`` give the defaults: bulk
requests of one semantic sub-batch each (one endpoint invocation per request), as
many in flight as the guaranteed endpoint capacity has slots. Flags override them;
without the outputs the defaults are the default configuration's figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import boto3
import pytest

from stacks.config import EnvironmentConfig
from stacks.ingest_capacity import READ_TIMEOUT_SECONDS, derive
from tests.tools.conftest import CONCRETE_INDEX, Deployed
from tests.tools.emulated_domain import SmokeTestDomain
from tests.tools.moto_stacks import CLIENT_ARN, MASTER_ARN, REGION, deploy_outputs, mocked_aws
from tests.tools.test_ingest import BULK, ingest, write_jsonl
from tools.ingest import cli
from tools.smoke import SetupError


def target(batch: int = 10, concurrency: int | None = None) -> cli.Target:
    return cli.Target("e", "documents", "passage_text", REGION, None, batch, concurrency)


def test_outputs_give_the_defaults_and_flags_override_them() -> None:
    args = cli.parse_args(["--endpoint", "e", "--index", "documents", "x.jsonl"])
    assert cli.pace_defaults(args, target(12, 16)) == cli.PaceDefaults(16, 12, 10)
    flags = cli.parse_args(["--endpoint", "e", "--index", "documents", "--concurrency", "3",
                            "--batch-size", "50", "--min-batch-size", "20", "x.jsonl"])  # fmt: skip
    assert cli.pace_defaults(flags, target(12, 16)) == cli.PaceDefaults(3, 50, 20)


def test_without_outputs_the_default_configurations_figures_apply() -> None:
    args = cli.parse_args(["--endpoint", "e", "--index", "documents", "x.jsonl"])
    assert cli.pace_defaults(args, target()) == cli.PaceDefaults(4, 10, 10)
    # The fallback is what the formula gives the default configuration (1 x ml.m5.large).
    config = EnvironmentConfig(name="dev")
    capacity = derive(
        config.endpoint_instance_type,
        config.endpoint_min_capacity,
        config.endpoint_max_capacity,
        config.data_node_count,
    )
    assert capacity.loader_concurrency == cli.DEFAULT_CONCURRENCY


def test_the_loaders_request_timeout_outlasts_ml_commons_wait_for_the_endpoint() -> None:
    """Pool wait (the SDK's 10 s acquire timeout) plus read_timeout, then the answer."""
    args = cli.parse_args(["--endpoint", "e", "--index", "documents", "x.jsonl"])
    assert args.timeout > 10 + READ_TIMEOUT_SECONDS


def test_a_small_semantic_batch_lowers_the_smallest_bulk_too() -> None:
    args = cli.parse_args(["--endpoint", "e", "--index", "documents", "x.jsonl"])
    assert cli.pace_defaults(args, target(4)) == cli.PaceDefaults(4, 4, 4)
    bad = cli.parse_args(["--endpoint", "e", "--index", "documents", "--min-batch-size", "8",
                          "x.jsonl"])  # fmt: skip
    with pytest.raises(SetupError, match="--min-batch-size 8 exceeds the batch size 4"):
        cli.pace_defaults(bad, target(4))


def test_env_reads_the_capacity_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_aws(monkeypatch):
        deploy_outputs("e5search-dev-search", {
            "DomainEndpoint": "search-e5-dev.eu-west-1.es.amazonaws.com",
            "MasterRoleArn": MASTER_ARN, "SearchClientRoleArn": CLIENT_ARN})  # fmt: skip
        deploy_outputs("e5search-dev-ml-setup", {
            "IndexAlias": "documents", "SemanticField": "body",
            "SemanticIngestBatchSize": "12", "IngestConcurrency": "4"})  # fmt: skip
        args = cli.parse_args(["--env", "dev", "--app", "e5search", "docs.jsonl"])
        found, _ = cli.resolve(args, boto3.Session(region_name=REGION))
        assert (found.semantic_batch_size, found.concurrency) == (12, 4)
        assert cli.pace_defaults(args, found) == cli.PaceDefaults(4, 12, 10)


def test_a_malformed_capacity_output_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_aws(monkeypatch):
        deploy_outputs("e5search-dev-search", {
            "DomainEndpoint": "d", "MasterRoleArn": MASTER_ARN,
            "SearchClientRoleArn": CLIENT_ARN})  # fmt: skip
        deploy_outputs("e5search-dev-ml-setup", {"IndexAlias": "documents",
                                                 "IngestConcurrency": "many"})  # fmt: skip
        args = cli.parse_args(["--env", "dev", "--app", "e5search", "docs.jsonl"])
        with pytest.raises(SetupError, match="output IngestConcurrency is 'many'; expected a"):
            cli.resolve(args, boto3.Session(region_name=REGION))


def dev_sized_domain(
    domain: SmokeTestDomain,
    pool: int | None = None,
    endpoint_seconds: float = 0.0,
    acquire_timeout: float = 0.0,
) -> None:
    """dev's semantic batch (12) on the index; with ``pool``, the connector's per-node pool
    of that size emulated, each predict holding a connection ``endpoint_seconds`` and a
    waiter giving up after ``acquire_timeout`` (the SDK's 10 s, scaled like the endpoint)."""
    with domain.lock:
        domain.indices[CONCRETE_INDEX].settings[
            "index.neural_search.semantic_ingest_batch_size"
        ] = "12"
        if pool is not None:
            for connector in domain.connectors.values():
                connector["client_config"] = {"max_connection": pool}
    if pool is not None:
        domain.emulate_connection_pool = True
        domain.endpoint_seconds = endpoint_seconds
        domain.pool_acquire_timeout = acquire_timeout


def test_by_default_each_bulk_request_is_one_endpoint_invocation(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the index at the stack's batch size (dev: 12), every bulk is one predict."""
    domain = deployed.domain
    dev_sized_domain(domain)
    source = write_jsonl(tmp_path / "docs.jsonl", 100)
    predicts = domain.bulk_predict_calls
    # --semantic-batch-size stands in for the SemanticIngestBatchSize output here.
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--semantic-batch-size", "12")
    assert code == 0, summary
    bulks = [c for c in domain.calls() if c[2] == BULK]
    assert summary["indexed"] == 100
    assert len(bulks) == summary["bulk_requests"] == math.ceil(100 / 12)
    assert domain.bulk_predict_calls - predicts == len(bulks)
    assert summary["endpoint_invocations_estimate"] == len(bulks)


def test_the_sized_pace_fits_the_connection_pool_and_the_old_default_overfills_it(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dev's figures: pool 9 per node, batch 12, loader 4 x 12. The old default (4 bulk
    requests of 100 documents, i.e. 4 x 9 concurrent predicts) waits for connections
    past the SDK's acquire timeout and gets ML Commons' 500 (ml-commons #2487)."""
    domain = deployed.domain
    dev_sized_domain(domain, pool=9, endpoint_seconds=0.3, acquire_timeout=0.1)
    sized = write_jsonl(tmp_path / "sized.jsonl", 96)
    code, summary = ingest(deployed, tmp_path, capsys, str(sized), "--semantic-batch-size", "12",
                           "--concurrency", "4", "--max-attempts", "1")  # fmt: skip
    assert code == 0, summary
    assert summary["indexed"] == 96 and domain.pool_refusals == 0
    assert domain.pool_peak <= 4  # one connection per bulk request, 4 in flight

    old = write_jsonl(tmp_path / "old.jsonl", 400, start=1000)
    code, summary = ingest(deployed, tmp_path, capsys, str(old), "--semantic-batch-size", "12",
                           "--concurrency", "4", "--batch-size", "100", "--max-attempts", "1",
                           "--resume")  # fmt: skip
    assert domain.pool_refusals > 0 and summary["failed"] > 0, (summary, domain.pool_peak)
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert all("Acquire operation took longer" in e["reason"] for e in letters), letters[:1]


def test_a_full_connection_pool_slows_the_loader_down_and_nothing_is_lost(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ML Commons' pool-exhaustion 500 is back-pressure: the pace halves, retries succeed."""
    domain = deployed.domain
    dev_sized_domain(domain, pool=9, endpoint_seconds=0.2, acquire_timeout=0.05)
    source = write_jsonl(tmp_path / "docs.jsonl", 400)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--semantic-batch-size", "12",
                           "--concurrency", "4", "--batch-size", "100")  # fmt: skip
    assert domain.pool_refusals > 0
    assert summary["throttled_answers"] > 0, summary
    assert code == 0 and summary["indexed"] == 400, summary
