"""Instance types this app can deploy onto, checked at synth time.

CloudFormation only rejects an unknown instance type after it has started
creating resources; the OpenSearch domain alone can take 20 minutes to get
there. Checking the family and size here turns a typo into a one-line synth
error. cfn-lint (run by the tests on every synthesized template) then checks
the exact type against its per-region data.
"""

from __future__ import annotations

import re

_SIZES = (
    "nano micro small medium large xlarge 2xlarge 3xlarge 4xlarge 6xlarge 8xlarge 9xlarge "
    "12xlarge 16xlarge 18xlarge 24xlarge 32xlarge 48xlarge"
).split()

# OpenSearch Service data and dedicated master families (current and previous generation).
SEARCH_FAMILIES = frozenset(
    "t3 m5 m6g m7g m7i m8g c5 c6g c7g c7i c8g r5 r6g r6gd r7g r7gd r7i r8g r8gd "
    "i3 i4g i4i i8g im4gn or1 or2 om2 oi2".split()
)
# Families whose data lives on local NVMe instance storage and that attach no
# EBS: AWS documents it for I3 ("do not support EBS storage volumes",
# https://docs.aws.amazon.com/opensearch-service/latest/developerguide/supported-instance-types.html),
# and aws-cdk-lib 2.275.0's Domain refuses EBS on exactly these families
# ("I3, R6GD, I4G, I4I, I8G, IM4GN, R7GD, R8GD and OI2 instance types do not
# support EBS storage volumes").
INSTANCE_STORE_SEARCH_FAMILIES = frozenset("i3 r6gd i4g i4i i8g im4gn r7gd r8gd oi2".split())

# SageMaker real-time inference families that run the x86_64 Hugging Face
# PyTorch DLC. Graviton (c6g, c7g, m6g, r6g...) and Inferentia/Trainium need a
# different image, so they are left out on purpose.
ENDPOINT_CPU_FAMILIES = frozenset(
    "t2 m4 m5 m5d m6i m6id m7i c4 c5 c5d c6i c6id c7i r5 r5d r6i r6id r7i".split()
)
ENDPOINT_GPU_FAMILIES = frozenset("g4dn g5 g6 g6e p3 p4d p4de p5".split())

# Applied with fullmatch: re.match with "$" would accept a trailing newline.
_SEARCH_RE = re.compile(r"(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)\.search")
_ENDPOINT_RE = re.compile(r"ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)")


def is_known_search_instance(instance_type: str) -> bool:
    m = _SEARCH_RE.fullmatch(instance_type)
    return bool(m and m["family"] in SEARCH_FAMILIES and m["size"] in _SIZES)


def has_instance_store(search_instance_type: str) -> bool:
    """True for OpenSearch data node types that keep data on instance storage (no EBS)."""
    m = _SEARCH_RE.fullmatch(search_instance_type)
    return bool(m and m["family"] in INSTANCE_STORE_SEARCH_FAMILIES)


def is_known_endpoint_instance(instance_type: str) -> bool:
    m = _ENDPOINT_RE.fullmatch(instance_type)
    return bool(
        m and m["family"] in ENDPOINT_CPU_FAMILIES | ENDPOINT_GPU_FAMILIES and m["size"] in _SIZES
    )


def is_gpu_endpoint_instance(instance_type: str) -> bool:
    """GPU instances need the CUDA build of the inference image."""
    m = _ENDPOINT_RE.fullmatch(instance_type)
    return bool(m and m["family"] in ENDPOINT_GPU_FAMILIES)


def has_local_instance_storage(instance_type: str) -> bool:
    """Instances with NVMe instance storage encrypt it in hardware; SageMaker then
    rejects a KmsKeyId on the endpoint config."""
    m = _ENDPOINT_RE.fullmatch(instance_type)
    if not m:
        return False
    family = m["family"]
    return family.endswith("d") or family in {"g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5"}
