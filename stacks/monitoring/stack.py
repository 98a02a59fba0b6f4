"""The monitoring stack of one environment: SNS topic, alarms per stack, dashboard.

A stack of its own, deployed after the other three, so that alarms never sit
on the critical path of a deployment and the domain, endpoint and ML setup
stacks stay unaware of how they are watched. Each concern is one construct:
``SearchDomainAlarms`` (the search stack), ``EndpointAlarms`` (the endpoint
stack), ``MlPathAlarms`` (the ML setup stack and the scheduled health check).
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.embedding_endpoint import EmbeddingEndpointStack
from stacks.ml_setup import MlSetupStack
from stacks.monitoring.dashboard import EnvironmentDashboard
from stacks.monitoring.endpoint_alarms import EndpointAlarms
from stacks.monitoring.ml_path_alarms import MlPathAlarms
from stacks.monitoring.search_domain_alarms import SearchDomainAlarms
from stacks.monitoring.topic import AlarmTopic
from stacks.search_domain import SearchDomainStack


class MonitoringStack(cdk.Stack):
    """Alarms of the domain, the endpoint and the ML path, one topic, one dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        domain: SearchDomainStack,
        endpoint: EmbeddingEndpointStack,
        ml_setup: MlSetupStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(ml_setup)
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", config=config)
        topic = self.alarm_topic.topic
        self.search_alarms = SearchDomainAlarms(
            self, "SearchDomainAlarms", config=config, topic=topic, account=self.account
        )
        self.endpoint_alarms = EndpointAlarms(self, "EndpointAlarms", config=config, topic=topic)
        self.ml_alarms = MlPathAlarms(
            self, "MlPathAlarms", config=config, topic=topic, domain=domain, ml_setup=ml_setup
        )
        alarms = [
            *self.search_alarms.alarms.values(),
            *self.endpoint_alarms.alarms.values(),
            *self.ml_alarms.alarms.values(),
        ]
        self.dashboard = EnvironmentDashboard(
            self,
            "Dashboard",
            config=config,
            account=self.account,
            alarms=alarms,
            instance_count=self.endpoint_alarms.instance_count,
        )
        cdk.CfnOutput(self, "AlarmTopicArn", value=topic.topic_arn)
        cdk.CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name)
