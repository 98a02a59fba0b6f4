"""AWS's recommended CloudWatch alarms for the OpenSearch Service domain, as configured.

Source: "Recommended CloudWatch alarms for Amazon OpenSearch Service",
https://docs.aws.amazon.com/opensearch-service/latest/developerguide/cloudwatch-alarms.html
(read 2026-12-03). The page's rules, quoted, and what we do with each:

* ClusterStatus.red maximum is >= 1 for 1 minute, 1 consecutive time.
* ClusterStatus.yellow maximum is >= 1 for 1 minute, 5 consecutive times.
* FreeStorageSpace minimum is <= 20480 for 1 minute, 1 consecutive time; "This
  value is in MiB, so rather than 20480, we recommend setting it to 25% of the
  storage space for each node": we compute 25% of ``ebs_volume_size_gib`` in MiB.
* ClusterIndexWritesBlocked is >= 1 for 5 minutes, 1 consecutive time.
* Nodes minimum is < x for 1 day, 1 consecutive time (x = the cluster's node
  count: data nodes plus dedicated masters, which the metric counts too).
* AutomatedSnapshotFailure maximum is >= 1 for 1 minute, 1 consecutive time.
* CPUUtilization maximum is >= 80% for 15 minutes, 3 consecutive times.
* JVMMemoryPressure maximum is >= 95% for 1 minute, 3 consecutive times.
* OldGenJVMMemoryPressure maximum is >= 80% for 1 minute, 3 consecutive times.
* MasterCPUUtilization maximum is >= 50% for 15 minutes, 3 consecutive times;
  MasterJVMMemoryPressure maximum is >= 95% for 1 minute, 3 consecutive times;
  MasterOldGenJVMMemoryPressure maximum is >= 80% for 1 minute, 3 consecutive
  times; MasterReachableFromNode maximum is < 1 for 1 day, 1 consecutive time:
  only where dedicated master nodes are configured.
* KMSKeyError / KMSKeyInaccessible is >= 1 for 1 minute, 1 consecutive time
  (encryption at rest is always on here). The page notes these metrics only
  appear when the key has a problem, so missing data is "not breaching".
* Shards.active is >= 30000 for 1 minute, 1 consecutive time.
* ThreadpoolWriteQueue average is >= 100 for 1 minute, 1 consecutive time;
  ThreadpoolSearchQueue average is >= 500 for 1 minute, 1 consecutive time.

The master, OldGen, Shards.active and thread-pool rows were cross-checked
against the CloudFormation sample the page links
(github.com/ev2900/OpenSearch_CloudWatch_Alarms, README table), because the
stored copy of the page we could read was cut off after JVMMemoryPressure.
Not created, because they do not apply to this domain: WarmCPUUtilization and
the other UltraWarm/cold rows (no UltraWarm), and the ThreadpoolSearchQueue
maximum >= 5000 row is covered by the average rule's earlier warning.
Thread-pool *rejected* counts are left out: they are cumulative per node and
need a DIFF expression the page does not pin down (docs/operations.md).

All metrics: namespace AWS/ES, dimensions DomainName and ClientId (account id),
the cluster-level aggregate the page's rules are written for.
"""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.monitoring.alarm_set import AlarmSet, Cmp, Missing, minutes

NAMESPACE = "AWS/ES"
MIB_PER_GIB = 1024


def free_storage_threshold_mib(config: EnvironmentConfig) -> float:
    """The page's 25% of each node's storage, in MiB (FreeStorageSpace's unit)."""
    percent = config.alarm_threshold("FreeStorageSpace")
    return round(config.ebs_volume_size_gib * MIB_PER_GIB * percent / 100.0, 1)


