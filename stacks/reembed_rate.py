"""How fast an endpoint re-embeds documents: the one table to update with measurements.

Used for the re-embedding copy on an index replacement (docs/ml-setup.md):
the copy's ``_reindex`` is throttled to a share of this rate so live queries
keep their latency, and the same throttled rate estimates the copy's
duration before it starts (documents / rate), so a copy that cannot finish
inside CloudFormation's wait is refused up front.

The figures are conservative assumptions, not measurements on SageMaker:
passages of BEIR length (~200 tokens), multilingual-e5-small, batches of 10
(neural-search's semantic ingest batch size). The CPU rate follows this
repository's benchmark (README "Model server": 6.9 texts/s for MiniLM on a
2-core machine, E5-small about half as fast): ~2 passages/s per vCPU. GPU rates
are rough (T4 ~100/s, A10G ~150/s per instance) until the model-server
benchmarks measure them.
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
