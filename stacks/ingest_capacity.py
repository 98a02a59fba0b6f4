"""How hard ingest may push the endpoint: connector pool, semantic batch, loader pace.

One formula, three consumers, so they cannot disagree (docs/ingest-capacity.md
has the derivation, its sources and what is measured versus assumed):

* the ML Commons connector's ``client_config`` (stacks/ml_setup.py ->
  lambdas/ml_setup/connector.py),
* the index setting ``index.neural_search.semantic_ingest_batch_size``
  (-> lambdas/ml_setup/semantic_index.py),
* ``python -m tools.ingest``'s default concurrency and bulk size (stack outputs
  ``IngestConcurrency`` and ``SemanticIngestBatchSize``).

The inputs are the endpoint's instance type and instance counts and the data
node count. The chain:

1. Workers per instance. The endpoint leaves ``SAGEMAKER_MODEL_SERVER_WORKERS``
   unset, so Multi Model Server picks its default: the number of GPUs, or,
   without GPUs, ``Runtime.availableProcessors()`` (multi-model-server 1.1.11
   ``ConfigManager.getDefaultWorkers``, read from the jar's bytecode), i.e. one
   worker per vCPU. Each worker serves one request at a time.
2. Slots. A request waiting in the model server's queue behind one other
   request at most (``QUEUE_DEPTH`` = 2 requests per worker) finishes within
   2 x ``WORST_REQUEST_SECONDS`` = 40 s, inside SageMaker's 60 s invocation
   limit, even if both are the worst request the model server accepts; one
   waiting request per worker keeps the worker busy during the caller's turnaround.
   slots(n instances) = QUEUE_DEPTH x workers x n.
3. Connector pool (``max_connection``) is per data node: every data node that
   holds the remote model builds its own HTTP client with that many connections
   (ml-commons 3.7.0.0 RemoteModel.java:148 one executor per deployed model per
   node; AwsConnectorExecutor.java:216-251 one client per executor;
   MLHttpClientFactory.java:66-70 ``maxConcurrency(maxConnections)``), and
   predictions are spread round robin over those nodes (MLTaskDispatcher.java:
   93-100, the default policy at MLCommonsSettings.java:32-38; remote models run
   on data nodes by default, :311-318). So max_connection =
   ceil(slots(max instances) / data nodes) + 1: the pools let a fully scaled-out
   endpoint be used, and the one extra connection per node absorbs round robin's
   unevenness so a search's predict does not wait behind a full pool, where it
   would fail after the AWS SDK's 10 s acquire timeout (ML Commons 3.7 sets
   none; ml-commons #4717) with an opaque 500.
4. Semantic batch: the most passages of one sub-batch (one predict) such that
   the model server never refuses it. Every passage is truncated to the 512-token
   window (prefix and special tokens included) before the token budget is
   checked, so batch x 512 <= the instance family's per-request token budget
   (stacks/embedding_endpoint.py ``request_token_budget``) holds for any text;
   the character budget then bounds it by ``MAX_REQUEST_CHARS`` / the p99
   passage length, and neural-search's setting range by 100.
5. Timeouts: ``read_timeout`` is ``READ_TIMEOUT_SECONDS`` (70 s), the socket
   timeout the InvokeEndpoint API reference recommends for models that may take
   up to the 60 s limit: a request SageMaker cuts at 60 s then comes back with
   SageMaker's own error and status (which the loader backs off on), not as a
   client-side timeout that ML Commons reports as a bare 500 while the endpoint
   keeps computing the abandoned request.
6. Autoscaling: the variant tracks SageMaker's ``ConcurrentRequestsPerModel``
   (requests at the container, queued ones included, sampled every 10 s) with
   target ``workers`` per instance: scale-out starts once, on average, every
   worker is busy and requests begin to queue, i.e. at half the slots, well
   before a request can wait past 60 s (``autoscaling_target_concurrency``).
7. Loader: ``IngestConcurrency`` = slots(min instances) bulk requests of
   ``SemanticIngestBatchSize`` documents, i.e. one predict per bulk request and
   as many predicts in flight as the guaranteed capacity has slots (never more
   than the pools hold, since min <= max).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacks.embedding_endpoint import (
    MAX_REQUEST_CHARS,
    WINDOW_TOKENS,
    WORST_REQUEST_SECONDS,
    request_token_budget,
)
from stacks.instance_types import is_gpu_endpoint_instance

# SageMaker real-time invocations must answer within this (InvokeEndpoint API
# reference: "A customer's model containers must respond to requests within 60 seconds").
SAGEMAKER_INVOCATION_SECONDS = 60
# Requests per worker the endpoint holds at once: one computing, one queued.
QUEUE_DEPTH = 2
# "If your model is going to take 50-60 seconds of processing time, the SDK socket
# timeout should be set to be 70 seconds" (InvokeEndpoint API reference).
READ_TIMEOUT_SECONDS = 70
# An in-region TCP and TLS handshake takes milliseconds; a black-holed connect
# should free its pool slot well before ML Commons' 30 s default would.
CONNECTION_TIMEOUT_SECONDS = 10
# Extra connections per data node beyond its share of the slots (see step 3).
POOL_HEADROOM = 1
# Upper bounds for very large endpoints. Each pooled connection is a socket of the
# data node's OpenSearch process (the AWS SDK's own pool-exhaustion message warns of
# file-descriptor limits); the Lambda refuses more (lambdas/ml_setup/connector.py).
# Each loader slot is a thread and a connection of the machine running tools.ingest.
MAX_CONNECTION_CAP = 1000
LOADER_CONCURRENCY_CAP = 256
# neural-search 3.7.0.0 NeuralSearchSettings.java:63-70: intSetting, default 10, 1..100.
SEMANTIC_BATCH_MIN, SEMANTIC_BATCH_MAX, SEMANTIC_BATCH_DEFAULT = 1, 100, 10
# model/inference.py DEFAULT_MAX_TEXTS: texts per request the model server accepts.
MODEL_SERVER_MAX_TEXTS = 256
# p99 of SciFact passages (title + text, 5,183 documents), measured here
# (docs/ingest-capacity.md): 3,144 characters; its p99 in tokens is the
# 512-token window itself (14% of the passages are truncated).
PASSAGE_CHARS_P99 = 3144

# ML Commons retries only ThrottlingException answers (MLSdkAsyncHttpResponseHandler.java:
# 115-136, RemoteConnectorExecutor.java:419-432): SageMaker's API rate limit, answered
# at once and costing no worker time. Full-jitter backoff from 200 ms (each wait drawn
# below 200 ms x 2^k; core BackoffPolicy, class name only): five retries wait at most
# 0.2 + 0.4 + 0.8 + 1.6 + 3.2 = 6.2 s, inside the 30 s retry budget (RetryableAction's
# timeout, RemoteConnectorExecutor.java:355-361), so the count ends the retries.
MAX_RETRY_TIMES = 5
RETRY_BACKOFF_MILLIS = 200
RETRY_TIMEOUT_SECONDS = 30
RETRY_BACKOFF_POLICY = "exponential_full_jitter"

# vCPUs by size (EC2 naming); the exceptions are listed per type below.
_SIZE_VCPUS = {
    "nano": 1, "micro": 1, "small": 1, "medium": 1, "large": 2, "xlarge": 4,
    "2xlarge": 8, "3xlarge": 12, "4xlarge": 16, "6xlarge": 24, "8xlarge": 32,
    "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96,
    "32xlarge": 128, "48xlarge": 192,
}  # fmt: skip
_VCPU_EXCEPTIONS = {"ml.t2.medium": 2, "ml.c4.8xlarge": 36}
# GPUs per GPU instance type (EC2 accelerated-computing tables); other sizes have one.
_GPUS = {
    **dict.fromkeys(("ml.g4dn.12xlarge", "ml.g5.12xlarge", "ml.g5.24xlarge"), 4),
    **dict.fromkeys(("ml.g6.12xlarge", "ml.g6.24xlarge", "ml.g6e.12xlarge"), 4),
    **dict.fromkeys(("ml.g6e.24xlarge", "ml.p3.8xlarge"), 4),
    **dict.fromkeys(("ml.g5.48xlarge", "ml.g6.48xlarge", "ml.g6e.48xlarge"), 8),
    **dict.fromkeys(("ml.p3.16xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge"), 8),
    "ml.p5.48xlarge": 8,
}


def vcpus(instance_type: str) -> int:
    if instance_type in _VCPU_EXCEPTIONS:
        return _VCPU_EXCEPTIONS[instance_type]
    return _SIZE_VCPUS[instance_type.rsplit(".", 1)[-1]]  # ml.<family>.<size>, validated


def workers_per_instance(instance_type: str) -> int:
    """What MMS starts by default: one worker per GPU, else one per vCPU (see step 1)."""
    if is_gpu_endpoint_instance(instance_type):
        return _GPUS.get(instance_type, 1)
    return vcpus(instance_type)


def slots(instance_type: str, instances: int) -> int:
    """Requests the endpoint holds without any waiting past one request per worker."""
    return QUEUE_DEPTH * workers_per_instance(instance_type) * instances


def autoscaling_target_concurrency(instance_type: str) -> int:
    """Concurrent requests per instance the scaling policy holds: one per worker (step 6).

    Invocations per minute cannot express this: a saturated ml.m5.large serves
    about 9 bulk invocations a minute (docs/ingest-capacity.md), so any fixed
    per-minute target either never fires under ingest or fires on idle query traffic.
    """
    return workers_per_instance(instance_type)


def max_connection(instance_type: str, max_instances: int, data_nodes: int) -> int:
    """``client_config.max_connection``: one data node's share of the slots, plus headroom."""
    share = math.ceil(slots(instance_type, max_instances) / data_nodes) + POOL_HEADROOM
    return min(MAX_CONNECTION_CAP, share)