class SearchDomainAlarms(AlarmSet):
    """Alarms on the domain ``config.domain_name`` in account ``account``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        topic: sns.ITopic,
        account: str,
    ) -> None:
        super().__init__(scope, construct_id, config=config, topic=topic)
        dims = {"DomainName": config.domain_name, "ClientId": account}

        def metric(name: str, statistic: str, period_minutes: int) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=minutes(period_minutes),
            )

        t = config.alarm_threshold
        domain = config.domain_name
        self.add(
            "ClusterStatusRed",
            metric("ClusterStatus.red", "Maximum", 1),
            threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: at least one primary shard and its replicas are unassigned",
        )  # fmt: skip
        self.add(
            "ClusterStatusYellow",
            metric("ClusterStatus.yellow", "Maximum", 1),
            threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=5, missing=Missing.MISSING,
            description=f"{domain}: at least one replica shard is unassigned for 5 minutes",
        )  # fmt: skip
        self.add(
            "FreeStorageSpace",
            metric("FreeStorageSpace", "Minimum", 1),
            threshold=free_storage_threshold_mib(config),
            comparison=Cmp.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=(
                f"{domain}: a data node has {t('FreeStorageSpace'):g}% or less of its "
                f"{config.ebs_volume_size_gib} GiB volume free"
            ),
        )  # fmt: skip
        self.add(
            "ClusterIndexWritesBlocked",
            metric("ClusterIndexWritesBlocked", "Maximum", 5),
            threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: the cluster is blocking write requests",
        )  # fmt: skip
        nodes = config.data_node_count + config.dedicated_master_count
        self.add(
            "Nodes",
            metric("Nodes", "Minimum", 24 * 60),
            threshold=nodes, comparison=Cmp.LESS_THAN_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: fewer than {nodes} nodes for a day",
        )  # fmt: skip
        self.add(
            "AutomatedSnapshotFailure",
            metric("AutomatedSnapshotFailure", "Maximum", 1),
            threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
            description=f"{domain}: an automated snapshot failed",
        )  # fmt: skip
        self.add(
            "CPUUtilization",
            metric("CPUUtilization", "Maximum", 15),
            threshold=t("CPUUtilization"), comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: data node CPU high for 45 minutes",
        )  # fmt: skip
        self.add(
            "JVMMemoryPressure",
            metric("JVMMemoryPressure", "Maximum", 1),
            threshold=t("JVMMemoryPressure"), comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: data node JVM heap nearly full (out-of-memory risk)",
        )  # fmt: skip
        self.add(
            "OldGenJVMMemoryPressure",
            metric("OldGenJVMMemoryPressure", "Maximum", 1),
            threshold=t("OldGenJVMMemoryPressure"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: data node old generation heap high (long GC pauses)",
        )  # fmt: skip
        self.add(
            "ShardsActive",
            metric("Shards.active", "Maximum", 1),
            threshold=t("ShardsActive"), comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: too many active shards",
        )  # fmt: skip
        self.add(
            "ThreadpoolWriteQueue",
            metric("ThreadpoolWriteQueue", "Average", 1),
            threshold=t("ThreadpoolWriteQueue"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: write thread pool queue is backing up (indexing too fast)",
        )  # fmt: skip
        self.add(
            "ThreadpoolSearchQueue",
            metric("ThreadpoolSearchQueue", "Average", 1),
            threshold=t("ThreadpoolSearchQueue"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: search thread pool queue is backing up",
        )  # fmt: skip
        for name, what in (
            ("KMSKeyError", "the encryption-at-rest KMS key is disabled"),
            (
                "KMSKeyInaccessible",
                "the encryption-at-rest KMS key was deleted or its grants revoked",
            ),
        ):
            self.add(
                name,
                metric(name, "Maximum", 1),
                threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1, missing=Missing.NOT_BREACHING,
                description=f"{domain}: {what}",
            )  # fmt: skip
        if config.dedicated_master_count:
            self._master_alarms(metric, domain)

    def _master_alarms(self, metric, domain: str) -> None:  # type: ignore[no-untyped-def]
        t = self.config.alarm_threshold
        self.add(
            "MasterReachableFromNode",
            metric("MasterReachableFromNode", "Maximum", 24 * 60),
            threshold=1, comparison=Cmp.LESS_THAN_THRESHOLD,
            evaluation_periods=1, missing=Missing.MISSING,
            description=f"{domain}: the master node stopped or is unreachable",
        )  # fmt: skip
        self.add(
            "MasterCPUUtilization",
            metric("MasterCPUUtilization", "Maximum", 15),
            threshold=t("MasterCPUUtilization"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: dedicated master CPU high for 45 minutes",
        )  # fmt: skip
        self.add(
            "MasterJVMMemoryPressure",
            metric("MasterJVMMemoryPressure", "Maximum", 1),
            threshold=t("MasterJVMMemoryPressure"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: dedicated master JVM heap nearly full",
        )  # fmt: skip
        self.add(
            "MasterOldGenJVMMemoryPressure",
            metric("MasterOldGenJVMMemoryPressure", "Maximum", 1),
            threshold=t("MasterOldGenJVMMemoryPressure"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{domain}: dedicated master old generation heap high",
        )  # fmt: skip
