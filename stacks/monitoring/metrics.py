"""Custom metric namespaces and names: what our own code publishes (docs/operations.md).

The loader (``tools.ingest``) and the ML health check publish here; the
dashboard and the alarms read the same names, so they live in one place.
Every custom metric has the single dimension ``Environment`` (the cdk.json
environment name).
"""

from __future__ import annotations

ENVIRONMENT_DIMENSION = "Environment"

# lambdas/ml_health publishes one datapoint of each per run.
ML_HEALTH_NAMESPACE = "E5Search/MlHealth"
ML_HEALTHY = "Healthy"  # 1 when the model is DEPLOYED and _predict answered, else 0
ML_MODEL_DEPLOYED = "ModelDeployed"  # 1 / 0
ML_PREDICT_SUCCEEDED = "PredictSucceeded"  # 1 / 0
ML_PREDICT_LATENCY = "PredictLatency"  # milliseconds

# The bulk loader (tools.ingest, issue 12 item 2) publishes these, Unit Count,
# one datapoint per flush: documents OpenSearch acknowledged, documents sent to
# the dead-letter file, and bulk answers that were throttled (429, or a relayed
# SageMaker 429/503/424) and retried.
INGEST_NAMESPACE = "E5Search/Ingest"
INGEST_DOCUMENTS_INDEXED = "DocumentsIndexed"
INGEST_DOCUMENTS_FAILED = "DocumentsFailed"
INGEST_THROTTLED = "BulkThrottled"
