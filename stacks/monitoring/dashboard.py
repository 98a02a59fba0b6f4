"""One CloudWatch dashboard per environment: domain, endpoint, ML path, loader, alarm states."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.monitoring import metrics as m
from stacks.monitoring.alarm_set import minutes
from stacks.monitoring.endpoint_alarms import INSTANCE_NAMESPACE, VARIANT_NAME
from stacks.monitoring.endpoint_alarms import NAMESPACE as SAGEMAKER
from stacks.monitoring.search_domain_alarms import NAMESPACE as ES

WIDTH = 8


def _graph(title: str, left: list[cloudwatch.IMetric], **kwargs: object) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=left, width=WIDTH, height=6, **kwargs)


class EnvironmentDashboard(Construct):
    """``<prefix>-operations``: the metrics behind every alarm, plus the loader's."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        account: str,
        alarms: list[cloudwatch.Alarm],
        instance_count: cloudwatch.IMetric,
    ) -> None:
        super().__init__(scope, construct_id)
        es_dims = {"DomainName": config.domain_name, "ClientId": account}
        sm_dims = {"EndpointName": config.endpoint_name, "VariantName": VARIANT_NAME}
        env_dims = {m.ENVIRONMENT_DIMENSION: config.name}

        def es(name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=ES, metric_name=name, dimensions_map=es_dims,
                statistic=statistic, period=minutes(1),
            )  # fmt: skip

        def sm(name: str, statistic: str, namespace: str = SAGEMAKER) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=name, dimensions_map=sm_dims,
                statistic=statistic, period=minutes(5),
            )  # fmt: skip

        def custom(namespace: str, name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=name, dimensions_map=env_dims,
                statistic=statistic, period=minutes(5),
            )  # fmt: skip

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{config.prefix}-operations"
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms, width=3 * WIDTH, height=4)
        )
        self.dashboard.add_widgets(
            _graph("Domain: cluster status", [es("ClusterStatus.red"), es("ClusterStatus.yellow"),
                                             es("ClusterIndexWritesBlocked")]),
            _graph("Domain: free storage (MiB, least-free node)",
                   [es("FreeStorageSpace", "Minimum")]),
            _graph("Domain: CPU and JVM memory pressure (%)",
                   [es("CPUUtilization"), es("JVMMemoryPressure"),
                    es("OldGenJVMMemoryPressure")]),
        )  # fmt: skip
        self.dashboard.add_widgets(
            _graph("Domain: indexing and search rate", [es("IndexingRate", "Average"),
                                                       es("SearchRate", "Average")]),
            _graph("Domain: thread pool queues", [es("ThreadpoolWriteQueue", "Average"),
                                                 es("ThreadpoolSearchQueue", "Average")]),
            _graph("Endpoint: invocations and errors",
                   [sm("Invocations", "Sum"), sm("Invocation4XXErrors", "Sum"),
                    sm("Invocation5XXErrors", "Sum")]),
        )  # fmt: skip
        self.dashboard.add_widgets(
            _graph("Endpoint: model latency (microseconds)",
                   [sm("ModelLatency", "p50"), sm("ModelLatency", "p99")]),
            _graph("Endpoint: CPU (sum over cores) and memory (%)",
                   [sm("CPUUtilization", "Average", INSTANCE_NAMESPACE),
                    sm("MemoryUtilization", "Average", INSTANCE_NAMESPACE)]),
            _graph(f"Endpoint: instances (max {config.endpoint_max_capacity})", [instance_count]),
        )  # fmt: skip
        self.dashboard.add_widgets(
            _graph("ML health check (1 = healthy)",
                   [custom(m.ML_HEALTH_NAMESPACE, m.ML_HEALTHY, "Minimum"),
                    custom(m.ML_HEALTH_NAMESPACE, m.ML_MODEL_DEPLOYED, "Minimum")]),
            _graph("ML health check: _predict latency (ms)",
                   [custom(m.ML_HEALTH_NAMESPACE, m.ML_PREDICT_LATENCY, "Maximum")]),
            _graph("Loader: documents (tools.ingest)",
                   [custom(m.INGEST_NAMESPACE, m.INGEST_DOCUMENTS_INDEXED, "Sum"),
                    custom(m.INGEST_NAMESPACE, m.INGEST_DOCUMENTS_FAILED, "Sum"),
                    custom(m.INGEST_NAMESPACE, m.INGEST_THROTTLED, "Sum")]),
        )  # fmt: skip
