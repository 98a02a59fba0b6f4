"""Configuration errors fail synth with one line naming key, value and what is allowed."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, EnvironmentConfig, load_config
from tests.infra.conftest import ROOT, cdk_context, synth


def ctx_with(env: str = "dev", **overrides: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"][env].update(overrides)
    return ctx


def error_of(ctx: dict[str, Any], env: str | None = "dev") -> str:
    with pytest.raises(ConfigError) as err:
        load_config(ctx, env)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_every_configured_environment_loads() -> None:
    ctx = cdk_context()
    for name in ctx["environments"]:
        cfg = load_config(ctx, name)
        assert isinstance(cfg, EnvironmentConfig)
        assert cfg.name == name


def test_defaults_match_the_design() -> None:
    cfg = load_config(cdk_context(), None)
    assert cfg.name == "dev"
    assert cfg.engine_version == "3.7"
    assert cfg.model_id == "intfloat/multilingual-e5-small"
    assert cfg.embedding_dimension == 384
    assert (cfg.query_prefix, cfg.passage_prefix) == ("query: ", "passage: ")
    assert cfg.removal_policy == "destroy"
    assert load_config(cdk_context(), "prod").removal_policy == "retain"


def test_unknown_environment_lists_the_configured_ones() -> None:
    msg = error_of(cdk_context(), "nope")
    assert "env=nope" in msg and "dev" in msg and "prod" in msg


@pytest.mark.parametrize("version", ["3.3", "3.1", "2.19", "OpenSearch_3.7", "4.0"])
def test_engine_versions_below_3_5_or_unknown_are_refused(version: str) -> None:
    msg = error_of(ctx_with(engine_version=version))
    assert "engine_version" in msg and repr(version) in msg and "'3.5'" in msg and "'3.7'" in msg


def test_engine_version_as_number_is_refused() -> None:
    msg = error_of(ctx_with(engine_version=3.7))
    assert "engine_version" in msg and "3.7" in msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data_node_instance_type", "r7g.huge.search"),
        ("data_node_instance_type", "r7g.large"),
        ("dedicated_master_instance_type", "x9.large.search"),
        ("endpoint_instance_type", "ml.m5.enormous"),
        ("endpoint_instance_type", "m5.large"),
        ("endpoint_instance_type", "ml.c7g.large"),  # Graviton: the x86 DLC would not start
    ],
)
def test_unknown_instance_types_are_refused(key: str, value: str) -> None:
    msg = error_of(ctx_with(**{key: value}))
    assert key in msg and repr(value) in msg and "instance type" in msg


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("data_node_count", 0, "an integer from 1"),
        ("data_node_count", "2", "an integer from 1"),
        ("data_node_count", True, "an integer from 1"),
        ("dedicated_master_count", 2, "one of 0, 3, 5"),
        ("availability_zones", 4, "one of 1, 2, 3"),
        ("ebs_volume_size_gib", 5, "an integer from 10"),
        ("log_retention_days", 10, "one of"),
        ("removal_policy", "snapshot", "'destroy', 'retain'"),
        ("model_revision", "main", "40-character"),
        ("model_id", "e5-small", "owner/name"),
        ("index_name", "Docs", "lowercase index name"),
        ("index_name", "_docs", "lowercase index name"),
        ("semantic_field", "passage-text", "field name"),
        ("space_type", "cosine", "'cosinesimil'"),
        ("account", "1234", "12-digit"),
        ("region", "mars-1", "AWS region"),
        ("protected", "yes", "true or false"),
        ("query_prefix", None, "string"),
        ("endpoint_max_capacity", 0, "an integer from 1"),
    ],
)
def test_invalid_values_name_key_value_and_allowed(key: str, value: Any, allowed: str) -> None:
    msg = error_of(ctx_with(**{key: value}))
    assert f"environments.dev.{key}" in msg
    assert repr(value) in msg
    assert allowed in msg


def test_unknown_key_is_refused_with_the_allowed_keys() -> None:
    msg = error_of(ctx_with(data_nodes=2))
    assert "unknown key 'data_nodes'" in msg and "data_node_count" in msg


def test_missing_required_key_is_named() -> None:
    ctx = copy.deepcopy(cdk_context())
    del ctx["environments"]["dev"]["removal_policy"]
    msg = error_of(ctx)
    assert "removal_policy" in msg and "missing" in msg and "'destroy', 'retain'" in msg


def test_missing_environments_block() -> None:
    assert "context.environments" in error_of({"app_name": "e5search"}, "dev")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"endpoint_min_capacity": 3, "endpoint_max_capacity": 2}, "must not exceed"),
        ({"endpoint_initial_instance_count": 5, "endpoint_max_capacity": 2}, "must lie between"),
        ({"availability_zones": 2, "data_node_count": 3}, "multiple of availability_zones"),
        ({"index_replicas": 1, "data_node_count": 1}, "needs at least 2 data nodes"),
        ({"account": "123456789012"}, "set both account and region"),
    ],
)
def test_rules_between_keys(overrides: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(ctx_with(**overrides))


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1"])
def test_china_partition_region_fails_with_one_line_naming_the_trusted_endpoint_rule(
    region: str,
) -> None:
    msg = error_of(ctx_with(account="123456789012", region=region))
    assert "\n" not in msg
    assert f"environments.dev.region: {region!r}" in msg
    assert "trusted_connector_endpoints_regex" in msg


def test_long_app_name_would_break_the_domain_name_limit() -> None:
    ctx = copy.deepcopy(cdk_context())
    ctx["app_name"] = "averylongapp"
    ctx["environments"]["stagingxyz"] = ctx["environments"]["dev"]
    assert "28 characters" in error_of(ctx, "stagingxyz")


def _synth_cli(context: dict[str, Any], env: str) -> subprocess.CompletedProcess[str]:
    """Run app.py the way the CDK CLI does (context through CDK_CONTEXT_JSON)."""
    environ = dict(os.environ, CDK_CONTEXT_JSON=json.dumps({**context, "env": env}))
    environ["CDK_OUTDIR"] = str(ROOT / "build" / "config-error-synth")
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "overrides", "fragment"),
    [
        ("nope", {}, "-c env=nope: no such environment"),
        ("dev", {"engine_version": "3.3"}, "environments.dev.engine_version: '3.3'"),
        ("dev", {"endpoint_instance_type": "ml.m5.giant"}, "endpoint_instance_type"),
    ],
)
def test_app_exits_with_one_clear_line(env: str, overrides: dict[str, Any], fragment: str) -> None:
    ctx = ctx_with(**overrides) if overrides else cdk_context()
    result = _synth_cli(ctx, env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("Configuration error")]
    assert len(lines) == 1 and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_inference_backend_defaults_to_exact_and_accepts_bf16_on_amx_families() -> None:
    assert load_config(cdk_context(), "dev").endpoint_inference_backend == "exact"
    for instance in ("ml.c7i.xlarge", "ml.m7i.large", "ml.r7i.large"):
        ctx = ctx_with(endpoint_inference_backend="bf16", endpoint_instance_type=instance)
        assert load_config(ctx, "dev").endpoint_inference_backend == "bf16"


def test_unknown_inference_backend_is_refused_with_the_choices() -> None:
    msg = error_of(ctx_with(endpoint_inference_backend="int4"))
    assert "environments.dev.endpoint_inference_backend" in msg
    assert "'int4'" in msg and "'exact', 'bf16'" in msg


def test_bf16_backend_on_an_instance_without_amx_is_refused() -> None:
    msg = error_of(
        ctx_with(endpoint_inference_backend="bf16", endpoint_instance_type="ml.m5.large")
    )
    assert "needs an instance family with AMX" in msg and "ml.m5.large" in msg


def test_the_backend_choices_are_the_handler_s() -> None:
    """A backend the config accepts must be one model/fast_path.py knows."""
    from model import fast_path
    from stacks.config import ENDPOINT_INFERENCE_BACKENDS

    assert set(ENDPOINT_INFERENCE_BACKENDS) <= set(fast_path.BACKENDS)


def test_io1_needs_provisioned_iops_within_50_per_gib() -> None:
    msg = error_of(ctx_with(ebs_volume_type="io1"))
    assert msg.startswith("cdk.json environments.dev.ebs_iops: missing") and "io1" in msg
    msg = error_of(ctx_with(ebs_volume_type="io1", ebs_volume_size_gib=20, ebs_iops=1001))
    assert "environments.dev.ebs_iops: 1001 exceeds 50 IOPS per GiB" in msg and "1000" in msg
    assert "only applies to ebs_volume_type io1" in error_of(ctx_with(ebs_iops=3000))
    cfg = load_config(ctx_with(ebs_volume_type="io1", ebs_volume_size_gib=20, ebs_iops=1000), "dev")
    assert (cfg.ebs_volume_type, cfg.ebs_iops) == ("io1", 1000)


@pytest.mark.parametrize("family", ["i3", "r6gd", "i4g", "i4i", "i8g", "im4gn", "r7gd", "r8gd"])
def test_instance_store_data_nodes_refuse_ebs_keys_with_the_reason(family: str) -> None:
    msg = error_of(ctx_with(data_node_instance_type=f"{family}.large.search"))  # dev sets size
    assert msg.startswith("cdk.json environments.dev.ebs_volume_size_gib: ")
    assert "local instance storage and cannot attach EBS" in msg


def test_instance_store_data_nodes_synthesize_without_ebs(tmp_path: Path) -> None:
    ctx = ctx_with(data_node_instance_type="i4g.large.search")
    del ctx["environments"]["dev"]["ebs_volume_size_gib"]
    synthesized = synth(tmp_path, ["dev"], ctx, nag=False)
    (domain,) = synthesized.resources("AWS::OpenSearchService::Domain").values()
    assert domain["Properties"]["EBSOptions"] == {"EBSEnabled": False}
    ctx = ctx_with(ebs_volume_type="io1", ebs_volume_size_gib=40, ebs_iops=2000)
    synthesized = synth(tmp_path / "io1", ["dev"], ctx, nag=False)
    (domain,) = synthesized.resources("AWS::OpenSearchService::Domain").values()
    assert domain["Properties"]["EBSOptions"] == {
        "EBSEnabled": True, "Iops": 2000, "VolumeSize": 40, "VolumeType": "io1"
    }  # fmt: skip
