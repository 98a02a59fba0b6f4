"""The hybrid search pipeline in config and template: validated keys, exact weights, outputs."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from stacks.config import ConfigError, load_config
from tests.infra.conftest import Synthesized, cdk_context


def load(**overrides: Any):
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"]["dev"].update(overrides)
    return load_config(ctx, "dev")


def test_defaults_are_the_measured_min_max_arithmetic_mean_at_0_5_semantic() -> None:
    cfg = load()
    assert (cfg.hybrid_normalization, cfg.hybrid_combination) == ("min_max", "arithmetic_mean")
    assert cfg.hybrid_semantic_weight == 0.5


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hybrid_semantic_weight", 0),
        ("hybrid_semantic_weight", 1),
        ("hybrid_semantic_weight", 1.5),
        ("hybrid_semantic_weight", -0.3),
        ("hybrid_semantic_weight", 0.555),
        ("hybrid_semantic_weight", "0.7"),
        ("hybrid_semantic_weight", True),
        ("hybrid_semantic_weight", math.nan),
        ("hybrid_semantic_weight", math.inf),
        ("hybrid_normalization", "z_score"),
        ("hybrid_normalization", "softmax"),
        ("hybrid_combination", "rrf"),
        ("hybrid_combination", 1),
    ],
)
def test_bad_hybrid_values_fail_with_one_line_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        load(**{key: value})
    message = str(err.value)
    assert f"environments.dev.{key}" in message and "\n" not in message


@pytest.mark.parametrize("weight", [0.01, 0.3, 0.5, 0.99, 0.7])
def test_accepted_weights_keep_their_value(weight: float) -> None:
    assert load(hybrid_semantic_weight=weight).hybrid_semantic_weight == weight


def test_template_deploys_the_pipeline_with_weights_that_sum_to_exactly_one(
    dev: Synthesized,
) -> None:
    ((_, resource),) = dev.resources("Custom::HybridSearchPipeline").items()
    props = resource["Properties"]
    assert props["Name"] == "documents-hybrid"
    assert props["Normalization"] == "min_max" and props["Combination"] == "arithmetic_mean"
    # Strings, exact: the Lambda refuses weights whose decimal sum is not 1.
    assert props["Weights"] == ["0.5", "0.5"]
    # It needs the setup role's search-pipeline permissions, which the mapping grants.
    mapping = next(iter(dev.resources("Custom::MlAccessMapping")))
    assert mapping.split("/")[1] in resource["DependsOn"]
    outputs = dev.one("ml-setup")["Outputs"]
    assert "HybridSearchPipelineName" in outputs
