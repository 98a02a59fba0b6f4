"""The endpoint scales on concurrent requests, at one per model-server worker (issue 12).

The previous policy tracked ``InvocationsPerInstance`` at 600 a minute; a saturated
ml.m5.large serves about 9 bulk invocations a minute, so ingest never scaled it out.
Expected figures are computed by hand from the instance tables (ml.m5.large: 2 vCPUs,
ml.c6i.xlarge: 4 vCPUs; one MMS worker per vCPU), not read from the code.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.config import ConfigError, load_config
from stacks.embedding_endpoint import EmbeddingEndpointStack
from stacks.ingest_capacity import derive
from tests.infra.conftest import Synthesized, cdk_context

CONCURRENCY_METRIC = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
# environment -> (target concurrent requests per instance, min instances, loader default)
EXPECTED = {"dev": (2, 1, 4), "staging": (2, 1, 4), "prod": (4, 2, 16)}


def _policy_config(synthesized: Synthesized) -> dict[str, Any]:
    (policy,) = synthesized.resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert policy["Properties"]["PolicyType"] == "TargetTrackingScaling"
    return policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_policy_tracks_concurrent_requests_per_model_at_one_per_worker(
    env: str, synth_env: Any
) -> None:
    spec = _policy_config(synth_env(env))
    assert spec["PredefinedMetricSpecification"] == {"PredefinedMetricType": CONCURRENCY_METRIC}
    assert spec["TargetValue"] == EXPECTED[env][0]
    assert (spec["ScaleOutCooldown"], spec["ScaleInCooldown"]) == (60, 300)
    assert "DisableScaleIn" not in spec or spec["DisableScaleIn"] is False


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_the_loader_default_pace_makes_target_tracking_scale_out(env: str, synth_env: Any) -> None:
    """At the loader's default pace the synthesized policy asks for more than the minimum.

    Target tracking sets capacity to about ceil(instances x metric / target); the
    policy's metric counts requests at the container, queued ones included, so under
    ingest it is the loader's requests in flight per instance.
    """
    spec = _policy_config(synth_env(env))
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == CONCURRENCY_METRIC
    target = spec["TargetValue"]
    cfg = load_config(cdk_context(), env)
    _, low, loader = EXPECTED[env]
    cap = derive(
        cfg.endpoint_instance_type,
        cfg.endpoint_min_capacity,
        cfg.endpoint_max_capacity,
        cfg.data_node_count,
    )
    assert (cfg.endpoint_min_capacity, cap.loader_concurrency) == (low, loader)
    per_instance = loader / low
    desired = math.ceil(low * per_instance / target)
    assert desired > low
    # ... and the target sits below the slots (2 per worker), so scaling starts
    # while requests still finish inside SageMaker's 60 s.
    assert target < 2 * cap.workers_per_instance


def _endpoint_template(**overrides: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"]["dev"].update(overrides)
    app = cdk.App(context=ctx)
    stack = EmbeddingEndpointStack(app, "Endpoint", config=load_config(ctx, "dev"))
    return Template.from_stack(stack).to_json()


def test_explicit_target_concurrency_overrides_the_derived_one() -> None:
    resources = _endpoint_template(endpoint_target_concurrency=3)["Resources"]
    (policy,) = [
        r for r in resources.values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    ]
    spec = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == CONCURRENCY_METRIC
    assert spec["TargetValue"] == 3


def _error(**overrides: Any) -> str:
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"]["dev"].update(overrides)
    with pytest.raises(ConfigError) as err:
        load_config(ctx, "dev")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_target_concurrency_above_the_instance_slots_is_refused_in_one_line() -> None:
    message = _error(endpoint_target_concurrency=5)  # ml.m5.large holds 2 x 2 = 4
    assert "endpoint_target_concurrency (5) exceeds the 4 requests" in message
    assert "ml.m5.large" in message
    assert load_config(cdk_context(), "dev").endpoint_target_concurrency is None


@pytest.mark.parametrize("value", [0, -1, 1001, 2.5, True, "2"])
def test_target_concurrency_must_be_an_integer_in_range(value: Any) -> None:
    message = _error(endpoint_target_concurrency=value)
    assert message.startswith("cdk.json environments.dev.endpoint_target_concurrency: ")
    assert message.endswith("expected an integer from 1 to 1000")


def test_the_replaced_per_minute_key_names_its_replacement() -> None:
    message = _error(endpoint_target_invocations_per_instance=600)
    assert "endpoint_target_invocations_per_instance" in message
    assert "endpoint_target_concurrency" in message
