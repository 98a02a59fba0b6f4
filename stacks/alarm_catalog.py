"""The names of every alarm the monitoring stacks can create, and the tunable thresholds.

Kept apart from ``stacks/monitoring`` (which builds the alarms) so that
``stacks/config.py`` can validate ``alarms_disabled`` and ``alarm_thresholds``
without importing CDK constructs. README "Alarms" and docs/operations.md
explain each one; the defaults below are what they state.
"""

from __future__ import annotations

# OpenSearch Service: AWS's recommended alarms that apply to this domain
# (stacks/monitoring/search_domain_alarms.py cites the page).
SEARCH_DOMAIN_ALARMS = (
    "ClusterStatusRed",
    "ClusterStatusYellow",
    "FreeStorageSpace",
    "ClusterIndexWritesBlocked",
    "Nodes",
    "AutomatedSnapshotFailure",
    "CPUUtilization",
    "JVMMemoryPressure",
    "OldGenJVMMemoryPressure",
    "ShardsActive",
    "ThreadpoolWriteQueue",
    "ThreadpoolSearchQueue",
    "KMSKeyError",
    "KMSKeyInaccessible",
)
# Only where dedicated master nodes are configured (dedicated_master_count > 0).
DEDICATED_MASTER_ALARMS = (
    "MasterReachableFromNode",
    "MasterCPUUtilization",
    "MasterJVMMemoryPressure",
    "MasterOldGenJVMMemoryPressure",
)
ENDPOINT_ALARMS = (
    "EndpointInvocation5XXErrors",
    "EndpointInvocation4XXErrors",
    "EndpointModelLatencyP99",
    "EndpointCPUUtilization",
    "EndpointMemoryUtilization",
    "EndpointAtMaxCapacity",
)
ML_PATH_ALARMS = ("MlSetupErrors", "MlHealthCheck")

ALARM_IDS = SEARCH_DOMAIN_ALARMS + DEDICATED_MASTER_ALARMS + ENDPOINT_ALARMS + ML_PATH_ALARMS

# Thresholds an environment may override in cdk.json ``alarm_thresholds``:
# default, lowest and highest allowed value, and the unit (for the error message).
THRESHOLDS: dict[str, tuple[float, float, float, str]] = {
    # Percent of each data node's EBS volume (AWS: 25% rather than 20 GiB).
    "FreeStorageSpace": (25.0, 1.0, 90.0, "percent of each node's volume"),
    "CPUUtilization": (80.0, 1.0, 100.0, "percent"),
    "JVMMemoryPressure": (95.0, 1.0, 100.0, "percent"),
    "OldGenJVMMemoryPressure": (80.0, 1.0, 100.0, "percent"),
    "ShardsActive": (30000.0, 1.0, 1000000.0, "shards"),
    "ThreadpoolWriteQueue": (100.0, 1.0, 100000.0, "queued tasks"),
    "ThreadpoolSearchQueue": (500.0, 1.0, 100000.0, "queued tasks"),
    "MasterCPUUtilization": (50.0, 1.0, 100.0, "percent"),
    "MasterJVMMemoryPressure": (95.0, 1.0, 100.0, "percent"),
    "MasterOldGenJVMMemoryPressure": (80.0, 1.0, 100.0, "percent"),
    "EndpointInvocation5XXErrors": (1.0, 1.0, 1000000.0, "errors per 5 minutes"),
    "EndpointInvocation4XXErrors": (10.0, 1.0, 1000000.0, "errors per 5 minutes"),
    # SageMaker cuts an invocation off at 60 s; alarm well before that.
    "EndpointModelLatencyP99": (48.0, 1.0, 60.0, "seconds"),
    # Percent of the whole instance (all cores), converted to SageMaker's per-core sum.
    "EndpointCPUUtilization": (80.0, 1.0, 100.0, "percent of all cores"),
    "EndpointMemoryUtilization": (85.0, 1.0, 100.0, "percent"),
}


def default_threshold(alarm_id: str) -> float:
    return THRESHOLDS[alarm_id][0]
