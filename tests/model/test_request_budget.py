"""The per-request budget the endpoint stack sets, per instance family, and what the handler reads.

The timing itself is a measurement, not a test (benchmarks/request_budget.py,
docs/model-server.md "Request budget"); these tests pin the derivation and
that every configured environment gets a budget the handler accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model import inference
from stacks import embedding_endpoint
from stacks.config import environment_names, load_config
from stacks.embedding_endpoint import container_environment, request_token_budget

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]


@pytest.mark.parametrize("name", environment_names(CONTEXT))
def test_every_environment_sets_both_budgets_and_the_handler_reads_them(name: str) -> None:
    config = load_config(CONTEXT, name)
    env = container_environment(config)
    cfg = inference.HandlerConfig.from_env(env)
    assert cfg.max_request_tokens == request_token_budget(config.endpoint_instance_type)
    assert cfg.max_request_chars == embedding_endpoint.MAX_REQUEST_CHARS
    # Ten full windows fit: neural-search's ingest batch is never refused.
    assert cfg.max_request_tokens >= 10 * 512
    assert cfg.max_request_tokens % 512 == 0


@pytest.mark.parametrize(
    ("instance_type", "budget"),
    [
        ("ml.c7i.large", 9216),
        ("ml.m7i.4xlarge", 9216),
        ("ml.c6i.xlarge", 7680),
        ("ml.m5.large", 6144),
        ("ml.m4.xlarge", 5120),
        ("ml.g5.xlarge", 9216),
    ],
)
def test_budget_follows_the_family_not_the_size(instance_type: str, budget: int) -> None:
    """One worker per vCPU, one thread each: a bigger instance does not make a request faster."""
    assert request_token_budget(instance_type) == budget


def test_worst_request_stays_inside_the_target_at_the_extrapolated_rate() -> None:
    """Budget / (measured rate x family factor x SMT share) <= the target, floor excepted."""
    for family, speed in embedding_endpoint.FAMILY_SPEED.items():
        budget = request_token_budget(f"ml.{family}.large")
        rate = embedding_endpoint.MEASURED_TOKENS_PER_SECOND * speed * embedding_endpoint.SMT_SHARE
        if budget > 10 * 512:
            assert budget / rate <= embedding_endpoint.WORST_REQUEST_SECONDS, family
        assert budget / rate < 30, family  # floor or not, well inside SageMaker's 60 s


def test_handler_default_is_the_floor() -> None:
    """Unset (not via the stack), the handler uses the smallest budget the stack gives."""
    assert (
        min(request_token_budget(f"ml.{f}.large") for f in embedding_endpoint.FAMILY_SPEED)
        == inference.DEFAULT_MAX_REQUEST_TOKENS
    )
