"""How fast an endpoint re-embeds documents: the one table to update with measurements.

Used for the re-embedding copy on an index replacement (docs/ml-setup.md):
the copy's ``_reindex`` is throttled to a share of this rate so live queries
keep their latency, and the same throttled rate estimates the copy's
duration before it starts (documents / rate), so a copy that cannot finish
inside CloudFormation's wait is refused up front.

Estimate (semantic_index.py): seconds = documents / ReindexDocsPerSecond, with
ReindexDocsPerSecond = floor(instance_rate(type) x endpoint_min_capacity x
COPY_SHARE). Above the deployment's budget the copy is refused and the reason
names ``python -m tools.migrate --env NAME``. For 1,000,000 documents:
ml.m5.large x 1 -> 2 docs/s -> 500,000 s (about 139 h); ml.g5.xlarge x 1 ->
75 docs/s -> 13,333 s (about 3.7 h); both go through tools.migrate.

What is measured and what is not. Measured, on this repository's 2-vCPU build
machine: the real multilingual-e5-small handler (model/inference.py, weights
from tools/real_e5.py) embedded 2.3 passages/s with one torch thread
(``benchmarks.model_throughput --requests 4 --threads 1``: 40 BEIR-shaped
passages, mean 289 tokens, requests of 10; machine load average 5.6 -> 8.7 from
other jobs during the run, so a lower bound). Not measured: anything on
SageMaker. The CPU rows are extrapolated from that figure as ~2 passages/s per
vCPU times the instance's vCPUs, rounded down (an ml.m5.large's two vCPUs are
one core's hyperthreads, so doubling one thread's rate is already generous).
The GPU rows (T4 ~100/s, A10G ~150/s per instance) are a documented assumption
with no measurement behind them.
"""

from __future__ import annotations

import math

from stacks.instance_types import is_gpu_endpoint_instance

# Passages per second one instance embeds, by instance type; others fall back
# to PER_VCPU x vCPUs (CPU) or GPU_DEFAULT.
DOCS_PER_SECOND: dict[str, float] = {
    "ml.m5.large": 4.0,
    "ml.m5.xlarge": 8.0,
    "ml.c5.2xlarge": 16.0,
    "ml.c6i.xlarge": 8.0,
    "ml.g4dn.xlarge": 100.0,
    "ml.g5.xlarge": 150.0,
}
PER_VCPU = 2.0
GPU_DEFAULT = 100.0
VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48}
# Share of the endpoint the copy may use; the rest stays for live queries.
COPY_SHARE = 0.5


def instance_rate(instance_type: str) -> float:
    if instance_type in DOCS_PER_SECOND:
        return DOCS_PER_SECOND[instance_type]
    if is_gpu_endpoint_instance(instance_type):
        return GPU_DEFAULT
    size = instance_type.rsplit(".", 1)[-1]
    return PER_VCPU * VCPUS.get(size, 2)


def copy_docs_per_second(instance_type: str, instances: int) -> int:
    """``requests_per_second`` for the copy: a share of the guaranteed (minimum) capacity."""
    return max(1, math.floor(instance_rate(instance_type) * instances * COPY_SHARE))
