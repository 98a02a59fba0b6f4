"""stacks/ingest_capacity.py against hand-computed figures, and its bounds as properties.

Hand computation (docs/ingest-capacity.md): token budget = 790 x family factor x 0.6 x
20 s, rounded down to 512-token windows, at least 10 windows; batch = windows;
slots(n) = 2 x workers x n; max_connection = ceil(slots(max) / nodes) + 1;
loader = slots(min).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacks import ingest_capacity as cap
from stacks.embedding_endpoint import WORST_REQUEST_SECONDS, request_token_budget
from stacks.instance_types import (
    _SIZES,
    ENDPOINT_CPU_FAMILIES,
    ENDPOINT_GPU_FAMILIES,
    is_known_endpoint_instance,
)

# (instance type, min, max, data nodes) -> (workers, batch, max_connection, loader)
HAND = [
    # c4/m4/t2: factor 0.5 -> 4740 tokens -> 9 windows -> floor of 10.
    (("ml.t2.medium", 1, 2, 1), (2, 10, 9, 4)),  # t2.medium has 2 vCPUs
    (("ml.m4.xlarge", 1, 1, 2), (4, 10, 5, 8)),  # slots 8 / 2 nodes + 1
    (("ml.c4.8xlarge", 1, 1, 3), (36, 10, 25, 72)),  # c4.8xlarge: 36 vCPUs; 72 / 3 + 1
    # c5/m5/r5 (+d): factor 0.7 -> 6636 tokens -> 12 windows.
    (("ml.m5.large", 1, 2, 1), (2, 12, 9, 4)),  # dev: 8 / 1 + 1
    (("ml.m5.large", 1, 2, 2), (2, 12, 5, 4)),  # staging: 8 / 2 + 1
    (("ml.m5d.xlarge", 2, 3, 1), (4, 12, 25, 16)),
    (("ml.c5.9xlarge", 2, 4, 5), (36, 12, 59, 144)),  # ceil(288 / 5) = 58, + 1
    (("ml.c5d.2xlarge", 1, 1, 1), (8, 12, 17, 16)),
    (("ml.r5.large", 1, 1, 1), (2, 12, 5, 4)),
    (("ml.r5d.4xlarge", 1, 2, 4), (16, 12, 17, 32)),
    # c6i/m6i/r6i (+d): factor 0.85 -> 8058 tokens -> 15 windows.
    (("ml.c6i.xlarge", 2, 6, 3), (4, 15, 17, 16)),  # prod: 48 / 3 + 1
    (("ml.c6id.2xlarge", 1, 1, 1), (8, 15, 17, 16)),
    (("ml.m6i.large", 1, 3, 2), (2, 15, 7, 4)),
    (("ml.m6id.large", 1, 1, 1), (2, 15, 5, 4)),
    (("ml.r6i.4xlarge", 1, 1, 1), (16, 15, 33, 32)),
    (("ml.r6id.large", 1, 1, 1), (2, 15, 5, 4)),
    # c7i/m7i/r7i: factor 1.0 -> 9480 tokens -> 18 windows.
    (("ml.m7i.xlarge", 1, 1, 1), (4, 18, 9, 8)),
    (("ml.c7i.2xlarge", 1, 2, 3), (8, 18, 12, 16)),  # ceil(32 / 3) = 11, + 1
    (("ml.r7i.large", 1, 1, 1), (2, 18, 5, 4)),
    # GPU families: one MMS worker per GPU; budget of the fastest CPU family (18).
    (("ml.g4dn.xlarge", 1, 2, 1), (1, 18, 5, 2)),
    (("ml.g4dn.12xlarge", 1, 1, 1), (4, 18, 9, 8)),
    (("ml.g5.xlarge", 1, 1, 1), (1, 18, 3, 2)),
    (("ml.g5.48xlarge", 1, 1, 2), (8, 18, 9, 16)),
    (("ml.g6.12xlarge", 1, 1, 1), (4, 18, 9, 8)),
    (("ml.g6e.xlarge", 1, 1, 1), (1, 18, 3, 2)),
    (("ml.p3.2xlarge", 1, 1, 1), (1, 18, 3, 2)),
    (("ml.p3.16xlarge", 1, 1, 1), (8, 18, 17, 16)),
    (("ml.p4d.24xlarge", 1, 1, 1), (8, 18, 17, 16)),
    (("ml.p4de.24xlarge", 1, 1, 1), (8, 18, 17, 16)),
    (("ml.p5.48xlarge", 1, 1, 1), (8, 18, 17, 16)),
]


def test_every_family_the_config_accepts_has_a_hand_computed_case() -> None:
    covered = {args[0].split(".")[1] for args, _ in HAND}
    assert covered == ENDPOINT_CPU_FAMILIES | ENDPOINT_GPU_FAMILIES


@pytest.mark.parametrize(("args", "expected"), HAND, ids=lambda v: str(v))
def test_hand_computed_figures(args: tuple, expected: tuple) -> None:
    result = cap.derive(*args)
    got = (
        result.workers_per_instance,
        result.semantic_ingest_batch_size,
        result.max_connection,
        result.loader_concurrency,
    )
    assert got == expected


def test_timeouts_and_retries_are_the_documented_constants() -> None:
    result = cap.derive("ml.m5.large", 1, 2, 1)
    assert (result.connection_timeout, result.read_timeout) == (10, 70)
    assert (result.max_retry_times, result.retry_backoff_millis) == (5, 200)
    assert (result.retry_timeout_seconds, result.retry_backoff_policy) == (
        30,
        "exponential_full_jitter",
    )
    # The retries' longest backoff fits their budget, so the count ends them.
    longest = sum(cap.RETRY_BACKOFF_MILLIS * 2**k for k in range(cap.MAX_RETRY_TIMES)) / 1000
    assert longest < cap.RETRY_TIMEOUT_SECONDS


def test_large_endpoints_are_capped() -> None:
    result = cap.derive("ml.c7i.48xlarge", 40, 40, 1)
    assert result.max_connection == cap.MAX_CONNECTION_CAP == 1000
    assert result.loader_concurrency == cap.LOADER_CONCURRENCY_CAP == 256


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="min_instances"):
        cap.derive("ml.m5.large", 3, 2, 1)
    with pytest.raises(ValueError, match="data_nodes"):
        cap.derive("ml.m5.large", 1, 1, 0)


ACCEPTED = sorted(
    t
    for t in (
        f"ml.{family}.{size}"
        for family in ENDPOINT_CPU_FAMILIES | ENDPOINT_GPU_FAMILIES
        for size in _SIZES
    )
    if is_known_endpoint_instance(t)
)


@st.composite
def environments(draw: st.DrawFn) -> tuple[str, int, int, int]:
    instance_type = draw(st.sampled_from(ACCEPTED))
    high = draw(st.integers(1, 40))  # stacks/config.py endpoint_max_capacity
    low = draw(st.integers(1, high))
    nodes = draw(st.integers(1, 80))  # stacks/config.py data_node_count
    return instance_type, low, high, nodes


@given(environments())
def test_batch_is_in_the_settings_range_and_inside_the_request_budget(env: tuple) -> None:
    result = cap.derive(*env)
    batch = result.semantic_ingest_batch_size
    assert cap.SEMANTIC_BATCH_MIN <= batch <= cap.SEMANTIC_BATCH_MAX
    # batch passages of the full window never exceed the model server's token budget ...
    assert batch * 512 <= request_token_budget(env[0])
    # ... nor, at the measured p99 length, its character budget.
    assert batch * cap.PASSAGE_CHARS_P99 <= 1_000_000
    assert batch <= cap.MODEL_SERVER_MAX_TEXTS


@given(environments())
def test_pools_hold_the_loader_and_the_queue_stays_inside_60_s(env: tuple) -> None:
    instance_type, _low, high, nodes = env
    result = cap.derive(*env)
    assert 2 <= result.max_connection <= cap.MAX_CONNECTION_CAP
    assert 1 <= result.loader_concurrency <= cap.LOADER_CONCURRENCY_CAP
    # One predict per loader bulk request: never more in flight than the pools hold.
    assert result.loader_concurrency <= result.max_connection * nodes
    # Uncapped, the pools take a fully scaled-out endpoint's slots.
    if result.max_connection < cap.MAX_CONNECTION_CAP:
        assert result.max_connection * nodes >= cap.slots(instance_type, high)
        assert result.max_connection == math.ceil(cap.slots(instance_type, high) / nodes) + 1
    assert result.worst_queued_request_seconds == 2 * WORST_REQUEST_SECONDS < 60
    assert result.read_timeout > cap.SAGEMAKER_INVOCATION_SECONDS


@given(environments(), st.integers(1, 40), st.integers(1, 80))
def test_more_endpoint_means_no_smaller_pool_more_nodes_no_larger(
    env: tuple, more_instances: int, more_nodes: int
) -> None:
    instance_type, low, high, nodes = env
    base = cap.derive(*env).max_connection
    bigger = cap.derive(instance_type, low, max(high, more_instances), nodes).max_connection
    wider = cap.derive(instance_type, low, high, max(nodes, more_nodes)).max_connection
    assert bigger >= base >= wider
