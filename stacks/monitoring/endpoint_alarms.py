"""Alarms on the SageMaker endpoint that embeds every document and query.

Metrics and units (SageMaker "Monitor Amazon SageMaker AI with Amazon
CloudWatch", https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html):
``Invocation5XXErrors``, ``Invocation4XXErrors``, ``Invocations`` and
``InvocationsPerInstance`` are counts in namespace AWS/SageMaker;
``ModelLatency`` is in **microseconds** there too. ``CPUUtilization`` and
``MemoryUtilization`` are in namespace /aws/sagemaker/Endpoints, and CPU is
the *sum over cores* (0-100% per vCPU: an instance with 4 vCPUs reads up to
400%), so the threshold is scaled by the instance's vCPU count. All metrics
have dimensions EndpointName and VariantName.

Instances at max capacity: SageMaker publishes no instance-count metric, so
the alarm uses metric math. ``InvocationsPerInstance`` is ``Invocations``
normalised by the variant's instance count, so ``Invocations /
InvocationsPerInstance`` (both Sum over the same period) *is* the instance
count; the alarm fires when it has been at ``endpoint_max_capacity`` for 15
minutes, i.e. autoscaling can add nothing more while load keeps it there.
With no traffic the expression has no data, and that is "not breaching".
"""

from __future__ import annotations

import re

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.monitoring.alarm_set import AlarmSet, Cmp, Missing, minutes

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
VARIANT_NAME = "AllTraffic"  # stacks/embedding_endpoint.py VARIANT_NAME
INVOCATION_LIMIT_SECONDS = 60  # SageMaker real-time endpoints answer within 60 s or fail
MICROSECONDS = 1_000_000

_SIZE_RE = re.compile(r"^ml\.[a-z0-9]+\.(?P<size>[a-z0-9]+)$")


def endpoint_vcpus(instance_type: str) -> int:
    """vCPUs of a SageMaker instance size (large 2, xlarge 4, Nxlarge 4N; medium 2, small 1)."""
    m = _SIZE_RE.match(instance_type)
    size = m["size"] if m else ""
    fixed = {"nano": 1, "micro": 1, "small": 1, "medium": 2, "large": 2, "xlarge": 4}
    if size in fixed:
        return fixed[size]
    multiple = re.match(r"^(\d+)xlarge$", size)
    if not multiple:
        raise ValueError(f"cannot tell the vCPU count of instance type {instance_type!r}")
    return 4 * int(multiple[1])


class EndpointAlarms(AlarmSet):
    """Alarms on endpoint ``config.endpoint_name``, variant AllTraffic."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id, config=config, topic=topic)
        dims = {"EndpointName": config.endpoint_name, "VariantName": VARIANT_NAME}
        endpoint = config.endpoint_name
        t = config.alarm_threshold

        def metric(
            name: str, statistic: str, period_minutes: int, namespace: str = NAMESPACE
        ) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=minutes(period_minutes),
            )

        self.add(
            "EndpointInvocation5XXErrors",
            metric("Invocation5XXErrors", "Sum", 5),
            threshold=t("EndpointInvocation5XXErrors"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
            description=f"{endpoint}: the model server answered 5xx (ingest and search fail)",
        )  # fmt: skip
        self.add(
            "EndpointInvocation4XXErrors",
            metric("Invocation4XXErrors", "Sum", 5),
            threshold=t("EndpointInvocation4XXErrors"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
            description=f"{endpoint}: requests rejected as bad input (connector or client bug)",
        )  # fmt: skip
        latency_seconds = t("EndpointModelLatencyP99")
        self.add(
            "EndpointModelLatencyP99",
            metric("ModelLatency", "p99", 5),
            threshold=latency_seconds * MICROSECONDS,
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, datapoints_to_alarm=2, missing=Missing.NOT_BREACHING,
            description=(
                f"{endpoint}: p99 model latency >= {latency_seconds:g} s of the "
                f"{INVOCATION_LIMIT_SECONDS} s invocation limit"
            ),
        )  # fmt: skip
        vcpus = endpoint_vcpus(config.endpoint_instance_type)
        cpu_percent = t("EndpointCPUUtilization")
        self.add(
            "EndpointCPUUtilization",
            metric("CPUUtilization", "Average", 5, INSTANCE_NAMESPACE),
            threshold=cpu_percent * vcpus,
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=(
                f"{endpoint}: CPU >= {cpu_percent:g}% of {vcpus} vCPUs "
                f"({config.endpoint_instance_type}) for 15 minutes"
            ),
        )  # fmt: skip
        self.add(
            "EndpointMemoryUtilization",
            metric("MemoryUtilization", "Average", 5, INSTANCE_NAMESPACE),
            threshold=t("EndpointMemoryUtilization"),
            comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.MISSING,
            description=f"{endpoint}: memory high for 15 minutes",
        )  # fmt: skip
        self.instance_count = cloudwatch.MathExpression(
            expression="invocations / perInstance",
            using_metrics={
                "invocations": metric("Invocations", "Sum", 5),
                "perInstance": metric("InvocationsPerInstance", "Sum", 5),
            },
            label="Instances in service (Invocations / InvocationsPerInstance)",
            period=minutes(5),
        )
        if config.endpoint_max_capacity > config.endpoint_min_capacity:
            # Half an instance below the maximum: the ratio of two rounded sums is
            # not exactly an integer.
            self.add(
                "EndpointAtMaxCapacity",
                self.instance_count,
                threshold=config.endpoint_max_capacity - 0.5,
                comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=3, missing=Missing.NOT_BREACHING,
                description=(
                    f"{endpoint}: at endpoint_max_capacity ({config.endpoint_max_capacity} "
                    "instances) for 15 minutes; autoscaling cannot add more"
                ),
            )  # fmt: skip