def semantic_ingest_batch_size(instance_type: str) -> int:
    """Passages per predict that the model server never refuses for their size (step 4)."""
    by_tokens = request_token_budget(instance_type) // WINDOW_TOKENS
    by_chars = MAX_REQUEST_CHARS // PASSAGE_CHARS_P99
    return max(
        SEMANTIC_BATCH_MIN, min(SEMANTIC_BATCH_MAX, MODEL_SERVER_MAX_TEXTS, by_tokens, by_chars)
    )


@dataclass(frozen=True)
class IngestCapacity:
    """Everything derived for one environment (see the module docstring)."""

    workers_per_instance: int
    max_connection: int
    connection_timeout: int
    read_timeout: int
    semantic_ingest_batch_size: int
    loader_concurrency: int
    max_retry_times: int = MAX_RETRY_TIMES
    retry_backoff_millis: int = RETRY_BACKOFF_MILLIS
    retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS
    retry_backoff_policy: str = RETRY_BACKOFF_POLICY

    @property
    def worst_queued_request_seconds(self) -> int:
        """The design bound of a request's time at the endpoint at full slots."""
        return QUEUE_DEPTH * WORST_REQUEST_SECONDS


def derive(
    instance_type: str, min_instances: int, max_instances: int, data_nodes: int
) -> IngestCapacity:
    if not 1 <= min_instances <= max_instances or data_nodes < 1:
        raise ValueError(
            f"need 1 <= min_instances ({min_instances}) <= max_instances ({max_instances}) "
            f"and data_nodes ({data_nodes}) >= 1"
        )
    pool = max_connection(instance_type, max_instances, data_nodes)
    return IngestCapacity(
        workers_per_instance=workers_per_instance(instance_type),
        max_connection=pool,
        connection_timeout=CONNECTION_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        semantic_ingest_batch_size=semantic_ingest_batch_size(instance_type),
        # Never more predicts in flight than all the nodes' pools hold together.
        loader_concurrency=min(
            slots(instance_type, min_instances), pool * data_nodes, LOADER_CONCURRENCY_CAP
        ),
    )
